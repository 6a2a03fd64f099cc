"""Time windows and the small statistics the views share (uptime, percentiles, durations)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from gatewatch.clock import iso, parse_iso

_WINDOW = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")  # fullmatch: a pattern that guards a value
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_window(text: str) -> timedelta:
    """``30d``, ``24h``, ``90m``, ``2w``, ``45s`` -> timedelta; ValueError with the accepted forms otherwise."""
    m = _WINDOW.fullmatch(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"a window is a positive number and a unit s, m, h, d or w, such as 30d or 24h (got {text!r})")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def since_iso(now: datetime, window: timedelta) -> str:
    return iso(now - window)


NOT_MEASURED = frozenset({"skipped"})  # a round that never reached the target says nothing about it


def measured(status: str) -> bool:
    return status not in NOT_MEASURED


def is_up(status: str) -> bool:
    """Degraded counts as up, as the UP/DOWN state machine counts it (gatewatch.incidents.apply_result)."""
    return status != "down"


def uptime_pct(statuses: Iterable[str]) -> float | None:
    """Share of rounds that were up, in percent; None without any round (no data is not 100%)."""
    total = up = 0
    for status in statuses:
        if not measured(status):
            continue
        total += 1
        up += is_up(status)
    return None if total == 0 else 100.0 * up / total


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when there are none."""
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    if not data:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(data)))
    return data[rank - 1]


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return (parse_iso(end) - parse_iso(start)).total_seconds()
    except ValueError:
        return None


def human_duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 10m``, ``3d 4h``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
