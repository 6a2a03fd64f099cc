"""Notifier port: validation, the console and fan-out adapters, and the SNS message bounds (moto as the SNS API)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from moto import mock_aws

from gatewatch.notify import ConsoleNotifier, Delivery, FanoutNotifier, Notification, Notifier, SNSNotifier
from gatewatch.notify.sns import MESSAGE_MAX_BYTES, ascii_subject, build_message


def note(**kw) -> Notification:
    base = {"kind": "diagnosed", "target": "api", "incident_id": "api-20260101T000000Z",
            "subject": "api is down: backend_down", "text": "The backend is not running.\nRestart it.",
            "data": {"verdict": {"category": "backend_down", "confidence": "high"}}}
    return Notification(**{**base, **kw})


def test_bad_kind_and_empty_target_are_named():
    with pytest.raises(ValueError, match="kind must be one of opened, diagnosed"):
        note(kind="exploded")
    with pytest.raises(ValueError, match="target must not be empty"):
        note(target="")


def test_subject_is_one_line_and_at_most_100_characters():
    n = note(subject="line one\nline two " + "x" * 200)
    assert "\n" not in n.subject and len(n.subject) == 100 and n.subject.startswith("line one line two")
    assert note(subject="").subject == "gatewatch diagnosed: api"
    assert n.category == "backend_down" and note(data={"category": "disk_full"}).category == "disk_full"


def test_console_prints_subject_and_text():
    out = io.StringIO()
    delivery = ConsoleNotifier(out).send(note())
    assert delivery.ok and delivery.channel == "console"
    assert out.getvalue() == "== api is down: backend_down\nThe backend is not running.\nRestart it.\n"


class Broken(Notifier):
    channel = "broken"

    def _deliver(self, notification):
        raise ConnectionError("smtp relay on fire")


def test_a_failing_notifier_returns_a_status_and_fanout_still_delivers_the_rest(caplog):
    out = io.StringIO()
    fan = FanoutNotifier([Broken(), ConsoleNotifier(out)])
    delivery = fan.send(note())
    assert delivery.ok is False and "broken: ConnectionError: smtp relay on fire" in delivery.detail
    assert "backend is not running" in out.getvalue()
    assert [d.ok for d in fan.send_all(note())] == [False, True]
    assert "could not deliver diagnosed for api" in caplog.text


def test_sns_message_fits_the_limit_even_with_huge_text_and_data():
    huge = note(text="ü" * 400_000 + "END", data={"facts": {"log": "x" * 300_000}, "category": "disk_full"})
    message = build_message(huge)
    assert len(message.encode("utf-8")) <= MESSAGE_MAX_BYTES - 2048
    parts = json.loads(message)
    assert parts["default"].endswith("full record is in the results table]")
    assert parts["default"] == parts["email"]
    machine = json.loads(parts["sqs"])
    assert machine["data"] == {"truncated": True, "keys": ["category", "facts"]}
    assert machine["category"] == "disk_full"


def test_sns_message_keeps_small_documents_whole():
    parts = json.loads(build_message(note()))
    assert parts["default"] == "The backend is not running.\nRestart it."
    assert json.loads(parts["lambda"])["data"] == {"verdict": {"category": "backend_down", "confidence": "high"}}


def test_ascii_subject():
    assert ascii_subject("api → down…") == "api ? down..."
    assert ascii_subject("   ") == "gatewatch"


def test_sns_delivery_failure_is_a_status_not_an_exception(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        client = boto3.client("sns", region_name="us-east-1")
        delivery = SNSNotifier("arn:aws:sns:us-east-1:123456789012:missing", client=client).send(note())
    assert isinstance(delivery, Delivery) and delivery.ok is False and "NotFound" in delivery.detail
    with pytest.raises(ValueError, match="topic_arn must be an SNS topic ARN"):
        SNSNotifier("gatewatch-topic", client=object())
