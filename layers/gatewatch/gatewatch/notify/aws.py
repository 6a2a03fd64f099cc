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


def notification_from_sns(message: str) -> Notification | None:
    """The envelope gatewatch.notify.sns published (its ``lambda`` variant), or a CloudWatch alarm; else None."""
    try:
        doc = json.loads(message)
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict):
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


def notify_step(event: dict[str, Any], config: Any, store: Any, env: Mapping[str, str],
                clock: Clock | None = None, poster_for: Any = None) -> dict[str, int]:
    """Deliver what SNS brought, or retry pending deliveries on a schedule; counts for the metrics."""
    dispatcher = Dispatcher(config, store, clock, env=env, poster_for=poster_for, skip_types=("sns", "console"))
    records = event.get("Records") or []
    if records:
        for record in records:
            note = notification_from_sns(((record or {}).get("Sns") or {}).get("Message"))
            if note is not None:
                dispatcher.send_all(note)
    else:
        dispatcher.retry_pending()
    statuses = [r.status for r in dispatcher.recorded]
    return {"attempts": len(statuses), "delivered": statuses.count("delivered"),
            "pending": statuses.count("pending"), "failed": statuses.count("failed")}
