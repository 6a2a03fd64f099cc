"""Finding 6: remediation guardrails hold under crashes, clock skew and aliasing.

- a runner process killed (SIGKILL, for real) right after each restart cannot exceed ``max_per_day``: the
  ``starting`` record is written under the lease before the command and counted;
- a runner whose clock is 20 minutes fast cannot take over a live lease: expiry is judged by the store's time;
- no runner's clock, fast or slow, moves an attempt out of the cooldown or the daily cap: attempts are dated, and
  the windows judged, by the store's time;
- the lease is held through settle and verify (the local runner too);
- one machine named by ``instance_id`` in one target and by tags in another has one lease.
Each failed before the fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from gatewatch.aws.template_schema import create_table_from_template, load_template
from gatewatch.clock import Clock, FakeClock
from gatewatch.config import load_config_text
from gatewatch.remediation import Ticket, begin, execute, plan
from gatewatch.runner.base import RunResult
from gatewatch.store import DynamoDBStore, SQLiteStore

DOWN = {"category": "backend_down", "remediation": "restart_backend",
        "evidence": [{"fact": "onbox.port.value.listening", "value": False, "quote": "PORT NOT LISTENING"}]}
FACTS = {"onbox": {"service": {"value": {"crash_loop": False}}, "port": {"value": {"listening": False}}}}
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""\
    import sys
    from gatewatch.clock import Clock
    from gatewatch.config import load_config
    from gatewatch.remediation import execute, plan
    from gatewatch.runner.local import LocalRunner
    from gatewatch.store import SQLiteStore

    config, db, incident = sys.argv[1:4]
    target = load_config(config).targets[0]
    store = SQLiteStore(db)
    verdict = {"category": "backend_down", "remediation": "restart_backend", "evidence": []}
    facts = {"onbox": {"service": {"value": {"crash_loop": False}}, "port": {"value": {"listening": False}}}}
    d = plan(verdict, facts, target, store=store, clock=Clock(), ceiling="auto", incident_id=incident)
    if not d.allowed:
        print("REFUSED", d.guard, flush=True)
        sys.exit(3)
    print("RUNNING", flush=True)
    execute(d, target, LocalRunner(), store=store, clock=Clock(), reprobe=lambda: True, recheck=lambda: True,
            settle_s=0, lock_ttl_s=1)
    print("FINISHED", flush=True)
""")


def _target(name: str = "api", host: dict | None = None, **remediation):
    doc = {"name": name, "url": "http://127.0.0.1:1/", "host": host or {"local": True, "service": "app"},
           "remediation": {"mode": "auto", "cooldown_minutes": 0, **remediation}}
    return load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]


def test_a_runner_killed_after_each_restart_cannot_exceed_the_daily_cap(tmp_path):
    counter, pids = tmp_path / "restarts", tmp_path / "restart.pids"
    restart = tmp_path / "fake-restart"
    restart.write_text(f"#!/bin/sh\necho $$ >> {pids}\necho restarted >> {counter}\nexec sleep 30\n")
    restart.chmod(0o755)
    config = tmp_path / "targets.yaml"
    config.write_text(yaml.safe_dump({"targets": [{
        "name": "api", "url": "http://127.0.0.1:1/",
        "host": {"local": True, "service": "app", "service_manager": "command", "allowed_programs": [str(restart)],
                 "commands": {"restart_backend": [str(restart), "{service}"]}},
        "remediation": {"mode": "auto", "cooldown_minutes": 0, "max_per_day": 2},
    }]}))
    db = tmp_path / "gw.db"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'gatewatch'}:{ROOT}"}
    outcomes = []
    for i in range(5):
        before = counter.read_text().count("\n") if counter.exists() else 0
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(config), str(db), f"inc-{i}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            if counter.exists() and counter.read_text().count("\n") > before:
                child.send_signal(signal.SIGKILL)  # the runner dies right after the restart, before 'ran'
                break
            time.sleep(0.02)
        child.wait(10)
        for pid in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        outcomes.append((child.returncode, child.stdout.read().strip()))
        time.sleep(1.1)  # the dead runner's lease (1 s) expires; only the guardrails stand in the way now
    restarts = counter.read_text().count("\n") if counter.exists() else 0
    assert restarts == 2, outcomes
    assert [o[1] for o in outcomes[2:]] == ["REFUSED circuit"] * 3
    records = SQLiteStore(db).list_actions(target="api")
    assert sorted({r.decision for r in records}) == ["allowed", "considered", "refused", "starting"]


@pytest.fixture(params=["sqlite", "dynamodb"])
def shared_store(request, tmp_path, monkeypatch):
    """The store with its OWN time (real: SQLite's now, DynamoDB's Date header), whatever the runners' clocks say."""
    if request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "gw.db")
        return
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(client, load_template(), "gw-skew")
        yield lambda: DynamoDBStore("gw-skew", client=client)


def _allowed(store, clock, target, incident):
    d = plan(DOWN, FACTS, target, store=store, clock=clock, ceiling="auto", incident_id=incident)
    assert d.allowed, d.reason
    return d


