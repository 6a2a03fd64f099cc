"""The notifier port and its adapters: console (local default), SNS (AWS), fan-out to several."""

from gatewatch.notify.base import KINDS, SUBJECT_MAX, Delivery, Notification, Notifier
from gatewatch.notify.console import ConsoleNotifier
from gatewatch.notify.fanout import FanoutNotifier
from gatewatch.notify.sns import SNSNotifier

__all__ = [
    "KINDS",
    "SUBJECT_MAX",
    "ConsoleNotifier",
    "Delivery",
    "FanoutNotifier",
    "Notification",
    "Notifier",
    "SNSNotifier",
]
