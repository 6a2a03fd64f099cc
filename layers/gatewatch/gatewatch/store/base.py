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
    decision: str  # allowed | refused | ran | succeeded | failed
    guard: str  # which guard allowed or refused it
    at: str
    detail: dict[str, Any] = field(default_factory=dict)

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
        """Newest first."""

    @abc.abstractmethod
    def get_state(self, target: str) -> TargetState | None: ...

    @abc.abstractmethod
    def put_state(self, state: TargetState, expected_version: int) -> TargetState:
        """Write ``state`` if the stored version is ``expected_version`` (0: not stored yet); else ConflictError.

        Returns the state as stored, with its new version.
        """

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
    def list_actions(self, incident_id: str | None = None, target: str | None = None) -> list[ActionRecord]:
        """Oldest first: the audit trail reads as a story."""

    def close(self) -> None:  # noqa: B027 - optional for adapters without resources
        """Release connections."""
