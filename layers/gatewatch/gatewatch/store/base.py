"""The results-store port: probes, per-target UP/DOWN state, incidents with verdicts, the remediation audit.

Adapters (SQLite locally, DynamoDB in AWS) implement the abstract methods; the same contract tests run against
each (``tests/unit/test_store_contract.py``). State writes are conditional on a version number, and incident
creation is conditional on the id not existing, so two probers racing cannot open two incidents.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TargetState:
    target: str
    status: str = "UP"  # UP | DOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    incident_id: str | None = None
    since: str | None = None  # when the current status began (ISO-8601 UTC)
    updated_at: str | None = None
    version: int = 0  # bumped on every write; writes are conditional on it
    recent: str = ""  # the last rounds, oldest first: 1 failed (or only the retry passed), 0 passed (flapping)
    flapping_incident_id: str | None = None  # the open flapping incident (gatewatch.moments)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Incident:
    id: str
    target: str
    opened_at: str
    status: str = "open"  # open | resolved
    resolved_at: str | None = None
    duration_s: float | None = None
    category: str | None = None
    title: str | None = None
    verdict: dict[str, Any] | None = None
    facts: dict[str, Any] | None = None
    resolution: str | None = None  # recovered | auto_remediated | ...
    outside: dict[str, Any] | None = None  # the confirmed failing probe that opened it
    remediation: dict[str, Any] | None = None  # what was decided/done about it (see gatewatch.remediation)
    diagnosis_started_at: str | None = None  # AWS: when its DiagnoseStateMachine execution was started
    notified_at: str | None = None  # local pipeline: when the diagnosed incident was announced (or silenced)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProbeRecord:
    target: str
    at: str
    status: str  # up | degraded | down
    reason: str | None
    total_ms: float | None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ActionRecord:
    """One remediation decision: considered, refused or run, and what came of it."""

    incident_id: str
    target: str
    action: str
    decision: str  # considered | allowed | suggested | refused | no_action | ran | verified | escalated
    guard: str  # which guard allowed or refused it
    at: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LockRecord:
    """A lease on a name (remediation: one action in flight per host). Expired leases may be taken over."""

    name: str
    owner: str
    acquired_at: str  # ISO-8601 UTC; leases compare as text, which is why every time is ``clock.iso``
    expires_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClaimRecord:
    """A once-only marker (remediation: incident + action), created conditionally and never taken over."""

    key: str
    at: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NotificationRecord:
    """One notification on one channel and every attempt at it (gatewatch.notify.dispatch).

    ``status``: delivered | pending (failed, retried on a later round from ``next_at``) | failed (gave up, or the
    receiver refused it for good). ``notification`` is the whole notification, so a later round can resend it.
    """

    id: str
    target: str
    channel: str
    event: str  # the notification's kind: opened, diagnosed, resolved, reminder, certificate, ...
    first_at: str
    incident_id: str | None = None
    subject: str | None = None
    status: str = "pending"
    attempts: int = 0
    last_at: str | None = None
    next_at: str | None = None
    detail: str | None = None  # the last error, or the receiver's message id
    notification: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dumps(value: Any) -> str:
    """One JSON serialisation for every adapter, so stored documents compare equal across them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class ResultsStore(abc.ABC):
    @abc.abstractmethod
    def record_probe(self, record: ProbeRecord) -> None: ...

    @abc.abstractmethod
    def history(self, target: str | None = None, limit: int = 50) -> list[ProbeRecord]:
        """Newest first. Without a target: across the targets that have a state (every round writes one)."""

    @abc.abstractmethod
    def get_state(self, target: str) -> TargetState | None: ...

    @abc.abstractmethod
    def put_state(self, state: TargetState, expected_version: int) -> TargetState:
        """Write ``state`` if the stored version is ``expected_version`` (0: not stored yet); else ConflictError.

        Returns the state as stored, with its new version.
        """

    def open_incident(self, state: TargetState, expected_version: int, incident: Incident) -> TargetState:
        """The DOWN transition and its incident written together: both or neither (``ConflictError``, nothing
        written, when the state changed since ``expected_version``). Adapters override this with one transaction;
        this fallback writes the incident first, so a crash in between leaves an incident, never loses one."""
        self.create_incident(incident)
        return self.put_state(state, expected_version)

    @abc.abstractmethod
    def create_incident(self, incident: Incident) -> bool:
        """Create it unless an incident with that id exists; True when this call created it."""

    @abc.abstractmethod
    def get_incident(self, incident_id: str) -> Incident | None: ...

    @abc.abstractmethod
    def update_incident(self, incident_id: str, **changes: Any) -> Incident:
        """Set the given fields; KeyError-like StoreError when the incident does not exist."""

    @abc.abstractmethod
    def list_incidents(self, target: str | None = None, open_only: bool = False, limit: int = 50) -> list[Incident]:
        """Newest first."""

    @abc.abstractmethod
    def record_action(self, record: ActionRecord) -> None: ...

    @abc.abstractmethod
    def list_actions(
        self, incident_id: str | None = None, target: str | None = None, since: str | None = None
    ) -> list[ActionRecord]:
        """Oldest first: the audit trail reads as a story. ``since`` (ISO) reads only records at or after it, by a
        key condition where the store has one (the guardrails' cooldown and daily cap read just their window)."""

    # Reads for the views (gatewatch.views: serve, status page, report). Not abstract, like the leases below.
    def list_states(self) -> list[TargetState]:
        """Every target's stored UP/DOWN state, by target name."""
        raise NotImplementedError(f"{type(self).__name__} has no list_states")

    def probes_between(self, target: str, since: str, until: str | None = None) -> list[ProbeRecord]:
        """The target's probes with ``since <= at < until`` (ISO text), oldest first, WITHOUT their ``result``
        document (status, reason and total_ms are what uptime and latency need; ``history`` has the rest)."""
        raise NotImplementedError(f"{type(self).__name__} has no probes_between")

    # Leases and once-only claims for remediation (gatewatch.remediation). Not abstract so that an adapter written
    # before they existed still loads; every adapter used for remediation must implement all five.
    def acquire_lock(self, name: str, owner: str, now: str, expires_at: str) -> bool:
        """Take the lease ``name`` for ``owner`` until ``expires_at``, atomically; True when this call holds it.

        Succeeds when nobody holds it, when the current lease expired (``expires_at <= now``, compared as ISO
        text), or when ``owner`` already holds it (a retried step). DynamoDB: a PutItem conditioned on
        ``attribute_not_exists(pk) OR expires_at <= :now OR owner = :owner``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no acquire_lock")

    def store_now(self) -> str:
        """The store's own time as ``clock.iso`` text. Leases are taken and judged against it, never against a
        caller's clock, so a runner whose clock is fast cannot take over a live lease (SQLite: the database's
        ``now``; DynamoDB: the service's Date header). Adapters may be given a clock to stand in for it (tests)."""
        raise NotImplementedError(f"{type(self).__name__} has no store_now")

    def release_lock(self, name: str, owner: str) -> bool:
        """Drop the lease if ``owner`` still holds it (never someone else's); True when it was dropped."""
        raise NotImplementedError(f"{type(self).__name__} has no release_lock")

    def get_lock(self, name: str) -> LockRecord | None:
        """The stored lease, expired or not (callers compare ``expires_at`` with ``store_now()``)."""
        raise NotImplementedError(f"{type(self).__name__} has no get_lock")

    def claim(self, key: str, at: str, detail: dict[str, Any] | None = None) -> bool:
        """Create the claim ``key`` unless it exists (no expiry, no take-over); True when this call created it."""
        raise NotImplementedError(f"{type(self).__name__} has no claim")

    def get_claim(self, key: str) -> ClaimRecord | None:
        raise NotImplementedError(f"{type(self).__name__} has no get_claim")

    def update_claim(self, key: str, detail: dict[str, Any]) -> None:
        """Replace the detail of an existing claim (its outcome); StoreError when there is no such claim."""
        raise NotImplementedError(f"{type(self).__name__} has no update_claim")

    # Notification attempts (gatewatch.notify.dispatch). Not abstract, like the leases above.
    def put_notification(self, record: NotificationRecord) -> None:
        """Create or replace the record with ``record.id``."""
        raise NotImplementedError(f"{type(self).__name__} has no put_notification")

    def list_notifications(self, target: str | None = None, incident_id: str | None = None,
                           pending_only: bool = False, limit: int = 50) -> list[NotificationRecord]:
        """Newest first (by ``first_at``)."""
        raise NotImplementedError(f"{type(self).__name__} has no list_notifications")

    def close(self) -> None:  # noqa: B027 - optional for adapters without resources
        """Release connections."""


