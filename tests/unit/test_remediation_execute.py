"""Running a fix once and proving it: verify or escalate, one remediation per host under concurrent incidents
(threads and processes on one SQLite file), the step functions the AWS GuardFunction calls, and the audit story."""

import json
import multiprocessing
import threading
from datetime import UTC, datetime

import boto3
import pytest
import yaml
from moto import mock_aws

from gatewatch.aws.template_schema import create_table_from_template, load_template
from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.remediation import Decision, Ticket, begin, conclude, execute, finish_run, plan, story
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
DOWN = {"category": "backend_down", "remediation": "restart_backend",
        "evidence": [{"fact": "onbox.port.value.listening", "value": False, "quote": "PORT NOT LISTENING"}]}
FACTS = {"onbox": {"service": {"value": {"crash_loop": False}}, "port": {"value": {"listening": False}}}}
ARGV = ["supervisorctl", "-c", "/tmp/gatewatch-lab/supervisord.conf", "restart", "bandarupay-backend"]


def make_target(name="lab-api", **remediation):
    doc = {"name": name, "url": "http://127.0.0.1:18080/", "host": LAB_HOST,
           "remediation": {"mode": "auto", **remediation}}
    return load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]


class FakeRunner:
    def __init__(self, result=None, raises=None, hold=None):
        self.calls = []
        self.result = result or RunResult(status="Success", exit_code=0, stdout="bandarupay-backend: started")
        self.raises = raises
        self.hold = hold  # a callable run while "the command runs", to overlap with another incident

    def run_onbox(self, host, params, timeout_s=30.0):
        raise AssertionError("not used")

    def run_remediation(self, host, action, params, timeout_s=60.0):
        self.calls.append({"host": host, "action": action, "argv": params["argv"], "timeout_s": timeout_s})
        if self.hold:
            self.hold()
        if self.raises:
            raise self.raises
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


def allowed(store, clock, target, incident="inc-1"):
    d = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id=incident)
    assert d.allowed, d.reason
    return d


# verify


def test_a_fix_that_works_is_verified_after_the_settle_time(store, clock):
    target, runner = make_target(), FakeRunner()
    d = allowed(store, clock, target)
    seen = []

    def reprobe():
        seen.append(("probe", clock.now()))
        return True, {"status": 401}

    out = execute(d, target, runner, store=store, clock=clock, settle_s=30, timeout_s=45, reprobe=reprobe,
                  recheck=lambda: {"ok": True, "evidence": {"status": 200}})
    assert out.result == "verified"
    assert out.duration_s == 30.0
    assert "restart_backend fixed it: the outside probe and the local health check pass 30.0s after it ran" \
        == out.message
    assert runner.calls == [{"host": target.host, "action": "restart_backend", "argv": ARGV, "timeout_s": 45}]
    assert clock.slept == [30] and seen == [("probe", datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC))]
    assert out.after == {"probe": {"ok": True, "evidence": {"status": 401}},
                         "health": {"ok": True, "evidence": {"status": 200}}}
    assert out.before == DOWN["evidence"]


def test_a_fix_that_does_not_work_escalates_and_is_never_retried(store, clock):
    target = make_target(cooldown_minutes=0)
    runner = FakeRunner()
    d = allowed(store, clock, target)
    out = execute(d, target, runner, store=store, clock=clock, settle_s=10,
                  reprobe=lambda: (False, {"status": 502, "reason": "http_5xx_origin"}), recheck=lambda: True)
    assert out.result == "escalate"
    assert out.message.startswith("remediation failed, a human is needed: the outside probe still failing 10.0s after "
                                  "`supervisorctl -c /tmp/gatewatch-lab/supervisord.conf restart bandarupay-backend`")
    assert out.after["probe"] == {"ok": False, "evidence": {"status": 502, "reason": "http_5xx_origin"}}
    clock.advance(3600)
    again = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id="inc-1")
    assert (again.allowed, again.guard) == (False, "idempotency")
    assert len(runner.calls) == 1
    assert store.get_claim("remediation:inc-1:restart_backend").detail["state"] == "escalate"


