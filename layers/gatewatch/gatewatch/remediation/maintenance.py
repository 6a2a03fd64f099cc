"""Maintenance windows (``target.maintenance``): while one is active, no notification and no remediation.

Probing goes on regardless: the record of what happened during maintenance is still wanted.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from gatewatch.clock import parse_iso
from gatewatch.config.models import MaintenanceWindow, Target


def window_active(window: MaintenanceWindow, now: datetime) -> bool:
    now = now.astimezone(UTC)
    if window.daily:
        begin, finish = (time.fromisoformat(t) for t in window.daily.split("-"))
        moment = now.time().replace(tzinfo=None)
        if begin < finish:
            return begin <= moment < finish
        return moment >= begin or moment < finish  # wraps past midnight, e.g. 23:00-01:00
    return parse_iso(window.start) <= now < parse_iso(window.end)  # type: ignore[arg-type]


def active_window(target: Target, now: datetime) -> MaintenanceWindow | None:
    """The first maintenance window of ``target`` covering ``now``, or None. Also for notifiers to stay quiet."""
    for window in target.maintenance:
        if window_active(window, now):
            return window
    return None


def describe(window: MaintenanceWindow) -> str:
    when = f"daily {window.daily} UTC" if window.daily else f"{window.start} to {window.end}"
    return f"maintenance window {when}" + (f" ({window.reason})" if window.reason else "")
