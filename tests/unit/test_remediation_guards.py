"""Guardrails over the store and the clock: mode and ceiling, cooldown, the per-day circuit, maintenance windows,
idempotency per incident and action, and the host lease's expiry. SQLite store, FakeClock, a fake runner port."""

from datetime import UTC, datetime

import boto3
import pytest
import yaml
from moto import mock_aws

from gatewatch.aws.template_schema import create_table_from_template, load_template
from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.remediation import MODES, active_window, effective_mode, execute, plan
from gatewatch.runner.base import RunResult
from gatewatch.store import DynamoDBStore, SQLiteStore

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LAB_HOST = {
    "local": True,
    "netns": "gwlab",
    "service": "bandarupay-backend",
    "service_manager": "supervisor",
    "supervisor_config": "/tmp/gatewatch-lab/supervisord.conf",
}
DOWN = {"category": "backend_down", "remediation": "restart_backend", "evidence": []}
FACTS = {"onbox": {"service": {"value": {"crash_loop": False}}, "port": {"value": {"listening": False}},
                   "nginx": {"value": {"config_test_ok": True, "config_newer_than_master": True}}}}


def make_target(name="lab-api", mode="auto", **extra):
    doc = {"name": name, "url": "http://127.0.0.1:18080/", "remediation": {"mode": mode}, "host": LAB_HOST}
    for key, value in extra.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]


class FakeRunner:
    """The command-runner port, recording what it was asked to run."""

    def __init__(self, result=None):
        self.calls = []
        self.result = result or RunResult(status="Success", exit_code=0, stdout="bandarupay-backend: started")

    def run_onbox(self, host, params, timeout_s=30.0):
        raise AssertionError("not used")

    def run_remediation(self, host, action, params, timeout_s=60.0):
        self.calls.append((action, params["argv"]))
        return self.result


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, monkeypatch, clock):
    """Every guard against both adapters of the store port: SQLite, and DynamoDB on moto (the template's table).
    The store's own time (leases) is the test's clock here; tests/security gives runners a clock of their own."""
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "gw.db", clock=clock)
        yield s
        s.close()
        return
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(client, load_template(), "gatewatch-remediation")
        yield DynamoDBStore("gatewatch-remediation", client=client, clock=clock)


@pytest.fixture()
def clock():
    return FakeClock(START)


def run_incident(store, clock, target, incident, runner=None, verdict=DOWN, ceiling="auto"):
    """plan + execute, as the pipeline does; returns (decision, outcome or None)."""
    runner = runner or FakeRunner()
    d = plan(verdict, FACTS, target, store=store, clock=clock, ceiling=ceiling, incident_id=incident)
    if not d.allowed:
        return d, None
    out = execute(d, target, runner, store=store, clock=clock, reprobe=lambda: True, recheck=lambda: True,
                  settle_s=5)
    return d, out


# mode and ceiling


@pytest.mark.parametrize(
    ("target_mode", "ceiling", "effective"),
    [("auto", "auto", "auto"), ("auto", "suggest", "suggest"), ("auto", "off", "off"),
     ("suggest", "auto", "suggest"), ("off", "auto", "off"), ("suggest", "off", "off")],
)
def test_the_ceiling_caps_every_target(target_mode, ceiling, effective):
    assert effective_mode(target_mode, ceiling) == effective


def test_an_unknown_ceiling_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="must be one of off, suggest, auto"):
        effective_mode("auto", "yes")
    assert MODES == ("off", "suggest", "auto")


def test_suggest_mode_says_what_would_be_done_and_why_not(store, clock):
    d = plan(DOWN, FACTS, make_target(mode="suggest"), store=store, clock=clock, incident_id="inc-1")
    assert (d.allowed, d.would_run, d.guard, d.mode) == (False, True, "mode", "suggest")
    assert d.reason.startswith(
        "would run `supervisorctl -c /tmp/gatewatch-lab/supervisord.conf restart bandarupay-backend`"
    )
    assert d.reason.endswith("not run: remediation.mode is suggest")
    assert [r.decision for r in store.list_actions(incident_id="inc-1")] == ["considered", "suggested"]


def test_the_default_mode_is_suggest(store, clock):
    target = load_config_text("targets: [{name: a, url: 'http://127.0.0.1:1/', host: {service: app}}]").targets[0]
    assert plan(DOWN, FACTS, target, store=store, clock=clock, incident_id="i").mode == "suggest"