# -- bounded items ----------------------------------------------------------------------------------------------------
# DynamoDB refuses an item over 400 KB: a probe's parsed JSON body (up to 1 MB) or a large on-box report would make
# the record, and with it the incident, impossible to write. Items are cut to this budget before they are written.
ITEM_BUDGET_BYTES = 300_000
ATTRIBUTE_BUDGET_BYTES = 75_000  # per attribute: an UpdateItem of one attribute cannot know the others' sizes


def json_size(value: Any) -> int:
    import json

    return len(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _cap(value: Any, chars: int, items: int, top: bool = False) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + f"...[truncated {len(value) - chars} chars]"
    if isinstance(value, dict):
        keys = list(value)
        kept = keys if top else keys[:items]
        out = {k: _cap(value[k], chars, items) for k in kept}
        if len(kept) < len(keys):
            out["_truncated_keys"] = len(keys) - len(kept)
        return out
    if isinstance(value, list | tuple):
        out = [_cap(v, chars, items) for v in value[:items]]
        if len(value) > items:
            out.append(f"...[truncated {len(value) - items} items]")
        return out
    return value


def bounded(value: Any, max_bytes: int = ITEM_BUDGET_BYTES) -> Any:
    """``value`` when its JSON fits ``max_bytes``; else a copy with long strings and lists cut (marked as cut),
    tighter and tighter until it fits. The top level of a mapping keeps every key (item keys stay intact)."""
    if json_size(value) <= max_bytes:
        return value
    for chars, items in ((8192, 200), (2048, 50), (512, 20), (128, 8), (32, 4)):
        out = _cap(value, chars, items, top=True)
        if json_size(out) <= max_bytes:
            return out
    return _cap(value, 16, 2, top=True)
