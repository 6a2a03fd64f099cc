"""The notifier port and its adapters: console (local default), SNS (AWS), fan-out to several, and the channels
teams use (webhook, Slack, PagerDuty, Teams) behind the dispatcher that records and retries every delivery."""

from gatewatch.notify.base import KINDS, SUBJECT_MAX, Delivery, DeliveryError, Notification, Notifier
from gatewatch.notify.console import ConsoleNotifier
from gatewatch.notify.fanout import FanoutNotifier
from gatewatch.notify.sns import SNSNotifier

__all__ = [
    "KINDS",
    "SUBJECT_MAX",
    "ConsoleNotifier",
    "Delivery",
    "DeliveryError",
    "FanoutNotifier",
    "Notification",
    "Notifier",
    "SNSNotifier",
]
