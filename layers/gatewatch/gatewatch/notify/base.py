"""The notifier port: tell humans (and machines) that an incident opened, was diagnosed, fixed or needs them.

A delivery failure never raises: the diagnosis already happened and is recorded; a notifier logs the failure and
returns a ``Delivery`` saying so, so the caller can record it and carry on (and the CloudWatch alarms still fire).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("gatewatch.notify")

KINDS = ("opened", "diagnosed", "resolved", "remediated", "escalated", "error", "reminder", "certificate", "test")
RESOLVING_KINDS = ("resolved", "remediated")
SUBJECT_MAX = 100  # SNS: "less than or equal to 100 characters"


@dataclass
class Notification:
    kind: str  # one of KINDS
    target: str
    incident_id: str | None
    subject: str
    text: str  # the human message (e-mail body)
    data: dict[str, Any] = field(default_factory=dict)  # the structured document (verdict, facts summary, ...)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"notification kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not self.target:
            raise ValueError("notification target must not be empty")
        self.subject = one_line(self.subject, SUBJECT_MAX) or f"gatewatch {self.kind}: {self.target}"[:SUBJECT_MAX]

    @property
    def category(self) -> str | None:
        """The verdict category when the document carries one (``data.category`` or ``data.verdict.category``)."""
        value = self.data.get("category") or (self.data.get("verdict") or {}).get("category")
        return str(value) if value else None

    def envelope(self) -> dict[str, Any]:
        """What machine subscribers receive: everything but the human text."""
        return {"kind": self.kind, "target": self.target, "incident_id": self.incident_id,
                "subject": self.subject, "category": self.category, "data": self.data}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Delivery:
    channel: str
    ok: bool
    detail: str | None = None  # the error, when not ok
    message_id: str | None = None
    retry: bool = True  # when not ok: worth trying again on a later round (False: the receiver refused it)
    retry_after_s: float | None = None  # the receiver's Retry-After, when it asked for a longer wait


class DeliveryError(Exception):
    """A channel could not deliver; ``retry`` False when trying again cannot help (a 400, a missing secret)."""

    def __init__(self, message: str, retry: bool = True, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry, self.retry_after_s = retry, retry_after_s


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace (no line breaks: SNS rejects them in subjects) and cut to ``limit`` with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class Notifier(abc.ABC):
    channel = "notifier"

    def send(self, notification: Notification) -> Delivery:
        """Deliver, or log why not; never raises for a delivery failure."""
        try:
            return self._deliver(notification)
        except DeliveryError as exc:
            log.warning("gatewatch: %s could not deliver %s for %s: %s", self.channel, notification.kind,
                        notification.target, exc)
            return Delivery(self.channel, False, str(exc), retry=exc.retry, retry_after_s=exc.retry_after_s)
        except Exception as exc:  # noqa: BLE001 - the port's promise: a failed delivery is a status, not a crash
            log.warning("gatewatch: %s could not deliver %s for %s: %s", self.channel, notification.kind,
                        notification.target, exc)
            return Delivery(self.channel, False, f"{type(exc).__name__}: {exc}")

    @abc.abstractmethod
    def _deliver(self, notification: Notification) -> Delivery: ...