def test_an_auto_target_under_a_suggest_ceiling_only_suggests(store, clock):
    d = plan(DOWN, FACTS, make_target(mode="auto"), store=store, clock=clock, ceiling="suggest", incident_id="i")
    assert (d.allowed, d.would_run, d.mode) == (False, True, "suggest")
    assert "the remediation ceiling is suggest (the target asks for auto)" in d.reason


@pytest.mark.parametrize(("mode", "ceiling", "words"), [("off", "auto", "remediation.mode is off for this target"),
                                                        ("auto", "off", "the remediation ceiling is off")])
def test_off_refuses_before_anything_else(store, clock, mode, ceiling, words):
    d = plan(DOWN, FACTS, make_target(mode=mode), store=store, clock=clock, ceiling=ceiling, incident_id="i")
    assert (d.allowed, d.would_run, d.guard, d.reason) == (False, False, "mode", words)


def test_suggest_mode_still_reports_a_refusal_by_another_guard(store, clock):
    bad = {"category": "backend_crash_loop", "remediation": "restart_backend"}
    d = plan(bad, FACTS, make_target(mode="suggest"), store=store, clock=clock, incident_id="i")
    assert (d.would_run, d.guard) == (False, "catalogue")


def test_a_decision_that_is_not_allowed_is_never_run(store, clock):
    runner = FakeRunner()
    d = plan(DOWN, FACTS, make_target(mode="suggest"), store=store, clock=clock, incident_id="i")
    out = execute(d, make_target(mode="suggest"), runner, store=store, clock=clock, reprobe=lambda: True,
                  recheck=lambda: True)
    assert (out.result, runner.calls) == ("not_run", [])


# cooldown and circuit


def test_cooldown_per_target_and_action(store, clock):
    target = make_target()
    _, first = run_incident(store, clock, target, "inc-1")
    assert first.result == "verified"
    clock.advance(5 * 60)
    d, _ = run_incident(store, clock, target, "inc-2")
    assert (d.allowed, d.guard) == (False, "cooldown")
    assert "restart_backend ran 5 minute(s) ago on this target (incident inc-1); the cooldown is 15 minutes" in d.reason
    # another action is not held back by this one's cooldown
    proxy = {"category": "proxy_down", "remediation": "start_proxy"}
    assert plan(proxy, FACTS, target, store=store, clock=clock, incident_id="inc-2").allowed
    clock.advance(11 * 60)
    d, out = run_incident(store, clock, target, "inc-3")
    assert d.allowed and out.result == "verified"


def test_the_circuit_opens_after_max_per_day_and_closes_a_day_later(store, clock):
    target = make_target(remediation={"cooldown_minutes": 0, "max_per_day": 3})
    for n in range(3):
        _, out = run_incident(store, clock, target, f"inc-{n}")
        assert out.result == "verified"
        clock.advance(3600)
    d, _ = run_incident(store, clock, target, "inc-3")
    assert (d.allowed, d.guard) == (False, "circuit")
    assert "3 remediations ran on this target in the last 24 hours (max_per_day 3): the circuit is open" in d.reason
    clock.advance(21 * 3600)  # 24 hours after the first run
    d, out = run_incident(store, clock, target, "inc-4")
    assert d.allowed and out.result == "verified"


def test_refused_and_suggested_decisions_do_not_count_towards_the_circuit(store, clock):
    target = make_target(mode="suggest", remediation={"cooldown_minutes": 0, "max_per_day": 1})
    for n in range(3):
        d, _ = run_incident(store, clock, target, f"inc-{n}")
        assert d.would_run


# maintenance windows


def test_an_absolute_maintenance_window_silences_remediation(store, clock):
    window = {"start": "2026-11-25T11:30:00Z", "end": "2026-11-25T12:30:00Z", "reason": "db upgrade"}
    target = make_target(maintenance=[window])
    d, _ = run_incident(store, clock, target, "inc-1")
    assert (d.allowed, d.guard) == (False, "maintenance")
    assert d.reason == ("maintenance window 2026-11-25T11:30:00Z to 2026-11-25T12:30:00Z (db upgrade) is active: "
                        "remediation and notifications are silenced")
    clock.advance(30 * 60)  # the end is exclusive
    assert run_incident(store, clock, target, "inc-1")[0].allowed


