"""One incident as a story: its timeline (failure seen, opened, diagnosed, each remediation decision with its guard,
verified, resolved, notifications), the verdict with its evidence and next steps, and the walked path."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gatewatch.clock import iso, parse_iso
from gatewatch.store.base import Incident, ResultsStore
from gatewatch.views.windows import dig, human_duration, is_up, seconds_between

STREAK_LOOKBACK = timedelta(days=1)  # how far back the first failing round of the streak is looked for

DECISION_TEXT = {
    "considered": "remediation considered",
    "allowed": "remediation allowed",
    "suggested": "remediation suggested to a human",
    "refused": "remediation refused",
    "no_action": "no remediation",
    "ran": "remediation ran",
    "verified": "fix verified",
    "escalated": "escalated to a human",
}


def failure_start(store: ResultsStore, incident: Incident) -> str | None:
    """The first failing round of the run of failures that opened the incident (None when not recorded)."""
    try:
        opened = parse_iso(incident.opened_at)
    except ValueError:
        return None
    probes = store.probes_between(incident.target, iso(opened - STREAK_LOOKBACK), iso(opened + timedelta(seconds=1)))
    start = None
    for p in reversed(probes):
        if is_up(p.status):
            if start is not None:
                break
            continue  # an up round after the opening one (same second) does not end the streak
        start = p.at
    return start or dig(incident.outside, "at")


def notifications_of(store: ResultsStore, incident_id: str) -> list[dict[str, Any]]:
    """Notification attempts, when the store records them (``list_notifications``); [] otherwise."""
    reader = getattr(store, "list_notifications", None)
    if reader is None:
        return []
    try:
        records = reader(incident_id=incident_id, limit=100)
    except NotImplementedError:
        return []
    out = []
    for r in records:
        doc = r.to_dict() if hasattr(r, "to_dict") else dict(r)
        out.append(doc)
    return out


def timeline(store: ResultsStore, incident: Incident, actions: list[Any], notes: list[dict[str, Any]],
             first_failure: str | None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def add(at: str | None, kind: str, text: str, **extra: Any) -> None:
        if at:
            events.append({"at": at, "kind": kind, "text": text, **extra})

    outside = incident.outside or {}
    add(first_failure, "detected", "first failing round" + (f": {outside_summary(outside)}" if outside else ""))
    attempts = outside.get("attempts") or []
    if outside.get("at") and outside.get("at") != first_failure:
        add(outside.get("at"), "confirmed", f"failure confirmed ({len(attempts) or 1} attempt(s) failed)")
    elif attempts:
        events[-1]["text"] += f", confirmed by {len(attempts)} attempt(s)"
    add(incident.opened_at, "opened", f"incident {incident.id} opened")
    extra = incident.to_dict()  # fields newer stores record (AWS: the diagnosis started; local: announced)
    add(extra.get("diagnosis_started_at"), "diagnosing", "diagnosis started (the state machine's execution)")
    if not notes:
        add(extra.get("notified_at"), "notified", "incident announced (or silenced by a maintenance window)")
    verdict = incident.verdict or {}
    if verdict:
        add(dig(incident.facts, "collected_at") or incident.opened_at, "diagnosed",
            f"diagnosed: {verdict.get('category')}: {verdict.get('title')}")
    for a in actions:
        reason = a.detail.get("reason") or a.detail.get("message") or a.detail.get("summary") or ""
        add(a.at, a.decision, f"{DECISION_TEXT.get(a.decision, a.decision)}: {a.action}", guard=a.guard,
            reason=reason)
    for n in notes:  # alert's NotificationRecord: channel, kind, status, attempts, first_at, last_at, detail
        outcome = n.get("status") or n.get("result") or ("sent" if n.get("ok") else "failed")
        channel = n.get("channel") or "notification"
        kind = f"{n.get('kind') or n.get('event')} " if n.get("kind") or n.get("event") else ""
        tries = f" after {n['attempts']} attempts" if isinstance(n.get("attempts"), int) and n["attempts"] > 1 else ""
        error = n.get("error") or dig(n, "detail", "error") or ""
        if not error and isinstance(n.get("detail"), str) and outcome != "delivered":
            error = n["detail"]  # NotificationRecord.detail: the last error while not delivered
        add(n.get("last_at") or n.get("first_at") or n.get("at"), "notified",
            f"{kind}notification via {channel}: {outcome}{tries}", reason=error)
    if incident.resolved_at:
        add(incident.resolved_at, "resolved",
            f"resolved ({incident.resolution or 'recovered'}) after {human_duration(incident.duration_s)}")
    order = {k: i for i, k in enumerate(("detected", "confirmed", "opened", "diagnosing", "diagnosed"))}
    events.sort(key=lambda e: (e["at"], order.get(e["kind"], 9)))
    return events


def outside_summary(outside: dict[str, Any]) -> str:
    probe = outside.get("probe") or {}
    status = dig(probe, "http", "status")
    reason = probe.get("reason") or outside.get("status") or "?"
    return f"{probe.get('method', '')} {probe.get('url', '')} -> {status or 'no response'} ({reason})".strip()


def incident_detail(store: ResultsStore, incident_id: str, now: datetime) -> dict[str, Any] | None:
    incident = store.get_incident(incident_id)
    if incident is None:
        return None
    actions = store.list_actions(incident_id=incident_id)
    notes = notifications_of(store, incident_id)
    first = failure_start(store, incident)
    verdict = incident.verdict or {}
    end = incident.resolved_at or iso(now)
    return {
        "incident": incident.to_dict(),
        "duration": human_duration(incident.duration_s if incident.duration_s is not None
                                   else seconds_between(incident.opened_at, end)),
        "first_failure": first,
        "timeline": timeline(store, incident, actions, notes, first),
        "verdict": verdict,
        "path": verdict.get("path") or [],
        "leaf": verdict.get("leaf"),
        "evidence": verdict.get("evidence") or [],
        "next_steps": verdict.get("next_steps") or [],
        "never_automate": verdict.get("never_automate") or [],
        "remediation": incident.remediation or {},
        "actions": [a.to_dict() for a in actions],
        "notifications": notes,
        "outside": outside_summary(incident.outside or {}) if incident.outside else None,
    }
