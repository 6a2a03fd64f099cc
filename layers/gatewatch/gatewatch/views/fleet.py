"""The overview (every target at a glance) and one target's page, computed from the store port."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gatewatch.clock import iso, parse_iso
from gatewatch.store.base import ProbeRecord, ResultsStore
from gatewatch.views.windows import dig, human_duration, is_up, measured, percentile, seconds_between

UPTIME_WINDOWS = (("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")  # per-phase milliseconds (gatewatch.probe.result)
LATENCY_BUCKETS = 24  # the overview's last-day chart: one point per hour


def target_names(store: ResultsStore, configured: list[str] | None = None) -> list[str]:
    """Targets with a stored state, then configured ones that have none yet, in name order."""
    names = {s.target for s in store.list_states()}
    names.update(configured or [])
    return sorted(names)


def uptimes(probes: list[ProbeRecord], now: datetime) -> dict[str, float | None]:
    """Uptime per window in one pass over the rounds (oldest first, as probes_between returns them)."""
    starts = [(label, iso(now - window)) for label, window in UPTIME_WINDOWS]
    total = dict.fromkeys((label for label, _ in starts), 0)
    up = dict.fromkeys(total, 0)
    for p in probes:
        if not measured(p.status):
            continue
        ok = is_up(p.status)
        for label, since in starts:
            if p.at >= since:
                total[label] += 1
                up[label] += ok
    return {label: (100.0 * up[label] / total[label] if total[label] else None) for label in total}


def latency_series(probes: list[ProbeRecord], now: datetime, window: timedelta = timedelta(days=1),
                   buckets: int = LATENCY_BUCKETS) -> dict[str, list[tuple[str, float]]]:
    """p50 and p95 of the rounds' total time per bucket (hour), for the chart; empty buckets are skipped."""
    start = now - window
    first = iso(start)
    width = window / buckets
    grouped: list[list[float]] = [[] for _ in range(buckets)]
    for p in probes:
        # ISO text compares like time: parse only the window's measured rounds
        if p.total_ms is None or p.at < first or not measured(p.status):
            continue
        at = parse_iso(p.at)
        index = min(buckets - 1, int((at - start) / width))
        grouped[index].append(p.total_ms)
    series: dict[str, list[tuple[str, float]]] = {"p50": [], "p95": []}
    for i, values in enumerate(grouped):
        if values:
            mid = iso(start + width * i + width / 2)
            series["p50"].append((mid, percentile(values, 50)))
            series["p95"].append((mid, percentile(values, 95)))
    return series


def cert_days_left(store: ResultsStore, target: str) -> float | None:
    """Days until the public certificate expires, from the newest round that saw one."""
    for record in store.history(target, limit=5):
        days = dig(record.result, "probe", "tls", "days_to_expiry")
        if days is None:
            days = dig(record.result, "tls", "days_to_expiry")  # a compact record keeps tls at the top
        if isinstance(days, int | float):
            return float(days)
    return None


def _incident_brief(incident: Any, now: datetime) -> dict[str, Any]:
    end = incident.resolved_at or iso(now)
    return {
        "id": incident.id,
        "target": incident.target,
        "status": incident.status,
        "title": incident.title or "",
        "category": incident.category or "diagnosing",
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "resolution": incident.resolution,
        "duration": human_duration(incident.duration_s if incident.duration_s is not None
                                   else seconds_between(incident.opened_at, end)),
        "remediation": (incident.remediation or {}).get("result"),
    }


def target_summary(store: ResultsStore, name: str, now: datetime) -> dict[str, Any]:
    state = store.get_state(name)
    probes = store.probes_between(name, iso(now - UPTIME_WINDOWS[-1][1]))
    day = iso(now - timedelta(days=1))
    day_ms = [p.total_ms for p in probes if p.at >= day and p.total_ms is not None and measured(p.status)]
    last = probes[-1] if probes else None
    open_incidents = store.list_incidents(target=name, open_only=True, limit=1)
    return {
        "name": name,
        "state": state.status if state else "UNKNOWN",
        "since": state.since if state else None,
        "last_round": last.at if last else None,
        "last_status": last.status if last else None,
        "last_reason": last.reason if last else None,
        "uptime": uptimes(probes, now),
        "p50_ms": percentile(day_ms, 50),
        "p95_ms": percentile(day_ms, 95),
        "latency": latency_series(probes, now),
        "cert_days_left": cert_days_left(store, name),
        "open_incident": _incident_brief(open_incidents[0], now) if open_incidents else None,
        "rounds_30d": len(probes),
    }


def overview(store: ResultsStore, now: datetime, configured: list[str] | None = None) -> dict[str, Any]:
    targets = [target_summary(store, name, now) for name in target_names(store, configured)]
    return {
        "now": iso(now),
        "targets": targets,
        "down": sum(1 for t in targets if t["state"] == "DOWN"),
        "open_incidents": [t["open_incident"] for t in targets if t["open_incident"]],
    }


def _round_row(record: ProbeRecord) -> dict[str, Any]:
    result = record.result or {}
    probe = result.get("probe") or {}
    return {
        "at": record.at,
        "status": record.status,
        "up": is_up(record.status) or not measured(record.status),
        "reason": record.reason,
        "http_status": dig(probe, "http", "status") or dig(result, "http_status"),
        "total_ms": record.total_ms,
        "transient": bool(result.get("transient")),
        "error": probe.get("error") or result.get("error"),
        "diagnosis": dig(result, "diagnosis", "category"),
    }


def phase_series(records: list[ProbeRecord]) -> dict[str, list[tuple[str, float]]]:
    """Milliseconds per phase over time (oldest first), from the rounds' stored timings."""
    series: dict[str, list[tuple[str, float]]] = {phase: [] for phase in PHASES}
    for record in sorted(records, key=lambda r: r.at):
        timings = dig(record.result, "probe", "timings_ms") or dig(record.result, "timings_ms") or {}
        for phase in PHASES:
            value = timings.get(phase)
            if phase == "total" and value is None:
                value = record.total_ms
            if isinstance(value, int | float):
                series[phase].append((record.at, float(value)))
    return {phase: points for phase, points in series.items() if points}


def target_detail(store: ResultsStore, name: str, now: datetime, rounds: int = 200) -> dict[str, Any] | None:
    state = store.get_state(name)
    records = store.history(name, limit=rounds)
    if state is None and not records:
        return None
    summary = target_summary(store, name, now)
    return {
        **summary,
        "phases": phase_series(records),
        "rounds": [_round_row(r) for r in records],
        "failures": sum(1 for r in records if measured(r.status) and not is_up(r.status)),
        "incidents": [_incident_brief(i, now) for i in store.list_incidents(target=name, limit=50)],
        "actions": [a.to_dict() for a in store.list_actions(target=name)][-50:],
    }