@pytest.mark.parametrize(
    ("hhmm", "active"),
    [("22:59", False), ("23:00", True), ("00:30", True), ("00:59", True), ("01:00", False), ("12:00", False)],
)
def test_a_daily_window_may_wrap_past_midnight(hhmm, active):
    target = make_target(maintenance=[{"daily": "23:00-01:00"}])
    h, m = map(int, hhmm.split(":"))
    assert (active_window(target, datetime(2026, 11, 25, h, m, tzinfo=UTC)) is not None) == active


def test_a_window_that_opens_between_plan_and_execute_stops_the_run(store, clock):
    target = make_target(maintenance=[{"start": "2026-11-25T12:01:00Z", "end": "2026-11-25T13:00:00Z"}])
    d = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id="inc-1")
    assert d.allowed
    clock.advance(90)
    runner = FakeRunner()
    out = execute(d, target, runner, store=store, clock=clock, reprobe=lambda: True, recheck=lambda: True)
    assert (out.result, out.guard, runner.calls) == ("refused", "maintenance", [])


# idempotency


def test_the_same_incident_and_action_never_runs_twice(store, clock):
    target = make_target(remediation={"cooldown_minutes": 0})
    runner = FakeRunner()
    d, out = run_incident(store, clock, target, "inc-1", runner)
    assert out.result == "verified"
    again = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id="inc-1")
    assert (again.allowed, again.guard) == (False, "idempotency")
    assert "restart_backend was already attempted for incident inc-1" in again.reason
    # a retried step replaying the old, allowed decision is refused by the claim too
    replay = execute(d, target, runner, store=store, clock=clock, reprobe=lambda: True, recheck=lambda: True)
    assert (replay.result, replay.guard) == ("refused", "idempotency")
    assert len(runner.calls) == 1


def test_a_crashed_run_holds_the_host_only_until_its_lease_expires(store, clock):
    target = make_target()
    lock = "remediation-host:local:gwlab"
    assert store.acquire_lock(lock, "crashed-incident:restart_backend", clock.iso(), "2026-11-25T12:15:00.000Z")
    d = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id="inc-2")
    assert (d.allowed, d.guard) == (False, "host_lock")
    assert "another remediation is in flight on this host (crashed-incident:restart_backend" in d.reason
    clock.advance(15 * 60)
    d, out = run_incident(store, clock, target, "inc-2")
    assert d.allowed and out.result == "verified"
    assert store.get_lock(lock) is None  # released after the run


# the store primitives the guards rely on (the same contract applies to DynamoDBStore)


def test_lease_semantics(store):
    t0, t1, t5, t6 = (f"2026-01-01T00:0{m}:00.000Z" for m in (0, 1, 5, 6))
    assert store.acquire_lock("h", "a", t0, t5)
    assert not store.acquire_lock("h", "b", t1, t6)  # held
    assert store.acquire_lock("h", "a", t1, t6)  # the holder may renew (a retried step)
    assert not store.release_lock("h", "b")  # never someone else's
    assert store.get_lock("h").owner == "a"
    assert store.acquire_lock("h", "b", t6, "2026-01-01T00:10:00.000Z")  # expired: taken over
    assert store.get_lock("h").owner == "b"
    assert store.release_lock("h", "b") and store.get_lock("h") is None


def test_claim_semantics(store):
    assert store.claim("k", "t", {"state": "claimed"})
    assert not store.claim("k", "t2", {"state": "other"})
    assert store.get_claim("k").detail == {"state": "claimed"}
    store.update_claim("k", {"state": "verified"})
    assert store.get_claim("k").detail == {"state": "verified"}
    from gatewatch.store import StoreError

    with pytest.raises(StoreError, match="no claim missing"):
        store.update_claim("missing", {})


def test_a_store_that_cannot_be_read_fails_closed(tmp_path, clock):
    from gatewatch.store import StoreError

    class Flaky(SQLiteStore):
        def list_actions(self, incident_id=None, target=None, since=None):
            if target is not None:
                raise StoreError("disk I/O error")
            return super().list_actions(incident_id=incident_id, target=target, since=since)

    store = Flaky(tmp_path / "gw.db")
    d = plan(DOWN, FACTS, make_target(), store=store, clock=clock, incident_id="inc-1")
    assert (d.allowed, d.would_run, d.guard) == (False, False, "store")
    assert "the results store could not be read (disk I/O error); nothing runs without the guardrails" == d.reason
    assert [r.decision for r in store.list_actions(incident_id="inc-1")] == ["considered", "refused"]
    store.close()
