"""Console notifier: the local pipeline's default; prints the human text to a stream."""

from __future__ import annotations

import sys
from typing import TextIO

from gatewatch.notify.base import Delivery, Notification, Notifier


class ConsoleNotifier(Notifier):
    channel = "console"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream  # resolved at send time so a swapped sys.stdout (tests, pagers) is honoured

    def _deliver(self, notification: Notification) -> Delivery:
        stream = self.stream or sys.stdout
        stream.write(f"== {notification.subject}\n{notification.text.rstrip()}\n")
        stream.flush()
        return Delivery(self.channel, True)