def test_a_failed_command_escalates_at_once_without_settling(store, clock):
    target = make_target()
    runner = FakeRunner(RunResult(status="Failed", exit_code=7, stderr="bandarupay-backend: ERROR (spawn error)"))
    out = execute(allowed(store, clock, target), target, runner, store=store, clock=clock, settle_s=30,
                  reprobe=lambda: pytest.fail("no re-probe after a failed command"), recheck=lambda: True)
    assert out.result == "escalate" and clock.slept == []
    assert "ended Failed (bandarupay-backend: ERROR (spawn error))" in out.message
    assert store.get_lock("remediation-host:local:gwlab") is None


def test_a_runner_that_raises_still_releases_the_host_and_escalates(store, clock):
    target = make_target()
    runner = FakeRunner(raises=OSError("supervisorctl: not found"))
    out = execute(allowed(store, clock, target), target, runner, store=store, clock=clock,
                  reprobe=lambda: True, recheck=lambda: True)
    assert (out.result, out.run["status"]) == ("escalate", "Error")
    assert "OSError: supervisorctl: not found" in out.message
    assert store.get_lock("remediation-host:local:gwlab") is None


def test_a_check_that_raises_or_answers_nonsense_counts_as_failed(store, clock):
    target = make_target()

    def boom():
        raise TimeoutError("probe deadline")

    out = execute(allowed(store, clock, target), target, FakeRunner(), store=store, clock=clock,
                  reprobe=boom, recheck=lambda: "fine?")
    assert out.result == "escalate"
    assert out.after["probe"] == {"ok": False, "evidence": {"error": "TimeoutError: probe deadline"}}
    assert out.after["health"] == {"ok": False, "evidence": {"unexpected": "'fine?'"}}


# the audit reads as a story


def test_the_audit_trail_reads_considered_allowed_starting_ran_verified(store, clock):
    target = make_target()
    execute(allowed(store, clock, target), target, FakeRunner(), store=store, clock=clock, settle_s=20,
            reprobe=lambda: True, recheck=lambda: True)
    records = store.list_actions(incident_id="inc-1")
    assert [(r.decision, r.guard) for r in records] == [
        ("considered", "verdict"), ("allowed", "all"), ("starting", "all"), ("ran", "all"), ("verified", "verify")]
    assert [p["guard"] for p in records[1].detail["passed"]] == [
        "catalogue", "host", "precondition:not_crash_looping", "precondition:port_not_held_by_stranger",
        "maintenance", "idempotency", "host_lock", "cooldown", "circuit"]
    assert records[2].detail["argv"] == ARGV and "under the host lease" in records[2].detail["reason"]
    ran = records[3].detail
    assert (ran["argv"], ran["status"], ran["stdout"]) == (ARGV, "Success", "bandarupay-backend: started")
    assert ran["before"] == DOWN["evidence"]
    lines = story(store, "inc-1")
    assert lines[0] == ("2026-11-25T12:00:00.000Z considered restart_backend  [verdict] the verdict backend_down "
                        "suggests restart_backend")
    assert lines[-1].startswith("2026-11-25T12:00:20.000Z verified   restart_backend  [verify] restart_backend fixed")


def test_command_output_in_the_audit_is_bounded(store, clock):
    target = make_target()
    runner = FakeRunner(RunResult(status="Success", exit_code=0, stdout="x" * 100_000))
    execute(allowed(store, clock, target), target, runner, store=store, clock=clock, reprobe=lambda: True,
            recheck=lambda: True)
    ran = [r for r in store.list_actions(incident_id="inc-1") if r.decision == "ran"][0]
    assert len(ran.detail["stdout"]) < 4100 and ran.detail["stdout"].endswith("[96000 more characters]")


# the steps the AWS GuardFunction calls, with JSON between them (Step Functions state)


