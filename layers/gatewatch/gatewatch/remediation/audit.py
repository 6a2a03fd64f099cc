"""The remediation audit trail: every action considered, refused, run and verified, as ActionRecords.

``story`` renders one incident's records as lines a human reads top to bottom
(considered -> allowed -> ran -> verified).
"""

from __future__ import annotations

from typing import Any

from gatewatch.clock import Clock
from gatewatch.store.base import ActionRecord, ResultsStore

MAX_OUTPUT_CHARS = 4000  # command output kept in the audit (the store item must stay small, e.g. DynamoDB 400 KB)

CONSIDERED, ALLOWED, SUGGESTED, REFUSED, NO_ACTION = "considered", "allowed", "suggested", "refused", "no_action"
RAN, VERIFIED, ESCALATED = "ran", "verified", "escalated"
# Written under the host lease before any command runs: a runner killed mid-command still leaves it, and the
# cooldown and the daily cap count it (with ``ran``), so crashes cannot buy extra attempts.
STARTING = "starting"
RUNS = (STARTING, RAN)


def clip(text: str | None, limit: int = MAX_OUTPUT_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def store_time(store: ResultsStore) -> str | None:
    """The store's own time (SQLite's now, DynamoDB's Date header), None when it cannot say: never a runner's clock,
    so a runner whose clock is fast or slow cannot move an attempt out of the cooldown or the daily cap."""
    try:
        return store.store_now()
    except Exception:  # noqa: BLE001 - NotImplementedError or a store error: the runner's time is used instead
        return None


def attempt_time(entry: ActionRecord) -> str:
    """When an attempt happened, by the store's clock when it was recorded (older records: the runner's)."""
    stamped = (entry.detail or {}).get("store_at") if isinstance(entry.detail, dict) else None
    return stamped if isinstance(stamped, str) and stamped else entry.at


def record(
    store: ResultsStore,
    clock: Clock,
    *,
    incident_id: str,
    target: str,
    action: str | None,
    decision: str,
    guard: str,
    detail: dict[str, Any],
) -> ActionRecord:
    if decision in RUNS:  # an attempt is dated by the store's clock too: cooldown and the cap compare those
        detail = {**detail, "store_at": store_time(store)}
    entry = ActionRecord(
        incident_id=incident_id,
        target=target,
        action=action or "none",
        decision=decision,
        guard=guard,
        at=clock.iso(),
        detail=detail,
    )
    store.record_action(entry)
    return entry


def story(store: ResultsStore, incident_id: str) -> list[str]:
    """One line per audit record of the incident, oldest first."""
    lines = []
    for r in store.list_actions(incident_id=incident_id):
        reason = r.detail.get("reason") or ""
        lines.append(f"{r.at} {r.decision:<10} {r.action:<16} [{r.guard}] {reason}".rstrip())
    return lines
