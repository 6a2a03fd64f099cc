"""Every outbound notification call: one ``requests`` Session, timeouts, bounded retries with backoff on
connection errors, 429 and 5xx, honouring ``Retry-After``.

A wait longer than ``max_wait_s`` is not slept here (a round must not stall on one receiver): the call fails as
retryable with the receiver's wait, and the dispatcher tries again on a later round from that time.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from gatewatch import __version__
from gatewatch.notify.base import Delivery, DeliveryError, Notification, Notifier

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"gatewatch/{__version__} (+notifications)"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Response:
    status: int
    text: str
    attempts: int
    headers: dict[str, str]


class HttpPoster:
    def __init__(self, *, timeout_s: float = 10.0, connect_timeout_s: float = 3.0, retries: int = 3,
                 backoff_s: float = 0.5, max_wait_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None):
        self.timeout = (min(connect_timeout_s, timeout_s), timeout_s)
        self.retries, self.backoff_s, self.max_wait_s, self.sleep = retries, backoff_s, max_wait_s, sleep
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def post(self, url: str, *, body: bytes, headers: dict[str, str] | None = None, what: str = "POST") -> Response:
        """POST ``body``; a 2xx returns, anything else raises DeliveryError (retryable or not)."""
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                r = self.session.post(url, data=body, headers=headers or {}, timeout=self.timeout,
                                      allow_redirects=False)
            except requests.RequestException as exc:
                error, status = f"{what}: {type(exc).__name__}: {_short(str(exc))}", None
            else:
                if 200 <= r.status_code < 300:
                    return Response(r.status_code, r.text[:2000], attempt, dict(r.headers))
                status = r.status_code
                error = f"{what}: HTTP {status} {_short(r.text)}".rstrip()
                if status not in RETRY_STATUSES:
                    raise DeliveryError(error, retry=False)
                wait = retry_after_seconds(r.headers.get("Retry-After"))
            if wait is not None and wait > self.max_wait_s:
                raise DeliveryError(f"{error} (asked to wait {wait:.0f} s)", retry=True, retry_after_s=wait)
            if attempt > self.retries:
                raise DeliveryError(f"{error} (after {attempt} attempts)", retry=True, retry_after_s=wait)
            self.sleep(wait if wait is not None else min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s))


def _short(text: Any, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class JsonWebhookNotifier(Notifier):
    """An incoming webhook that takes one JSON document built by ``payload`` (Slack, Teams)."""

    channel = "webhook"

    def __init__(self, url: str, poster: HttpPoster | None = None):
        self.url, self.poster = url, poster or HttpPoster()

    def payload(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    def _deliver(self, notification: Notification) -> Delivery:
        import json

        body = json.dumps(self.payload(notification)).encode()
        r = self.poster.post(self.url, body=body, headers={"Content-Type": "application/json"}, what=self.channel)
        return Delivery(self.channel, True, detail=f"HTTP {r.status} after {r.attempts} attempt(s)")