def test_the_step_functions_carry_plain_json_between_lambdas(store, clock):
    target = make_target()
    d = allowed(store, clock, target)
    wire = json.loads(json.dumps(d.to_dict()))
    ticket = begin(Decision.from_dict(wire), target, store=store, clock=clock, lock_ttl_s=600)
    assert isinstance(ticket, Ticket)
    assert store.get_lock("remediation-host:local:gwlab").expires_at == "2026-11-25T12:10:00.000Z"
    ticket = Ticket.from_dict(json.loads(json.dumps(ticket.to_dict())))
    assert ticket.params["action"] == "restart_backend" and ticket.params["argv"] == ARGV
    result = RunResult(status="Success", exit_code=0)  # SSM SendCommand + GetCommandInvocation in AWS
    finish_run(ticket, result, store=store, clock=clock)
    assert store.get_lock("remediation-host:local:gwlab").owner == ticket.owner  # held through settle + verify
    clock.advance(15)  # the state machine's Wait state
    out = conclude(ticket, result, store=store, clock=clock, probe={"ok": True}, health={"ok": True})
    assert (out.result, out.duration_s) == ("verified", 15.0)
    assert store.get_lock("remediation-host:local:gwlab") is None
    assert json.loads(json.dumps(out.to_dict()))["result"] == "verified"


# two concurrent incidents on one host: exactly one runs


def test_two_incidents_on_one_host_in_threads_run_exactly_one_fix(tmp_path, clock):
    """Two targets on the same host (so no shared cooldown): only the host lease keeps them apart."""
    db = tmp_path / "gw.db"
    stores = [SQLiteStore(db), SQLiteStore(db)]  # one connection per worker, as two processes would have
    targets = [make_target("api-a"), make_target("api-b")]
    decisions = [allowed(stores[i], clock, targets[i], f"inc-{i}") for i in range(2)]
    other_done = [threading.Event(), threading.Event()]
    start = threading.Barrier(2)
    runners = [FakeRunner(hold=lambda i=i: other_done[1 - i].wait(10)) for i in range(2)]
    outcomes = [None, None]

    def worker(i):
        start.wait(10)
        try:
            outcomes[i] = execute(decisions[i], targets[i], runners[i], store=stores[i], clock=clock,
                                  reprobe=lambda: True, recheck=lambda: True)
        finally:
            other_done[i].set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.result for o in outcomes) == ["refused", "verified"]
    assert sum(len(r.calls) for r in runners) == 1
    loser = next(o for o in outcomes if o.result == "refused")
    assert loser.guard == "host_lock"
    assert "another remediation is in flight on this host (inc-" in loser.message
    for s in stores:
        s.close()


