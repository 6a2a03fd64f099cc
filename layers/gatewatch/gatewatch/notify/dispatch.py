"""The channels a target's notifications go to, every attempt recorded in the store, failures retried later.

``Dispatcher`` is a notifier (the pipeline's port): it sends each notification to the console (locally) and to the
channels the target names (``alerting.channels``, else ``notifications.default``), records one
``NotificationRecord`` per channel, and on every round (``retry_pending``) sends again what failed, with growing
gaps, until it is delivered or ``notifications.redeliver_rounds`` attempts were made. A failed delivery is never
silently dropped: it stays ``pending`` and then ``failed`` in the store (the AWS alarm counts those).

Secrets are ``${VAR}`` references in the configuration, expanded only when a notification is sent, through the
shared expansion function (gatewatch.config.envrefs) over an environment: ``os.environ`` locally, Parameter
Store / Secrets Manager on AWS (gatewatch.notify.secrets).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from gatewatch.clock import Clock, iso, parse_iso
from gatewatch.config import envrefs
from gatewatch.notify.base import Delivery, DeliveryError, Notification, Notifier
from gatewatch.notify.http import HttpPoster
from gatewatch.store.base import NotificationRecord, ResultsStore

log = logging.getLogger("gatewatch.notify")
FIRST_GAP_S, MAX_GAP_S = 30, 1800


_last_ns = 0


def _sortable_id() -> str:
    """Unique, and in sending order when compared as text (records with the same time keep their order)."""
    global _last_ns
    _last_ns = max(_last_ns + 1, time.time_ns())
    return f"{_last_ns:016x}{uuid.uuid4().hex[:6]}"


def _expand(text: str | None, env: Mapping[str, str], settings: Any) -> str | None:
    if text is None:
        return None
    try:
        return envrefs.expand(text, env, settings.env_prefix, frozenset(settings.env_allow))
    except envrefs.EnvRefError as exc:
        raise DeliveryError(str(exc), retry=True) from None


def build_channel(name: str, channel: Any, settings: Any, env: Mapping[str, str],
                  poster: HttpPoster | None = None) -> Notifier:
    """The notifier for one configured channel, its secrets expanded now (one module per type)."""
    poster = poster or HttpPoster(timeout_s=channel.timeout_s, retries=channel.retries)
    kind = channel.type
    if kind == "webhook":
        from gatewatch.notify.webhook import WebhookNotifier

        notifier: Notifier = WebhookNotifier(_expand(channel.url, env, settings),
                                             _expand(channel.secret, env, settings), poster)
    elif kind == "slack":
        from gatewatch.notify.slack import SlackNotifier

        notifier = SlackNotifier(_expand(channel.url, env, settings), poster)
    elif kind == "teams":
        from gatewatch.notify.teams import TeamsNotifier

        notifier = TeamsNotifier(_expand(channel.url, env, settings), poster)
    elif kind == "pagerduty":
        from gatewatch.notify.pagerduty import PagerDutyNotifier

        notifier = PagerDutyNotifier(_expand(channel.routing_key, env, settings), channel.events_url, poster)
    elif kind == "sns":
        from gatewatch.notify.sns import SNSNotifier

        notifier = SNSNotifier(channel.topic_arn)
    elif kind == "console":
        from gatewatch.notify.console import ConsoleNotifier

        notifier = ConsoleNotifier()
    else:  # pragma: no cover - the config schema allows only the types above
        raise DeliveryError(f"unknown channel type {kind}", retry=False)
    notifier.channel = name
    return notifier


class Dispatcher(Notifier):
    channel = "dispatch"

    def __init__(self, config: Any, store: ResultsStore | None, clock: Clock | None = None, *,
                 local: list[Notifier] | None = None, env: Mapping[str, str] | None = None,
                 poster_for: Callable[[Any], HttpPoster] | None = None, skip_types: tuple[str, ...] = ()):
        self.config, self.store, self.clock = config, store, clock or Clock()
        self.local = list(local or [])
        self.env = os.environ if env is None else env
        self.poster_for = poster_for
        self.skip_types = skip_types  # e.g. ("sns",) in the NotifyFunction, which SNS itself invoked
        self.recorded: list[NotificationRecord] = []  # every attempt this dispatcher made (metrics, tests)

    # -- which channels -------------------------------------------------------------------------------------
    def channel_names(self, target: str, only: str | None = None) -> list[str]:
        notes = self.config.notifications
        try:
            names = self.config.target(target).alerting.channels
        except KeyError:
            names = None
        names = list(notes.default if names is None else names)
        if only is not None:
            if only not in notes.channels:
                raise KeyError(only)
            names = [only]
        return [n for n in names if notes.channels[n].type not in self.skip_types]

    def _wants(self, name: str, kind: str) -> bool:
        kinds = self.config.notifications.channels[name].kinds
        return kinds is None or kind in kinds

    def _notifier(self, name: str) -> Notifier:
        channel = self.config.notifications.channels[name]
        poster = self.poster_for(channel) if self.poster_for else None
        return build_channel(name, channel, self.config.settings, self.env, poster)

    # -- sending ----------------------------------------------------------------------------------------------
    def _deliver(self, notification: Notification) -> Delivery:
        results = self.send_all(notification)
        failed = [f"{d.channel}: {d.detail}" for d in results if not d.ok]
        return Delivery(self.channel, not failed, "; ".join(failed) or None)

    def send_all(self, notification: Notification, only: str | None = None) -> list[Delivery]:
        delivery_id = _sortable_id()
        notification = replace(notification, data={**(notification.data or {}), "delivery_id": delivery_id})
        now = self.clock.iso()
        results = []
        if only is None:
            for notifier in self.local:
                d = notifier.send(notification)
                results.append(d)
                self._record(NotificationRecord(
                    id=f"{delivery_id}.{notifier.channel}", target=notification.target, channel=notifier.channel,
                    event=notification.kind, first_at=now, incident_id=notification.incident_id,
                    subject=notification.subject, notification=notification.to_dict()), d)
        for name in self.channel_names(notification.target, only):
            if not self._wants(name, notification.kind) and only is None:
                continue
            record = NotificationRecord(
                id=f"{delivery_id}.{name}", target=notification.target, channel=name, event=notification.kind,
                first_at=now, incident_id=notification.incident_id, subject=notification.subject,
                notification=notification.to_dict())
            if only is None and self._queued(notification.target, name):
                # an earlier notification to this channel is still waiting: queue behind it, keep the order
                results.append(self._queue(record))
                continue
            results.append(self._attempt(name, notification, record))
        return results

    def _queued(self, target: str, channel: str) -> bool:
        if self.store is None:
            return False
        try:
            return any(r.channel == channel for r in self.store.list_notifications(target=target, pending_only=True))
        except Exception:  # noqa: BLE001 - an unreadable store must not stop a delivery
            return False

    def _queue(self, record: NotificationRecord) -> Delivery:
        record.status, record.next_at, record.detail = "pending", record.first_at, "queued behind an earlier one"
        self.store.put_notification(record)  # type: ignore[union-attr] - _queued is False without a store
        return Delivery(record.channel, False, record.detail)

    def _attempt(self, name: str, notification: Notification, record: NotificationRecord) -> Delivery:
        try:
            notifier = self._notifier(name)
        except DeliveryError as exc:
            d = Delivery(name, False, str(exc), retry=exc.retry)
        else:
            d = notifier.send(notification)
        self._record(record, d)
        return d

    def _record(self, record: NotificationRecord, d: Delivery) -> None:
        now = self.clock.now()
        record.attempts += 1
        record.last_at = iso(now)
        record.detail = d.detail if not d.ok else (d.message_id or d.detail)
        if d.ok:
            record.status, record.next_at = "delivered", None
        elif d.retry and record.attempts < self.config.notifications.redeliver_rounds:
            gap = min(FIRST_GAP_S * 2 ** (record.attempts - 1), MAX_GAP_S)
            record.status = "pending"
            record.next_at = iso(now + timedelta(seconds=max(gap, d.retry_after_s or 0)))
        else:
            record.status, record.next_at = "failed", None
            log.error("gatewatch: %s gave up on %s for %s after %d attempt(s): %s", record.channel, record.event,
                      record.target, record.attempts, d.detail)
        self.recorded.append(record)
        if self.store is None:
            return
        try:
            self.store.put_notification(record)
        except Exception as exc:  # noqa: BLE001 - recording must not stop the delivery itself
            log.warning("gatewatch: could not record the %s notification on %s: %s", record.event, record.channel,
                        exc)

    def retry_pending(self, limit: int = 100) -> list[Delivery]:
        """Send again every pending delivery whose time has come (called once per round)."""
        if self.store is None:
            return []
        try:
            pending = self.store.list_notifications(pending_only=True, limit=limit)
        except Exception as exc:  # noqa: BLE001
            log.warning("gatewatch: cannot read pending notifications: %s", exc)
            return []
        now = self.clock.now()
        out = []
        blocked: set[tuple[str, str]] = set()
        for record in reversed(pending):  # oldest first: the story arrives in order, per target and channel
            key = (record.target, record.channel)
            if key in blocked or (record.next_at and parse_iso(record.next_at) > now):
                blocked.add(key)
                continue
            if record.channel not in self.config.notifications.channels:
                record.status, record.detail = "failed", f"channel {record.channel} is no longer configured"
                self.store.put_notification(record)
                continue
            notification = Notification(**record.notification)
            d = self._attempt(record.channel, notification, record)
            if not d.ok:
                blocked.add(key)
            out.append(d)
        return out
