"""PagerDuty Events API v2: trigger when an incident opens, resolve when it resolves; ``dedup_key`` = incident id."""

from __future__ import annotations

import json
from typing import Any

from gatewatch.notify.base import Delivery, DeliveryError, Notification, Notifier
from gatewatch.notify.content import content
from gatewatch.notify.http import HttpPoster

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
SKIPPED_KINDS = ("reminder",)  # PagerDuty re-notifies by itself; a reminder would only repeat the trigger


def dedup_key(n: Notification) -> str:
    key = (n.data or {}).get("dedup_key") or n.incident_id or f"gatewatch-{n.target}-{n.kind}"
    return str(key)[:255]


def build_event(n: Notification, routing_key: str) -> dict[str, Any]:
    c = content(n)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if c.resolving else "trigger",
        "dedup_key": dedup_key(n),
    }
    if c.resolving:
        return event
    event["payload"] = {
        "summary": c.headline[:SUMMARY_MAX],
        "source": n.target,
        "severity": c.severity,
        "component": n.target,
        "group": "gatewatch",
        "class": c.category or n.kind,
        "custom_details": {
            "title": c.title, "explanation": c.explanation, "incident_id": c.incident_id,
            "evidence": [f"{label}: {text}" for label, text in c.evidence],
            "next_steps": c.next_steps,
        },
    }
    event["client"] = "gatewatch"
    if c.links:
        event["links"] = [{"href": url, "text": text} for text, url in c.links]
    return event


class PagerDutyNotifier(Notifier):
    channel = "pagerduty"

    def __init__(self, routing_key: str, events_url: str = EVENTS_URL, poster: HttpPoster | None = None):
        if not routing_key:
            raise DeliveryError("pagerduty: no routing key", retry=False)
        self.routing_key, self.events_url, self.poster = routing_key, events_url, poster or HttpPoster()

    def _deliver(self, notification: Notification) -> Delivery:
        if notification.kind in SKIPPED_KINDS:
            return Delivery(self.channel, True, detail=f"{notification.kind}: not sent to PagerDuty")
        body = json.dumps(build_event(notification, self.routing_key)).encode()
        r = self.poster.post(self.events_url, body=body, headers={"Content-Type": "application/json"},
                             what="pagerduty")
        try:
            key = json.loads(r.text).get("dedup_key")
        except (ValueError, AttributeError):
            key = None
        return Delivery(self.channel, True, detail=f"HTTP {r.status}", message_id=key)
