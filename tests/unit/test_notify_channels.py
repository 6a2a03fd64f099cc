"""Every channel against a real loopback receiver: Slack blocks, the PagerDuty event (Events v2 schema), the
webhook signature (checked with an independent HMAC), Teams card, 429 + Retry-After, and a receiver that is down
for a while loses nothing (the dispatcher retries on later rounds, every attempt recorded in the store)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import jsonschema
import pytest

from gatewatch.clock import FakeClock
from gatewatch.config.models import Config
from gatewatch.messages import incident_opened, incident_resolved
from gatewatch.notify import Notification
from gatewatch.notify.dispatch import Dispatcher
from gatewatch.notify.http import HttpPoster, retry_after_seconds
from gatewatch.store import SQLiteStore
from gatewatch.tree import diagnose
from tests.receivers import Receiver

EVENTS = Path(__file__).resolve().parents[1] / "events"
PD_SCHEMA = json.loads((EVENTS / "schemas" / "pagerduty-events-v2.json").read_text())
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as PagerDuty issues them
SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def lab_notification(kind: str = "diagnosed") -> Notification:
    facts = json.loads((EVENTS / "facts" / "classic" / "backend_hung.json").read_text())
    verdict = diagnose(facts)
    subject, text = incident_opened("lab-api-20261125T141751Z", "lab-api", facts["outside"], verdict)
    return Notification(kind=kind, target="lab-api", incident_id="lab-api-20261125T141751Z", subject=subject,
                        text=text, data={"verdict": verdict, "url": facts["config"]["url"]})


def config(channels: dict, target_channels: list[str] | None = None, **notes) -> Config:
    return Config.model_validate({
        "targets": [{"name": "lab-api", "url": "http://127.0.0.1:18080/api/v1/auth/demo-login",
                     "alerting": {"channels": target_channels}}],
        "notifications": {"channels": channels, **notes},
    })


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def dispatcher(cfg, env, store=None, clock=None, sleeps=None):
    sleeps = Sleeps() if sleeps is None else sleeps
    return Dispatcher(cfg, store, clock or FakeClock(), env=env,
                      poster_for=lambda ch: HttpPoster(timeout_s=5, retries=ch.retries, sleep=sleeps))


def test_slack_gets_block_kit_with_verdict_evidence_next_steps_and_buttons(receiver):
    cfg = config({"ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}"}}, ["ops"])
    [d] = dispatcher(cfg, {"GATEWATCH_SLACK_URL": receiver.url}).send_all(lab_notification())
    assert d.ok, d.detail
    [req] = receiver.requests
    assert req.headers["content-type"] == "application/json"
    msg = req.json()
    assert msg["text"].startswith("[gatewatch] DOWN lab-api backend_hung")
    types = [b["type"] for b in msg["blocks"]]
    assert types == ["header", "section", "section", "section", "actions", "context"]
    assert len(msg["blocks"][0]["text"]["text"]) <= 150
    evidence = msg["blocks"][2]["text"]["text"]
    assert evidence.startswith("*Evidence that decided it*") and "Local health check" in evidence
    assert "upstream timed out (110" in evidence and "&lt;" not in evidence.split("nginx error log")[0][:0]
    assert "*Next steps*" in msg["blocks"][3]["text"]["text"]
    [button] = msg["blocks"][4]["elements"]
    assert button["url"] == "http://127.0.0.1:18080/api/v1/auth/demo-login"
    assert "incident: lab-api-20261125T141751Z" in msg["blocks"][5]["elements"][0]["text"]
    assert all(len(b["text"]["text"]) <= 3000 for b in msg["blocks"] if b["type"] == "section")


def test_slack_escapes_what_the_log_says():
    from gatewatch.notify.slack import build_payload

    n = lab_notification()
    n.data["verdict"]["deciding"].append({"label": "x", "text": "<!channel> & <https://evil|click>"})
    text = json.dumps(build_payload(n))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text


def test_pagerduty_triggers_then_resolves_with_the_incident_as_dedup_key(receiver):
    receiver.script = [(202, {}, '{"status":"success","dedup_key":"lab-api-20261125T141751Z"}')]
    cfg = config({"pd": {"type": "pagerduty", "routing_key": "${GATEWATCH_PD_KEY}", "events_url": receiver.url}},
                 ["pd"])
    disp = dispatcher(cfg, {"GATEWATCH_PD_KEY": ROUTING_KEY})
    [d1] = disp.send_all(lab_notification())
    subject, text = incident_resolved("lab-api-20261125T141751Z", "lab-api", 95.0, "recovered", "backend_hung")
    [d2] = disp.send_all(Notification("resolved", "lab-api", "lab-api-20261125T141751Z", subject, text,
                                      {"resolution": "recovered"}))
    assert d1.ok and d2.ok and d1.message_id == "lab-api-20261125T141751Z"
    trigger, resolve = (r.json() for r in receiver.requests)
    for event in (trigger, resolve):
        jsonschema.validate(event, PD_SCHEMA)
        assert event["routing_key"] == ROUTING_KEY and event["dedup_key"] == "lab-api-20261125T141751Z"
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    p = trigger["payload"]
    assert p["severity"] == "critical" and p["source"] == "lab-api" and p["class"] == "backend_hung"
    assert len(p["summary"]) <= 1024 and p["summary"].startswith("[gatewatch] DOWN lab-api")
    assert any("Local health check" in e for e in p["custom_details"]["evidence"])


def test_pagerduty_schema_rejects_what_the_api_rejects():
    from gatewatch.notify.pagerduty import build_event

    event = build_event(lab_notification(), ROUTING_KEY)
    event["payload"]["summary"] = "x" * 1025
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, PD_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"routing_key": ROUTING_KEY, "event_action": "trigger"}, PD_SCHEMA)


def test_webhook_body_is_signed_and_an_independent_hmac_agrees(receiver):
    cfg = config({"hook": {"type": "webhook", "url": receiver.url, "secret": "${GATEWATCH_HOOK_SECRET}"}}, ["hook"])
    [d] = dispatcher(cfg, {"GATEWATCH_HOOK_SECRET": SECRET}).send_all(lab_notification())
    assert d.ok
    [req] = receiver.requests
    stamp = req.headers["x-gatewatch-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-gatewatch-signature"], f"sha256={expected}")
    doc = req.json()
    assert doc["schema"] == "gatewatch.notification/1" and doc["kind"] == "diagnosed"
    assert doc["delivery_id"] == req.headers["x-gatewatch-delivery"] and doc["category"] == "backend_hung"
    assert doc["data"]["verdict"]["deciding"][0]["fact"] == "outside" and "Evidence that decided it" in doc["text"]
    tampered = req.body.replace(b"backend_hung", b"backend_down")
    forged = hmac.new(SECRET.encode(), f"{stamp}.".encode() + tampered, hashlib.sha256).hexdigest()
    assert req.headers["x-gatewatch-signature"] != f"sha256={forged}"


def test_teams_gets_an_adaptive_card(receiver):
    cfg = config({"team": {"type": "teams", "url": "${GATEWATCH_TEAMS_URL}"}}, ["team"])
    [d] = dispatcher(cfg, {"GATEWATCH_TEAMS_URL": receiver.url}).send_all(lab_notification())
    assert d.ok
    msg = receiver.requests[0].json()
    [att] = msg["attachments"]
    card = att["content"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive" and card["type"] == "AdaptiveCard"
    facts = next(b for b in card["body"] if b["type"] == "FactSet")["facts"]
    assert facts[0]["title"] == "What the outside sees" and card["actions"][0]["type"] == "Action.OpenUrl"


def test_429_with_retry_after_is_honoured_then_delivered(receiver):
    receiver.script = [(429, {"Retry-After": "2"}, "slow down"), (503, {}, "busy"), (200, {}, "ok")]
    cfg = config({"ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}", "retries": 3}}, ["ops"])
    sleeps = Sleeps()
    [d] = dispatcher(cfg, {"GATEWATCH_SLACK_URL": receiver.url}, sleeps=sleeps).send_all(lab_notification())
    assert d.ok and d.detail == "HTTP 200 after 3 attempt(s)"
    assert sleeps == [2.0, 1.0]  # the receiver's Retry-After, then backoff (0.5 s doubled)
    assert len(receiver.requests) == 3


def test_a_long_retry_after_is_not_slept_through_but_scheduled(receiver, tmp_path):
    receiver.script = [(429, {"Retry-After": "600"}, "later"), (200, {}, "ok")]
    cfg = config({"ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}"}}, ["ops"])
    store, clock = SQLiteStore(tmp_path / "db"), FakeClock()
    disp = dispatcher(cfg, {"GATEWATCH_SLACK_URL": receiver.url}, store, clock)
    [d] = disp.send_all(lab_notification())
    assert not d.ok and d.retry_after_s == 600
    [rec] = store.list_notifications()
    assert rec.status == "pending" and rec.next_at == "2026-01-01T00:10:00.000Z"
    clock.advance(300)
    assert disp.retry_pending() == []  # not yet
    clock.advance(300)
    assert [x.ok for x in disp.retry_pending()] == [True]


def test_a_receiver_down_for_a_while_loses_nothing(receiver, tmp_path):
    receiver.script = [(503, {}, "down")] * 6 + [(200, {}, "ok")]
    cfg = config({"ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}", "retries": 1},
                  "hook": {"type": "webhook", "url": receiver.url.replace("/hook", "/other")}}, ["ops"])
    store, clock = SQLiteStore(tmp_path / "db"), FakeClock()
    disp = dispatcher(cfg, {"GATEWATCH_SLACK_URL": receiver.url}, store, clock)
    first = lab_notification()
    subject, text = incident_resolved(first.incident_id, "lab-api", 300.0, "recovered", "backend_hung")
    second = Notification("resolved", "lab-api", first.incident_id, subject, text, {})
    assert [d.ok for d in disp.send_all(first)] == [False]  # 2 attempts
    assert [d.ok for d in disp.send_all(second)] == [False]  # queued behind the first, not sent
    assert {r.status for r in store.list_notifications()} == {"pending"} and len(receiver.requests) == 2
    delivered = []
    for _ in range(6):  # later rounds
        clock.advance(120)
        delivered += [d for d in disp.retry_pending() if d.ok]
    records = store.list_notifications()
    assert len(delivered) == 2 and {r.status for r in records} == {"delivered"}
    said = [json.loads(r.body)["text"].split()[1] for r in receiver.requests]
    assert said == ["DOWN"] * 7 + ["RESOLVED"]  # six 503s, then the story in order
    assert {r.event: r.attempts for r in records} == {"diagnosed": 4, "resolved": 1}


def test_a_refusal_is_not_retried_and_a_missing_secret_is_named(receiver, tmp_path):
    receiver.script = [(400, {}, "invalid_payload")]
    cfg = config({"ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}"},
                  "pd": {"type": "pagerduty", "routing_key": "${GATEWATCH_PD_KEY}"}}, ["ops", "pd"])
    store = SQLiteStore(tmp_path / "db")
    d1, d2 = dispatcher(cfg, {"GATEWATCH_SLACK_URL": receiver.url}, store).send_all(lab_notification())
    assert not d1.ok and not d1.retry and "HTTP 400 invalid_payload" in d1.detail
    assert not d2.ok and "GATEWATCH_PD_KEY is not set" in d2.detail
    status = {r.channel: r.status for r in store.list_notifications()}
    assert status == {"ops": "failed", "pd": "pending"} and len(receiver.requests) == 1


def test_secrets_are_references_with_the_allowed_prefix_only():
    with pytest.raises(ValueError, match="url of a slack channel is a secret"):
        config({"ops": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"}})
    with pytest.raises(ValueError, match="AWS SDK or Lambda runtime variable"):
        config({"ops": {"type": "slack", "url": "${AWS_SECRET_ACCESS_KEY}"}})
    with pytest.raises(ValueError, match="may not be expanded"):
        config({"ops": {"type": "slack", "url": "${SLACK_URL}"}})
    with pytest.raises(ValueError, match="unknown channel"):
        config({}, ["nope"])


def test_channels_per_target_or_globally_and_by_kind():
    cfg = Config.model_validate({
        "targets": [{"name": "a", "url": "https://a.example"},
                    {"name": "b", "url": "https://b.example", "alerting": {"channels": ["pd"]}}],
        "notifications": {"default": ["ops"], "channels": {
            "ops": {"type": "slack", "url": "${GATEWATCH_SLACK_URL}", "kinds": ["diagnosed", "resolved"]},
            "pd": {"type": "pagerduty", "routing_key": "${GATEWATCH_PD_KEY}"}}},
    })
    disp = Dispatcher(cfg, None, env={})
    assert disp.channel_names("a") == ["ops"] and disp.channel_names("b") == ["pd"]
    assert disp._wants("ops", "diagnosed") and not disp._wants("ops", "reminder")


def test_retry_after_reads_seconds_and_dates():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


def test_notify_test_command_sends_a_sample_through_the_target_channels(receiver, tmp_path, monkeypatch, capsys):
    from gatewatch.cli import main

    receiver.script = [(200, {}, "ok")]
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "targets:\n  - name: shop\n    url: https://shop.example.com/\n    alerting: {channels: [ops]}\n"
        "notifications:\n  channels:\n"
        "    ops: {type: slack, url: '${GATEWATCH_SLACK_URL}'}\n"
        f"    hook: {{type: webhook, url: '{receiver.url}'}}\n"
    )
    monkeypatch.setenv("GATEWATCH_SLACK_URL", receiver.url)
    db = str(tmp_path / "gw.db")
    assert main(["notify", "test", "--config", str(targets), "--target", "shop", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "[gatewatch] TEST shop backend_hung" in out and "ops              delivered" in out
    [req] = receiver.requests
    assert req.json()["text"].startswith("[gatewatch] TEST shop") and "nothing is down" in out
    assert main(["notify", "test", "--config", str(targets), "--target", "shop", "--channel", "hook",
                 "--db", db]) == 0
    assert receiver.requests[1].json()["kind"] == "test"
    assert main(["notify", "test", "--config", str(targets), "--target", "shop", "--channel", "nope"]) == 2
    assert main(["notify", "log", "--db", db]) == 0
    log = capsys.readouterr().out
    assert "hook" in log and "ops" in log and "delivered" in log


def test_the_documented_example_is_what_the_code_produces_today():
    from gatewatch.notify.example import BEGIN, END, render

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "notifications.md").read_text()
    block = doc[doc.index(BEGIN): doc.index(END) + len(END)]
    shown = "tests/events/facts/classic/backend_hung.json"
    fresh = render(root / shown, shown)
    assert block == fresh, "docs/notifications.md is stale: run python -m gatewatch.notify.example --write"


def test_gatewatch_run_delivers_to_the_channels_and_retries_on_the_next_round(receiver, tmp_path, monkeypatch):
    """Locally the same channels work from `gatewatch run`: the pipeline's notifier is the dispatcher."""
    import io

    from gatewatch.cli.run_cmd import build_pipeline
    from gatewatch.config import load_config_text
    from tests.servers import Reply, http_server

    receiver.script = [(503, {}, "busy")] * 4 + [(200, {}, "ok")]
    monkeypatch.setenv("GATEWATCH_SLACK_URL", receiver.url)
    with http_server({"/": Reply(502, "<h1>502 Bad Gateway</h1>", {"Server": "nginx"})}) as site:
        config = load_config_text(f"""
targets:
  - name: shop
    url: {site.url("/")}
    timeout_s: 3
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, channels: [ops]}}
notifications:
  channels:
    ops: {{type: slack, url: "${{GATEWATCH_SLACK_URL}}", retries: 3}}
""")
        store = SQLiteStore(tmp_path / "db")
        out = io.StringIO()
        pipeline = build_pipeline(config, store, stream=out)
        pipeline.notifier.poster_for = lambda ch: HttpPoster(retries=ch.retries, sleep=lambda s: None)
        [report] = pipeline.run_once()
        assert report.event == "opened" and "[gatewatch] DOWN shop" in out.getvalue()
        assert {r.channel: r.status for r in store.list_notifications()} == {"console": "delivered",
                                                                             "ops": "pending"}
        pipeline.notifier.clock = FakeClock(pipeline.clock.now().replace(year=2099))  # a later round
        pipeline.run_once()
    assert {r.channel: r.status for r in store.list_notifications()} == {"console": "delivered", "ops": "delivered"}
    assert receiver.requests[-1].json()["text"].startswith("[gatewatch] DOWN shop")


def test_the_incident_timeline_reads_the_real_notification_records(tmp_path):
    from datetime import UTC, datetime

    from gatewatch.store import Incident, NotificationRecord
    from gatewatch.views.incident import incident_detail

    store = SQLiteStore(tmp_path / "g.db")
    store.create_incident(Incident("api-1", "api", "2026-01-01T00:01:00.000Z"))
    for id_, channel, status, attempts, detail in (("n1", "ops", "pending", 2, "slack: HTTP 503 busy"),
                                                   ("n2", "console", "delivered", 1, None)):
        store.put_notification(NotificationRecord(id=id_, target="api", channel=channel, event="diagnosed",
                                                  first_at="2026-01-01T00:01:05.000Z", incident_id="api-1",
                                                  status=status, attempts=attempts, detail=detail,
                                                  last_at="2026-01-01T00:02:05.000Z"))
    events = incident_detail(store, "api-1", datetime(2026, 1, 1, 1, tzinfo=UTC))["timeline"]
    notified = sorted((e["text"], e["reason"]) for e in events if e["kind"] == "notified")
    assert notified == [("diagnosed notification via console: delivered", ""),
                        ("diagnosed notification via ops: pending after 2 attempts", "slack: HTTP 503 busy")]
