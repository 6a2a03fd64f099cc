"""UP/DOWN state per target and when incidents open and resolve: a pure function over the stored state.

A target goes DOWN after ``failure_threshold`` consecutive confirmed failures and opens one incident; it comes
back UP after ``success_threshold`` consecutive successes and resolves that incident. The state lives in the
results store, so a restarted prober carries on where it stopped instead of opening a duplicate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from gatewatch.clock import Clock, iso, parse_iso
from gatewatch.store.base import ResultsStore, TargetState
from gatewatch.store.exceptions import ConflictError

OPENED, RESOLVED = "opened", "resolved"


@dataclass(frozen=True)
class Transition:
    state: TargetState
    event: str | None  # None | "opened" | "resolved"
    incident_id: str | None
    duration_s: float | None = None


def incident_id_for(target: str, opened_at: datetime) -> str:
    """Deterministic and safe as a Step Functions execution name ([A-Za-z0-9-_], at most 80 characters)."""
    stamp = opened_at.strftime("%Y%m%dT%H%M%SZ")
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{target}-{stamp}")[:80]


def apply_result(
    state: TargetState,
    up: bool,
    now: datetime,
    failure_threshold: int,
    success_threshold: int,
) -> Transition:
    """The next state after one probe round (``up`` counts degraded as up)."""
    s = replace(state, updated_at=iso(now))
    if up:
        s.consecutive_successes += 1
        s.consecutive_failures = 0
        if s.status == "DOWN" and s.consecutive_successes >= success_threshold:
            incident = s.incident_id
            since = parse_iso(s.since) if s.since else now
            s.status, s.since, s.incident_id = "UP", iso(now), None
            return Transition(s, RESOLVED, incident, (now - since).total_seconds())
        if s.since is None:
            s.since = iso(now)
        return Transition(s, None, s.incident_id)
    s.consecutive_failures += 1
    s.consecutive_successes = 0
    if s.status == "UP" and s.consecutive_failures >= failure_threshold:
        incident = incident_id_for(s.target, now)
        s.status, s.since, s.incident_id = "DOWN", iso(now), incident
        return Transition(s, OPENED, incident)
    if s.since is None:
        s.since = iso(now)
    return Transition(s, None, s.incident_id)


def resolve_auto_remediated(store: ResultsStore, clock: Clock, target_name: str, incident_id: str) -> float | None:
    """A verified fix: the target goes UP now and the incident resolves as auto-remediated, with its duration."""
    for _ in range(5):
        state = store.get_state(target_name)
        if state is None or state.incident_id != incident_id:
            break
        new = TargetState(**{**state.to_dict(), "status": "UP", "incident_id": None, "since": clock.iso(),
                             "consecutive_failures": 0, "consecutive_successes": 0})
        try:
            store.put_state(new, expected_version=state.version)
            break
        except ConflictError:
            continue
    incident = store.get_incident(incident_id)
    if incident is None or incident.status == "resolved":
        return None
    duration = (clock.now() - parse_iso(incident.opened_at)).total_seconds()
    store.update_incident(incident_id, status="resolved", resolved_at=iso(clock.now()), duration_s=duration,
                          resolution="auto_remediated")
    return duration
