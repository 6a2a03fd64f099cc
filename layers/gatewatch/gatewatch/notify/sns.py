"""SNS notifier: e-mail subscribers get the human text; SQS and Lambda subscribers get the structured envelope.

One ``Publish`` with ``MessageStructure=json``: ``default``/``email`` carry the text, ``sqs``/``lambda`` carry
``Notification.envelope()`` as JSON. The whole message is kept under SNS's 256 KB limit (the data is summarised
first, then the text is cut), the subject under 100 ASCII characters, and MessageAttributes (kind, target,
category) let subscriptions filter.
"""

from __future__ import annotations

import json
from typing import Any

from gatewatch.notify.base import SUBJECT_MAX, Delivery, Notification, Notifier, one_line

MESSAGE_MAX_BYTES = 262_144  # SNS: message and attributes together
_ATTRIBUTE_ROOM = 2_048  # three short attributes, generously
TRUNCATED = "\n\n[... truncated by gatewatch: the full record is in the results table]"


def _default_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sns", config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    )


def ascii_subject(subject: str) -> str:
    """SNS subjects must be ASCII without control characters."""
    text = one_line(subject.replace("…", "..."), SUBJECT_MAX)
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:SUBJECT_MAX] or "gatewatch"


def _cut_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    keep = max(max_bytes - len(TRUNCATED.encode("utf-8")), 0)
    return raw[:keep].decode("utf-8", errors="ignore") + TRUNCATED


def build_message(notification: Notification, max_bytes: int = MESSAGE_MAX_BYTES - _ATTRIBUTE_ROOM) -> str:
    """The JSON ``Message`` for ``MessageStructure=json``, at most ``max_bytes`` UTF-8 bytes."""
    envelope = notification.envelope()
    text = notification.text

    def render() -> str:
        machine = json.dumps(envelope, default=str, separators=(",", ":"))
        # the NotifyFunction (a lambda subscriber) delivers the same words to the channels: it gets the text too
        lam = json.dumps(envelope | {"text": text}, default=str, separators=(",", ":"))
        return json.dumps({"default": text, "email": text, "sqs": machine, "lambda": lam})

    message = render()
    if len(message.encode("utf-8")) > max_bytes:  # summarise the data first: the table has the full record
        envelope = {**envelope, "data": {"truncated": True, "keys": sorted(map(str, notification.data))[:50]}}
        message = render()
    size = len(message.encode("utf-8"))
    budget = len(text.encode("utf-8"))
    while size > max_bytes and budget > 256:
        # the text appears twice and JSON-escaped: scale it by how far over we are, a little more each round
        budget = max(int(budget * max_bytes / size * 0.95), 256)
        text = _cut_utf8(notification.text, budget)
        message = render()
        size = len(message.encode("utf-8"))
    return message


class SNSNotifier(Notifier):
    channel = "sns"

    def __init__(self, topic_arn: str, client: Any = None):
        if not topic_arn or not topic_arn.startswith("arn:"):
            raise ValueError(f"SNSNotifier topic_arn must be an SNS topic ARN (got {topic_arn!r})")
        self.topic_arn = topic_arn
        self._client = client or _default_client()

    def _deliver(self, notification: Notification) -> Delivery:
        attributes = {
            name: {"DataType": "String", "StringValue": str(value)[:256]}
            for name, value in (("kind", notification.kind), ("target", notification.target),
                                ("category", notification.category))
            if value
        }
        out = self._client.publish(
            TopicArn=self.topic_arn,
            Subject=ascii_subject(notification.subject),
            Message=build_message(notification),
            MessageStructure="json",
            MessageAttributes=attributes,
        )
        return Delivery(self.channel, True, message_id=out.get("MessageId"))
