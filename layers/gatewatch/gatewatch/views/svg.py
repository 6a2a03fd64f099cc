"""Server-rendered SVG: line charts, uptime bars and the decision tree with the walked path. No JavaScript, no
network: each function returns one ``<svg>`` element as text, with every piece of text escaped, a ``<title>`` and
``<desc>`` for screen readers, and one ``<circle class="pt">`` (with its own ``<title>``) per data point."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from gatewatch.clock import parse_iso
from gatewatch.tree.model import Tree

# Colour-blind-safe (Okabe-Ito) series colours; each has at least 3:1 contrast on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8a6d00", "#56B4E9", "#333333")
_ids = itertools.count(1)


def _a(value: Any) -> str:
    return escape(str(value), quote=True)


def _fmt_ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def line_chart(series: dict[str, Sequence[tuple[str, float]]], *, title: str, width: int = 640, height: int = 200,
               unit: str = "ms", small: bool = False) -> str:
    """One line per series over time (ISO timestamps), points marked; an empty chart says there is no data."""
    cid = f"c{next(_ids)}"
    pad_l, pad_r, pad_t, pad_b = (8, 8, 8, 8) if small else (56, 12, 12, 40)
    points = [(parse_iso(at), v) for pts in series.values() for at, v in pts]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-labelledby="{cid}t {cid}d"><title id="{cid}t">{_a(title)}</title>')
    if not points:
        return (head + f'<desc id="{cid}d">no data</desc><text x="{width / 2}" y="{height / 2}" '
                f'text-anchor="middle" class="nodata">no data</text></svg>')
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = max((t1 - t0).total_seconds(), 1.0)
    vmax = max(v for _, v in points) or 1.0
    vmax *= 1.1
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(t: datetime) -> float:
        return pad_l + plot_w * ((t - t0).total_seconds() / span)

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - v / vmax)

    desc = "; ".join(
        f"{name}: {len(pts)} points, max {_fmt_ms(max(v for _, v in pts)) if unit == 'ms' else max(v for _, v in pts)}"
        for name, pts in series.items() if pts
    )
    out = [head, f'<desc id="{cid}d">{_a(desc)}</desc>']
    if not small:
        for frac in (0, 0.5, 1):
            v = vmax / 1.1 * frac
            out.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
            label = _fmt_ms(v) if unit == "ms" else f"{v:.0f}{unit}"
            out.append(f'<text class="axis" x="{pad_l - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_a(label)}</text>')
        out.append(f'<text class="axis" x="{pad_l}" y="{height - 22}">{_a(t0.strftime("%m-%d %H:%M"))}</text>')
        out.append(f'<text class="axis" x="{width - pad_r}" y="{height - 22}" text-anchor="end">'
                   f'{_a(t1.strftime("%m-%d %H:%M"))} UTC</text>')
    legend_x = pad_l
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        colour = PALETTE[i % len(PALETTE)]
        coords = [(x(parse_iso(at)), y(v), at, v) for at, v in pts]
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coords)
        out.append(f'<g class="series" data-series="{_a(name)}"><polyline fill="none" stroke="{colour}" '
                   f'stroke-width="{1.5 if small else 2}" points="{path}"/>')
        for cx, cy, at, v in coords:
            label = f"{name} {at}: {_fmt_ms(v) if unit == 'ms' else v}"
            out.append(f'<circle class="pt" cx="{cx:.1f}" cy="{cy:.1f}" r="{1.8 if small else 2.5}" '
                       f'fill="{colour}"><title>{_a(label)}</title></circle>')
        out.append("</g>")
        if not small:
            out.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{colour}"/>'
                       f'<text class="legend" x="{legend_x + 14}" y="{height - 3}">{_a(name)}</text>')
            legend_x += 24 + 8 * len(name)
    out.append("</svg>")
    return "".join(out)


def uptime_bars(days: Sequence[dict[str, Any]], *, title: str, width: int = 630, height: int = 34) -> str:
    """One bar per day (``{"date", "uptime"}``, uptime in percent or None): green, amber below 99.9, red below 99."""
    cid = f"u{next(_ids)}"
    n = max(len(days), 1)
    gap = 2
    bar_w = max((width - gap * (n - 1)) / n, 1)
    known = [d["uptime"] for d in days if d["uptime"] is not None]
    desc = f"{len(days)} days, {len(known)} with data" + (f", lowest {min(known):.2f}%" if known else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-labelledby="{cid}t {cid}d"><title id="{cid}t">{_a(title)}</title>'
           f'<desc id="{cid}d">{_a(desc)}</desc>']
    for i, day in enumerate(days):
        pct = day["uptime"]
        if pct is None:
            cls, label = "nodata", "no data"
        else:
            cls = "ok" if pct >= 99.9 else "warn" if pct >= 99.0 else "bad"
            label = f"{pct:.2f}% up"
        out.append(f'<rect class="day {cls}" x="{i * (bar_w + gap):.1f}" y="0" width="{bar_w:.1f}" height="{height}" '
                   f'rx="1"><title>{_a(day["date"])}: {_a(label)}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _cond(node: Any) -> str:
    value = str(node.value).lower() if isinstance(node.value, bool) else node.value
    return f"{node.signal} {node.op} {value}"


def tree_rows(tree: Tree, path: Sequence[str], leaf: str | None, collapse: bool = True) -> list[dict[str, Any]]:
    """The tree as an indented outline (like ``gatewatch tree``), marking the walked path.

    ``path`` is the node ids visited in order; ``leaf`` the leaf reached. With ``collapse``, a subtree the walk did
    not enter is one row saying how many questions it holds.
    """
    nxt = {node: (path[i + 1] if i + 1 < len(path) else leaf) for i, node in enumerate(path)}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()

    def size(ref: str, counted: set[str]) -> int:
        if tree.is_leaf(ref) or ref in counted:
            return 0
        counted.add(ref)
        node = tree.nodes[ref]
        return 1 + size(node.yes, counted) + size(node.no, counted)

    def emit(ref: str, depth: int, label: str, walked: bool, parent: int | None) -> None:
        row = {"depth": depth, "label": label, "walked": walked, "parent": parent, "ref": ref}
        if tree.is_leaf(ref):
            item = tree.leaves[ref]
            action = f" [allows {item.remediation}]" if item.remediation else ""
            rows.append(row | {"kind": "leaf", "text": f"{item.category}{action}"})
            return
        if ref in seen:
            rows.append(row | {"kind": "ref", "text": f"see {ref} above"})
            return
        node = tree.nodes[ref]
        if collapse and not walked:
            count = size(ref, set(seen))
            rows.append(row | {"kind": "collapsed",
                               "text": f"{node.question} (+{count - 1} more question{'s' if count != 2 else ''})"
                               if count > 1 else f"{node.question}"})
            seen.add(ref)
            return
        seen.add(ref)
        index = len(rows)
        rows.append(row | {"kind": "node", "text": node.question, "cond": _cond(node)})
        on = walked and ref in nxt
        branches = [("yes", node.yes, on and nxt[ref] == node.yes), ("no", node.no, on and nxt[ref] == node.no)]
        if branches[1][2]:
            branches.reverse()  # the walked branch first, so a node shared with a branch not taken is drawn walked
        for label, child, child_walked in branches:
            emit(child, depth + 1, label, child_walked, index)

    emit(tree.start, 0, "", bool(path) or leaf == tree.start, None)
    return rows


def tree_svg(tree: Tree, path: Sequence[str], leaf: str | None, *, collapse: bool = True,
             title: str = "decision tree") -> str:
    rows = tree_rows(tree, path, leaf, collapse)
    cid = f"t{next(_ids)}"
    row_h, indent, char_w = 24, 22, 7.2
    width = int(max(24 + r["depth"] * indent + (len(r["label"]) + 2 + len(r["text"])) * char_w for r in rows)) + 24
    height = row_h * len(rows) + 8
    walked = [r for r in rows if r["walked"]]
    desc = " -> ".join(f"{r['label'] + ': ' if r['label'] else ''}{r['text']}" for r in walked) or "not walked"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="tree" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" aria-labelledby="{cid}t {cid}d"><title id="{cid}t">{_a(title)}</title>'
           f'<desc id="{cid}d">walked path: {_a(desc)}</desc>']
    for i, r in enumerate(rows):
        x0 = 12 + r["depth"] * indent
        y0 = 4 + i * row_h + row_h / 2
        if r["parent"] is not None:
            p = rows[r["parent"]]
            px = 12 + p["depth"] * indent + 6
            py = 4 + r["parent"] * row_h + row_h / 2
            cls = "edge walked" if r["walked"] else "edge"
            out.append(f'<path class="{cls}" d="M{px},{py + 6} V{y0} H{x0}" fill="none"/>')
    for i, r in enumerate(rows):
        x0 = 12 + r["depth"] * indent
        y0 = 4 + i * row_h
        classes = f"row {r['kind']}" + (" walked" if r["walked"] else "")
        text = (f"{r['label']}: " if r["label"] else "") + r["text"]
        w = (len(text) + 2) * char_w
        tip = r.get("cond") or r["ref"]
        radius = 9 if r["kind"] == "leaf" else 3
        out.append(f'<g class="{classes}" data-ref="{_a(r["ref"])}" data-walked="{str(r["walked"]).lower()}">'
                   f'<title>{_a(tip)}</title>'
                   f'<rect x="{x0}" y="{y0 + 2}" width="{w:.0f}" height="{row_h - 4}" rx="{radius}"/>'
                   f'<text x="{x0 + char_w}" y="{y0 + row_h / 2 + 4}">{_a(text)}</text></g>')
    out.append("</svg>")
    return "".join(out)
