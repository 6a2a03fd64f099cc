"""Generic webhook: the notification as JSON, signed with HMAC-SHA256 (schema: docs/notifications.md).

Headers: ``X-Gatewatch-Timestamp`` (Unix seconds), ``X-Gatewatch-Signature: sha256=<hex>`` over
``<timestamp>.<body>`` with the channel's secret, ``X-Gatewatch-Event`` (the kind) and ``X-Gatewatch-Delivery``
(one id per notification, the same on every retry: receivers deduplicate on it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from gatewatch.notify.base import Delivery, Notification, Notifier
from gatewatch.notify.http import HttpPoster

SCHEMA = "gatewatch.notification/1"


def build_payload(n: Notification, delivery_id: str | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "delivery_id": delivery_id, **n.envelope(), "text": n.text}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    channel = "webhook"

    def __init__(self, url: str, secret: str | None = None, poster: HttpPoster | None = None,
                 now: Any = time.time):
        self.url, self.secret, self.poster, self.now = url, secret, poster or HttpPoster(), now

    def _deliver(self, notification: Notification) -> Delivery:
        delivery_id = (notification.data or {}).get("delivery_id")
        body = json.dumps(build_payload(notification, delivery_id), default=str, separators=(",", ":")).encode()
        stamp = str(int(self.now()))
        headers = {"Content-Type": "application/json", "X-Gatewatch-Event": notification.kind,
                   "X-Gatewatch-Timestamp": stamp}
        if delivery_id:
            headers["X-Gatewatch-Delivery"] = str(delivery_id)
        if self.secret:
            headers["X-Gatewatch-Signature"] = signature(self.secret, stamp, body)
        r = self.poster.post(self.url, body=body, headers=headers, what="webhook")
        return Delivery(self.channel, True, detail=f"HTTP {r.status} after {r.attempts} attempt(s)")
