"""The human view of probe results: one compact block per target, failures explained underneath."""

from __future__ import annotations

from gatewatch.probe.result import ProbeResult, TargetResult

COLUMNS = ("TARGET", "STATUS", "CODE", "REASON", "DNS", "CONNECT", "TLS", "TTFB", "XFER", "TOTAL", "CERT", "EDGE")


def render(results: list[TargetResult] | list[ProbeResult]) -> str:
    rows, notes = [], []
    for res in results:
        if isinstance(res, TargetResult):
            name, probe = res.target, res.probe
            extra = _target_notes(res)
        else:
            name, probe = res.url, res
            extra = _probe_notes(probe)
        rows.append(_row(name, probe))
        notes.append(extra)
    widths = [max(len(str(r[i])) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for row, extra in zip(rows, notes, strict=True):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.extend(f"    {line}" for line in extra)
    out.append("(times in ms; CERT = days until the certificate expires; EDGE = Cloudflare code/colo)")
    return "\n".join(out)


def _row(name: str, p: ProbeResult) -> list[str]:
    t = p.timings_ms
    cert = "-"
    if p.tls is not None:
        cert = f"{p.tls.days_to_expiry:.0f}d" + ("" if p.tls.verified or not p.tls.checked else "!")
    edge = "-"
    if p.cloudflare.edge:
        edge = "/".join(str(x) for x in (p.cloudflare.code or "cf", p.cloudflare.colo) if x)
    return [
        name, p.status, str(p.http.status) if p.http else "-", p.reason or "-",
        _ms(t.dns), _ms(t.connect), _ms(t.tls), _ms(t.ttfb), _ms(t.transfer), _ms(t.total), cert, edge,
    ]


def _target_notes(res: TargetResult) -> list[str]:
    lines = []
    if res.transient:
        lines.append(f"transient: attempt 1 failed ({res.attempts[0].reason}), a retry passed")
    if res.status == "down":
        lines.append(f"confirmed down after {len(res.attempts)} attempt(s)")
    lines += _probe_notes(res.probe)
    if res.health is not None:
        h = res.health
        code = h.http.status if h.http else "-"
        lines.append(f"health {h.url}: {h.status} ({code}, {h.timings_ms.total:.1f} ms)"
                     + (f": {h.error}" if h.error else ""))
    return lines


def _probe_notes(p: ProbeResult) -> list[str]:
    lines = []
    if p.error:
        lines.append(f"{p.phase}: {p.error}")
    for a in p.assertions:
        if not a.ok:
            lines.append(f"assertion {a.name}: expected {a.expected!r}, got {a.actual!r}")
    for r in p.redirects:
        lines.append(f"redirect {r.status} -> {r.url}")
    if p.tls is not None and p.tls.verify_error and p.tls.checked and p.tls.verify_error not in (p.error or ""):
        lines.append(f"tls: {p.tls.verify_error} (not_after {p.tls.not_after})")
    if p.cloudflare.meaning:
        lines.append(f"cloudflare {p.cloudflare.code}: {p.cloudflare.meaning}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