def test_a_clock_20_minutes_fast_cannot_take_a_live_lease(shared_store):
    now = datetime.now(UTC)
    honest, fast = Clock(), FakeClock(now + timedelta(minutes=20))
    store_a, store_b = shared_store(), shared_store()
    a, b = _target("api-a"), _target("api-b")  # two targets on one host: only the lease keeps them apart
    ticket = begin(_allowed(store_a, honest, a, "inc-a"), a, store=store_a, clock=honest, lock_ttl_s=900)
    assert isinstance(ticket, Ticket)
    d_b = plan(DOWN, FACTS, b, store=store_b, clock=fast, ceiling="auto", incident_id="inc-b")
    taken = begin(d_b, b, store=store_b, clock=fast, lock_ttl_s=900) if d_b.allowed else d_b
    assert not isinstance(taken, Ticket)
    assert getattr(taken, "guard", None) == "host_lock"


def test_the_local_runner_holds_the_lease_through_settle_and_verify(tmp_path):
    store, clock = SQLiteStore(tmp_path / "gw.db"), Clock()
    a, b = _target("api-a"), _target("api-b")
    seen = {}

    def reprobe():  # runs after the settle time, before the verdict: another incident on the host tries now
        d_b = plan(DOWN, FACTS, b, store=store, clock=clock, ceiling="auto", incident_id="inc-b")
        seen["b"] = begin(d_b, b, store=store, clock=clock) if d_b.allowed else d_b
        return True

    class Runner:
        def run_remediation(self, host, action, params, timeout_s=60.0):
            return RunResult(status="Success", exit_code=0)

    out = execute(_allowed(store, clock, a, "inc-a"), a, Runner(), store=store, clock=clock, settle_s=0,
                  reprobe=reprobe, recheck=lambda: True)
    assert out.result == "verified"
    assert not isinstance(seen["b"], Ticket) and seen["b"].guard == "host_lock"
    assert store.get_lock("remediation-host:local:this-host") is None  # released after verify


def test_one_machine_named_two_ways_has_one_lease(tmp_path, monkeypatch):
    """instance_id in one target, tags in another; the SSM runner resolves the tags (moto EC2) to the same id."""
    from gatewatch.runner.ssm import SSMRunner

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = "ami-12c6146b"  # one of moto's built-in images
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "gatewatch", "Value": "web-1"}]}])["Instances"][0]
        iid = instance["InstanceId"]
        by_id = _target("api-id", {"instance_id": iid, "service": "app"})
        by_tags = _target("api-tags", {"instance_tags": {"gatewatch": "web-1"}, "service": "app"})
        store, clock = SQLiteStore(tmp_path / "gw.db"), Clock()
        outcomes = {}

        class Runner(SSMRunner):
            def run_remediation(self, host, action, params, timeout_s=60.0):
                if host is by_id.host:  # while the first fix runs, the second target's incident arrives
                    d = _allowed(store, clock, by_tags, "inc-tags")
                    outcomes["tags"] = execute(d, by_tags, self, store=store, clock=clock, settle_s=0,
                                               reprobe=lambda: True, recheck=lambda: True)
                return RunResult(status="Success", exit_code=0)

        runner = Runner(client=object(), ec2_client=ec2)
        outcomes["id"] = execute(_allowed(store, clock, by_id, "inc-id"), by_id, runner, store=store, clock=clock,
                                 settle_s=0, reprobe=lambda: True, recheck=lambda: True)
    assert outcomes["id"].result == "verified"
    assert (outcomes["tags"].result, outcomes["tags"].guard) == ("refused", "host_lock")


class _Runner:
    def run_remediation(self, host, action, params, timeout_s=60.0):
        return RunResult(status="Success", exit_code=0)


@pytest.mark.parametrize("skews", [(0, 30), (-30, 0), (-30, 30)], ids=["asker-fast", "runner-slow", "both"])
def test_clock_skew_cannot_move_a_restart_out_of_the_cooldown(shared_store, skews):
    """Runner A restarts the backend; five minutes later (by the store) runner B plans a restart for a new incident
    on the same target, cooldown 15 minutes. Attempts were dated and the window judged by each runner's clock, so a
    runner 30 minutes fast (or a slow runner's record) fell outside the window and B restarted again. Now both are
    the store's time."""
    now = datetime.now(UTC)
    clock_a, clock_b = FakeClock(now + timedelta(minutes=skews[0])), FakeClock(now + timedelta(minutes=skews[1]))
    store_a, store_b = shared_store(), shared_store()
    target = _target("api", cooldown_minutes=15, max_per_day=10)
    done = execute(_allowed(store_a, clock_a, target, "inc-a"), target, _Runner(), store=store_a, clock=clock_a,
                   settle_s=0, reprobe=lambda: True, recheck=lambda: True)
    assert done.result == "verified", done.message
    d_b = plan(DOWN, FACTS, target, store=store_b, clock=clock_b, ceiling="auto", incident_id="inc-b")
    assert not d_b.allowed and d_b.guard == "cooldown", d_b.reason


def test_clock_skew_cannot_reopen_the_daily_cap(shared_store):
    """Two restarts by a runner 30 minutes slow, the cap is 2: a runner whose clock is a day fast is still refused
    by the circuit (its own day's window started after both restarts)."""
    now = datetime.now(UTC)
    slow, fast = FakeClock(now - timedelta(minutes=30)), FakeClock(now + timedelta(hours=25))
    store = shared_store()
    target = _target("api", cooldown_minutes=0, max_per_day=2)
    for i in range(2):
        out = execute(_allowed(store, slow, target, f"inc-{i}"), target, _Runner(), store=store, clock=slow,
                      settle_s=0, reprobe=lambda: True, recheck=lambda: True)
        assert out.result == "verified", out.message
    d = plan(DOWN, FACTS, target, store=shared_store(), clock=fast, ceiling="auto", incident_id="inc-3")
    assert not d.allowed and d.guard == "circuit", d.reason
