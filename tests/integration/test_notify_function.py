"""NotifyFunction end to end on moto: SNS brings the notification the prober published, the handler reads the
targets from Parameter Store, expands channel secrets from a SecureString (or Secrets Manager), delivers to a real
loopback receiver, records every attempt in the DynamoDB table, and a scheduled run delivers what failed."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json

import pytest

from gatewatch.notify import Notification
from gatewatch.notify.aws import notification_from_sns
from gatewatch.notify.sns import build_message
from tests.receivers import Receiver
from tests.sfn_harness import lambda_context

TARGETS = """
targets:
  - name: shop
    url: https://shop.example.com/
    alerting: {{channels: [ops, hook]}}
notifications:
  channels:
    ops: {{type: slack, url: "${{GATEWATCH_SLACK_URL}}"}}
    hook: {{type: webhook, url: "{hook}", secret: "${{GATEWATCH_HOOK_SECRET}}"}}
    mail: {{type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:gatewatch"}}
  default: [mail]
"""


@pytest.fixture
def stack(aws, dynamo_store, table, monkeypatch):
    slack, hook = Receiver(), Receiver()
    ssm = aws.client("ssm")
    ssm.put_parameter(Name="/gatewatch/targets", Type="String", Value=TARGETS.format(hook=hook.url))
    ssm.put_parameter(Name="/gatewatch/secrets/GATEWATCH_SLACK_URL", Type="SecureString", Value=slack.url)
    aws.client("secretsmanager").create_secret(Name="gatewatch/GATEWATCH_HOOK_SECRET", SecretString="hush")
    monkeypatch.setenv("TARGETS_PARAMETER", "/gatewatch/targets")
    monkeypatch.setenv("TABLE_NAME", table)
    from gatewatch.aws import runtime

    runtime.store.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    app = importlib.import_module("functions.notify.app")
    app.secrets._cache.clear()
    app.secrets._ssm = app.secrets._secrets = None
    yield app, slack, hook, dynamo_store
    runtime.store.cache_clear()
    slack.close()
    hook.close()


def sns_event(notification: Notification) -> dict:
    """What SNS hands a Lambda subscriber of a MessageStructure=json publish: the ``lambda`` variant."""
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.loads(build_message(notification))[
        "lambda"]}}]}


def note() -> Notification:
    return Notification("diagnosed", "shop", "shop-20260101T000000Z", "[gatewatch] DOWN shop backend_down: x",
                        "shop is DOWN.\nEvidence that decided it:\n  - ...\n",
                        {"verdict": {"category": "backend_down", "title": "shop: the backend is not running",
                                     "deciding": [{"label": "Service", "text": "systemd state inactive"}]}})


def test_sns_notification_reaches_slack_and_webhook_with_secrets_from_ssm_and_secrets_manager(stack):
    app, slack, hook, store = stack
    counts = app.handler(sns_event(note()), lambda_context("notify"))
    assert counts == {"attempts": 2, "delivered": 2, "pending": 0, "failed": 0}
    [s] = slack.requests
    assert s.json()["text"] == "[gatewatch] DOWN shop backend_down: x"
    [h] = hook.requests
    stamp = h.headers["x-gatewatch-timestamp"]
    good = hmac.new(b"hush", f"{stamp}.".encode() + h.body, hashlib.sha256).hexdigest()
    assert h.headers["x-gatewatch-signature"] == f"sha256={good}"
    assert h.json()["text"].startswith("shop is DOWN.")  # the words travel with the envelope
    records = store.list_notifications(incident_id="shop-20260101T000000Z")
    assert sorted((r.channel, r.status) for r in records) == [("hook", "delivered"), ("ops", "delivered")]


def test_a_failed_delivery_is_recorded_and_the_schedule_delivers_it(stack):
    app, slack, hook, store = stack
    slack.script = [(500, {}, "oops")] * 4 + [(200, {}, "ok")]
    app.handler(sns_event(note()), lambda_context("notify"))
    assert {r.channel: r.status for r in store.list_notifications(pending_only=True)} == {"ops": "pending"}
    from datetime import timedelta

    from gatewatch.clock import Clock

    class Later(Clock):
        def now(self):
            return super().now() + timedelta(minutes=10)

    from gatewatch.notify.aws import notify_step

    counts = notify_step({"source": "aws.events"}, app.runtime.load_targets(), store, app.secrets, clock=Later())
    assert counts["delivered"] == 1 and store.list_notifications(pending_only=True) == []
    assert len(slack.requests) == 5


def test_alarms_on_the_topic_become_notifications_to_the_default_channels():
    n = notification_from_sns(json.dumps({"AlarmName": "gw-UndeliveredNotificationsAlarm", "NewStateValue": "ALARM",
                                          "NewStateReason": "Threshold Crossed", "AlarmDescription": "failing"}))
    assert n.kind == "error" and n.target == "gatewatch" and "Threshold Crossed" in n.text
    assert n.subject.startswith("[gatewatch] ALARM gatewatch alarm: gw-UndeliveredNotificationsAlarm")
    assert notification_from_sns("not json") is None and notification_from_sns('{"x": 1}') is None


def test_the_state_machine_plain_publish_reaches_the_channels_with_the_verdict_from_the_table(stack):
    """The DiagnoseStateMachine publishes subject + text with kind/target/incident_id attributes (ASL Notify)."""
    import json as _json
    from pathlib import Path

    from gatewatch.store import Incident
    from gatewatch.tree import diagnose

    app, slack, hook, store = stack
    facts = _json.loads((Path(__file__).resolve().parents[1] / "events" / "facts" / "classic" /
                         "backend_hung.json").read_text())
    verdict = diagnose(facts)
    store.create_incident(Incident("shop-20260101T000000Z", "shop", "2026-01-01T00:00:00.000Z",
                                   category=verdict["category"], verdict=verdict, facts=facts))
    asl = _json.loads((Path(__file__).resolve().parents[2] / "infra" / "statemachine" /
                       "diagnose.asl.json").read_text())
    attrs = asl["States"]["Notify"]["Parameters"]["MessageAttributes"]
    assert set(attrs) == {"kind", "target", "incident_id"}
    event = {"Records": [{"Sns": {"Subject": "[gatewatch] DOWN shop backend_hung: stuck", "Message": "shop is DOWN.",
                                  "MessageAttributes": {"kind": {"Type": "String", "Value": "diagnosed"},
                                                        "target": {"Type": "String", "Value": "shop"},
                                                        "incident_id": {"Type": "String",
                                                                        "Value": "shop-20260101T000000Z"}}}}]}
    counts = app.handler(event, lambda_context("notify"))
    assert counts["delivered"] == 2
    blocks = slack.requests[0].json()["blocks"]
    assert any("Evidence that decided it" in (b.get("text") or {}).get("text", "") for b in blocks)
    assert hook.requests[0].json()["data"]["verdict"]["category"] == "backend_hung"