def test_incidents_on_different_hosts_do_not_block_each_other(tmp_path, clock):
    """The lease is per host: while one host's fix runs, another host's fix runs too."""
    db = tmp_path / "gw.db"
    stores = [SQLiteStore(db), SQLiteStore(db)]
    targets = [load_config_text(yaml.safe_dump({"targets": [
        {"name": f"api-{i}", "url": "http://127.0.0.1:18080/", "remediation": {"mode": "auto"},
         "host": {**LAB_HOST, "netns": f"gwlab{i}"}}]})).targets[0] for i in range(2)]
    decisions = [allowed(stores[i], clock, targets[i], f"inc-{i}") for i in range(2)]
    both_running = threading.Barrier(2)  # each run waits until the other is running too: only if not serialised
    runners = [FakeRunner(hold=lambda: both_running.wait(10)) for _ in range(2)]
    outcomes = [None, None]

    def worker(i):
        outcomes[i] = execute(decisions[i], targets[i], runners[i], store=stores[i], clock=clock,
                              reprobe=lambda: True, recheck=lambda: True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [o.result for o in outcomes] == ["verified", "verified"]
    assert {d.host_key for d in decisions} == {"local:gwlab0", "local:gwlab1"}
    for s in stores:
        s.close()


def _process_worker(db, incident, go, results):
    clock = FakeClock(START)
    store = SQLiteStore(db)
    target = make_target()
    d = plan(DOWN, FACTS, target, store=store, clock=clock, incident_id=incident)
    ran = []

    class SlowRunner(FakeRunner):
        def run_remediation(self, host, action, params, timeout_s=60.0):
            ran.append(action)
            threading.Event().wait(0.3)  # hold the host while the other process tries
            return self.result

    go.wait(10)  # both have planned: now race
    out = execute(d, target, SlowRunner(), store=store, clock=clock, reprobe=lambda: True, recheck=lambda: True)
    results.put((incident, d.allowed, out.result, out.guard, len(ran)))
    store.close()


def test_two_incidents_in_two_processes_run_exactly_one_fix(tmp_path):
    """Same target, two incidents, two processes: whichever loses is refused (host lease, or the cooldown when it
    comes after the winner finished); never two restarts."""
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Barrier(2), ctx.Queue()
    db = str(tmp_path / "gw.db")
    SQLiteStore(db).close()  # create the schema once
    procs = [ctx.Process(target=_process_worker, args=(db, f"inc-{i}", go, results)) for i in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(10)
    assert [g[1] for g in got] == [True, True]  # both planned before either ran
    assert sorted(g[2] for g in got) == ["refused", "verified"]
    assert sum(g[4] for g in got) == 1
    assert {g[3] for g in got if g[2] == "refused"} <= {"host_lock", "cooldown"}
    store = SQLiteStore(db)
    assert [r.incident_id for r in store.list_actions() if r.decision == "ran"] in (["inc-0"], ["inc-1"])
    store.close()


# what proves a fix: the catalogue's verify, per action


def _ran(action, store, clock, target):
    """(ticket, result) of ``action`` begun and run successfully, ready for ``conclude``."""
    wire = json.loads(json.dumps(allowed(store, clock, target).to_dict()))
    wire["action"] = action
    ticket = begin(Decision.from_dict(wire), target, store=store, clock=clock, lock_ttl_s=600)
    assert isinstance(ticket, Ticket), ticket
    result = RunResult(status="Success", exit_code=0)
    finish_run(ticket, result, store=store, clock=clock)
    return ticket, result


MOVED = {"ok": False, "local_health": {"status": None, "error": "connection refused"},
         "via_proxy": {"ok": True, "status": 200, "timed_out": False}}


def test_a_proxy_reload_is_proven_through_the_proxy_not_the_old_backend_address(store, clock):
    """stale_config: the backend moved, nginx was reloaded onto the new address; host.backend_port still names the
    old one, so the direct health check fails although the site answers again. The reload is verified (it was
    escalated), with a word about the stale host section."""
    target = make_target()
    ticket, result = _ran("reload_proxy", store, clock, target)
    clock.advance(10)
    out = conclude(ticket, result, store=store, clock=clock, probe={"ok": True}, health=MOVED)
    assert out.result == "verified", out.message
    assert out.message.startswith("reload_proxy fixed it: the outside probe and the endpoint through nginx on the "
                                  "host pass 10.0s after it ran")
    assert "update the target's host section" in out.message


def test_a_proxy_reload_still_escalates_when_nginx_cannot_reach_the_backend(store, clock):
    target = make_target()
    ticket, result = _ran("reload_proxy", store, clock, target)
    health = {**MOVED, "via_proxy": {"ok": False, "status": 502, "timed_out": False}}
    out = conclude(ticket, result, store=store, clock=clock, probe={"ok": True}, health=health)
    assert out.result == "escalate"
    assert "the endpoint through nginx on the host still failing" in out.message


def test_a_backend_restart_is_still_proven_by_the_backend_itself(store, clock):
    target = make_target()
    ticket, result = _ran("restart_backend", store, clock, target)
    out = conclude(ticket, result, store=store, clock=clock, probe={"ok": True}, health=MOVED)
    assert out.result == "escalate" and "the local health check still failing" in out.message


def test_the_local_runner_carries_the_proxy_check_to_the_verdict(store, clock):
    """The local pipeline's recheck goes through normalise_check: it dropped via_proxy, so `gatewatch lab demo`
    escalated every start_proxy and reload_proxy although nginx answered (make demo: nginx_stopped WRONG)."""
    from gatewatch.remediation.executor import normalise_check

    assert normalise_check(MOVED)["via_proxy"] == MOVED["via_proxy"]
    assert "via_proxy" not in normalise_check(True)
    target = make_target()
    ticket, result = _ran("reload_proxy", store, clock, target)
    out = conclude(ticket, result, store=store, clock=clock, probe={"ok": True}, health=normalise_check(MOVED))
    assert out.result == "verified", out.message
