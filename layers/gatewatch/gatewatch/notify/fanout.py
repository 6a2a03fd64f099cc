"""Fan-out: one notification to several notifiers; each delivers (or fails) on its own."""

from __future__ import annotations

from collections.abc import Iterable

from gatewatch.notify.base import Delivery, Notification, Notifier


class FanoutNotifier(Notifier):
    channel = "fanout"

    def __init__(self, notifiers: Iterable[Notifier]):
        self.notifiers = list(notifiers)

    def send_all(self, notification: Notification) -> list[Delivery]:
        return [n.send(notification) for n in self.notifiers]

    def _deliver(self, notification: Notification) -> Delivery:
        results = self.send_all(notification)
        failed = [f"{d.channel}: {d.detail}" for d in results if not d.ok]
        return Delivery(self.channel, not failed, "; ".join(failed) or None)
