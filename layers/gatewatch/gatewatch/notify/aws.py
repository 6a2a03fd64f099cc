"""What the NotifyFunction does, as a plain function: SNS delivered a notification (or an alarm) -> the channels;
a scheduled event -> send again what failed before. No AWS SDK here: the handler passes the store and the
secret environment (gatewatch.notify.secrets)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gatewatch.clock import Clock
from gatewatch.messages import subject_line
from gatewatch.notify.base import KINDS, Notification
from gatewatch.notify.dispatch import Dispatcher

ALARM_TARGET = "gatewatch"  # alarms are about the deployment, not one target: they go to notifications.default


def notification_from_sns(message: str, subject: str | None = None,
                          attributes: dict[str, Any] | None = None) -> Notification | None:
    """The envelope gatewatch.notify.sns published (its ``lambda`` variant), a CloudWatch alarm, or a plain
    message with ``kind``/``target``/``incident_id`` message attributes (the state machine's publish); else None."""
    try:
        doc = json.loads(message)
    except (TypeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        attrs = {k: (v or {}).get("Value") for k, v in (attributes or {}).items() if isinstance(v, dict)}
        if attrs.get("kind") in KINDS and attrs.get("target"):
            return Notification(kind=attrs["kind"], target=str(attrs["target"]),
                                incident_id=attrs.get("incident_id") or None, subject=str(subject or ""),
                                text=str(message or ""), data={})
        return None
    if doc.get("kind") in KINDS and doc.get("target"):
        return Notification(kind=doc["kind"], target=str(doc["target"]), incident_id=doc.get("incident_id"),
                            subject=str(doc.get("subject") or ""), text=str(doc.get("text") or doc.get("subject")
                                                                              or ""),
                            data=doc.get("data") if isinstance(doc.get("data"), dict) else {})
    if doc.get("AlarmName"):
        state = str(doc.get("NewStateValue") or "ALARM")
        name = str(doc["AlarmName"])
        subject = subject_line("ALARM" if state == "ALARM" else state, ALARM_TARGET, "alarm", name)
        text = (f"CloudWatch alarm {name} is {state}.\n\n{doc.get('AlarmDescription') or ''}\n\n"
                f"Reason: {doc.get('NewStateReason') or 'not given'}\n")
        return Notification(kind="resolved" if state == "OK" else "error", target=ALARM_TARGET, incident_id=None,
                            subject=subject, text=text,
                            data={"category": "alarm", "dedup_key": f"gatewatch-alarm-{name}"})
    return None


def with_incident(note: Notification, store: Any) -> Notification:
    """A plain message names its incident only: the verdict and remediation come from the table (the channels
    lay out the evidence that decided from them)."""
    if note.data or not note.incident_id:
        return note
    try:
        incident = store.get_incident(note.incident_id)
    except Exception:  # noqa: BLE001 - the words still go out without the structured part
        incident = None
    if incident is None:
        return note
    data: dict[str, Any] = {k: v for k, v in (("verdict", incident.verdict), ("remediation", incident.remediation),
                                               ("url", (incident.facts or {}).get("config", {}).get("url")))
                            if v}
    return Notification(note.kind, note.target, note.incident_id, note.subject, note.text, data)


def notify_step(event: dict[str, Any], config: Any, store: Any, env: Mapping[str, str],
                clock: Clock | None = None, poster_for: Any = None) -> dict[str, int]:
    """Deliver what SNS brought, or retry pending deliveries on a schedule; counts for the metrics."""
    dispatcher = Dispatcher(config, store, clock, env=env, poster_for=poster_for, skip_types=("sns", "console"))
    records = event.get("Records") or []
    if records:
        for record in records:
            sns = (record or {}).get("Sns") or {}
            note = notification_from_sns(sns.get("Message"), sns.get("Subject"), sns.get("MessageAttributes"))
            if note is not None:
                dispatcher.send_all(with_incident(note, store))
    else:
        dispatcher.retry_pending()
    statuses = [r.status for r in dispatcher.recorded]
    return {"attempts": len(statuses), "delivered": statuses.count("delivered"),
            "pending": statuses.count("pending"), "failed": statuses.count("failed")}
