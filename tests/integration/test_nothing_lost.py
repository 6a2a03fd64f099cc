"""No incident is lost between detection and diagnosis, and one target never breaks the round for the others.

The prober is "killed" (a BaseException no error boundary catches) at each step between the DOWN transition and
the start of its diagnosis; the next round must end with exactly one incident and exactly one diagnosis started
(AWS: one StartExecution accepted, named after the incident) or one diagnosis and one notification (local).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.pipeline import Pipeline
from gatewatch.steps import probe_step
from gatewatch.store import SQLiteStore
from gatewatch.store.dynamodb import DynamoDBStore
from tests.servers import Reply, http_server


class Killed(BaseException):
    """The process dies here: nothing in the prober may catch it."""


class Executions:
    """StartExecution as Step Functions does it: idempotent by name (a second start of a name is refused)."""

    def __init__(self):
        self.names: list[str] = []
        self.fail_next: BaseException | None = None
        self.kill_after_next = False

    def __call__(self, name: str, payload: dict) -> bool:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        started = name not in self.names
        if started:
            self.names.append(name)
        if self.kill_after_next:
            self.kill_after_next = False
            raise Killed("after StartExecution")
        return started


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, notification):
        self.sent.append(notification)


def config_for(url: str, names=("api",)):
    body = "".join(f"""
  - name: {name}
    url: {url}
    timeout_s: 2
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
""" for name in names)
    return load_config_text("targets:" + body)


@pytest.fixture
def down_site():
    with http_server({"/": Reply(502, "<html>502 Bad Gateway</html>", {"Server": "nginx"})}) as site:
        yield site.url("/")


AWS_KILL_POINTS = ["before_open_incident", "after_open_incident", "start_execution_fails",
                   "start_execution_killed", "after_start_execution"]


@pytest.mark.parametrize("point", AWS_KILL_POINTS)
def test_aws_round_killed_between_detection_and_diagnosis_redrives_exactly_once(point, dynamo_store, down_site,
                                                                               monkeypatch):
    config, clock, executions = config_for(down_site), FakeClock(), Executions()
    store = dynamo_store
    original_open, original_update = DynamoDBStore.open_incident, DynamoDBStore.update_incident

    def open_incident(self, *args, **kwargs):
        if point == "before_open_incident":
            raise Killed(point)
        out = original_open(self, *args, **kwargs)
        if point == "after_open_incident":
            raise Killed(point)
        return out

    def update_incident(self, incident_id, **changes):
        if point == "after_start_execution" and "diagnosis_started_at" in changes:
            raise Killed(point)
        return original_update(self, incident_id, **changes)

    monkeypatch.setattr(DynamoDBStore, "open_incident", open_incident)
    monkeypatch.setattr(DynamoDBStore, "update_incident", update_incident)
    if point == "start_execution_fails":
        executions.fail_next = RuntimeError("StartExecution: ThrottlingException")
    if point == "start_execution_killed":
        executions.fail_next = Killed(point)

    try:
        probe_step(config, store, Recorder(), executions, clock=clock)
    except Killed:
        pass
    point_reached = point
    monkeypatch.setattr(DynamoDBStore, "open_incident", original_open)
    monkeypatch.setattr(DynamoDBStore, "update_incident", original_update)
    clock.advance(60)
    probe_step(config, store, Recorder(), executions, clock=clock)
    clock.advance(60)
    probe_step(config, store, Recorder(), executions, clock=clock)  # a third round changes nothing

    incidents = store.list_incidents(target="api")
    assert len(incidents) == 1, f"{point_reached}: {[i.id for i in incidents]}"
    assert executions.names == [incidents[0].id], f"{point_reached}: one diagnosis, named after the incident"
    assert incidents[0].diagnosis_started_at, point_reached
    assert store.get_state("api").incident_id == incidents[0].id


LOCAL_KILL_POINTS = ["after_open_incident", "in_diagnosis", "after_verdict", "in_notify"]


@pytest.mark.parametrize("point", LOCAL_KILL_POINTS)
def test_local_round_killed_between_detection_and_notification_redrives(point, tmp_path, down_site, monkeypatch):
    config, clock, notifier = config_for(down_site), FakeClock(), Recorder()
    store = SQLiteStore(tmp_path / "g.db")
    pipeline = Pipeline(config, store, notifier, clock=clock, runner_for=lambda target: None)
    original_open, original_update = SQLiteStore.open_incident, SQLiteStore.update_incident

    def open_incident(self, *args, **kwargs):
        original_open(self, *args, **kwargs)
        raise Killed(point)

    def diagnose(self, *args, **kwargs):
        raise Killed(point)

    def update_incident(self, incident_id, **changes):
        out = original_update(self, incident_id, **changes)
        if "verdict" in changes:
            raise Killed(point)
        return out

    class Dying:
        def send(self, notification):
            raise Killed(point)

    if point == "after_open_incident":
        monkeypatch.setattr(SQLiteStore, "open_incident", open_incident)
    elif point == "in_diagnosis":
        monkeypatch.setattr(Pipeline, "diagnose", diagnose)
    elif point == "after_verdict":
        monkeypatch.setattr(SQLiteStore, "update_incident", update_incident)
    else:
        pipeline.notifier = Dying()
    with pytest.raises(Killed):
        pipeline.run_once()
    monkeypatch.undo()

    restarted = Pipeline(config, SQLiteStore(tmp_path / "g.db"), notifier, clock=clock,
                         runner_for=lambda target: None)
    for _ in range(2):
        clock.advance(60)
        restarted.run_once()
    incidents = restarted.store.list_incidents(target="api")
    assert len(incidents) == 1
    assert incidents[0].verdict and incidents[0].notified_at
    assert [n.kind for n in notifier.sent] == ["diagnosed"]


def test_one_target_failing_to_record_does_not_break_the_round(tmp_path, down_site, monkeypatch):
    config = config_for(down_site, names=("api", "web", "shop"))
    store = SQLiteStore(tmp_path / "g.db")
    original = SQLiteStore.record_probe

    def record_probe(self, record):
        if record.target == "web":
            raise RuntimeError("disk I/O error")
        return original(self, record)

    monkeypatch.setattr(SQLiteStore, "record_probe", record_probe)
    reports = Pipeline(config, store, Recorder(), clock=FakeClock(), runner_for=lambda t: None).run_once()
    by_name = {r.target: r for r in reports}
    assert by_name["web"].status == "error" and "disk I/O error" in by_name["web"].reason
    assert by_name["api"].event == "opened" and by_name["shop"].event == "opened"
    assert {i.target for i in store.list_incidents()} == {"api", "shop"}


def test_dynamodb_incident_updates_change_only_their_own_attributes(dynamo_store):
    from gatewatch.store.base import Incident

    dynamo_store.create_incident(Incident(id="api-1", target="api", opened_at="2026-11-28T10:00:00Z"))
    stale_reader = dynamo_store.get_incident("api-1")
    dynamo_store.update_incident("api-1", category="backend_down", verdict={"category": "backend_down"})
    dynamo_store.update_incident("api-1", diagnosis_started_at="2026-11-28T10:00:01Z")  # written from a stale view
    final = dynamo_store.get_incident("api-1")
    assert stale_reader.verdict is None
    assert final.verdict == {"category": "backend_down"} and final.diagnosis_started_at == "2026-11-28T10:00:01Z"


class Switch:
    def __init__(self, reply: Reply):
        self.reply = reply

    def __call__(self, _req):
        return self.reply


def test_kill_9_of_gatewatch_run_inside_the_diagnosis_loses_nothing(tmp_path):
    """A real ``kill -9`` of ``gatewatch run`` after the incident is written and before its verdict: the next run
    ends with one incident, one verdict and one notification."""
    import os
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "g.db"
    openapi = Switch(Reply(200, {"paths": {"/health": {}}}, delay_s=30))  # the diagnosis hangs here at first
    with http_server({"/missing": Reply(404, {"detail": "Not Found"}), "/openapi.json": openapi}) as site:
        cfg = tmp_path / "targets.yaml"
        cfg.write_text(f"""
settings: {{db_path: {db}}}
targets:
  - name: api
    url: {site.url('/missing')}
    timeout_s: 5
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
""")
        gatewatch = [str(Path(sys.executable).with_name("gatewatch")), "run", "--config", str(cfg)]
        first = subprocess.Popen([*gatewatch, "--every", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                incidents = SQLiteStore(db).list_incidents() if db.exists() else []
                if incidents:
                    break
                time.sleep(0.02)
            assert incidents and incidents[0].verdict is None, "the incident must exist before its diagnosis ends"
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            out_first = first.communicate(timeout=30)[0].decode()
        assert first.returncode == -signal.SIGKILL
        assert "DOWN" not in out_first  # killed before any notification
        openapi.reply = Reply(200, {"paths": {"/health": {}}})
        second = subprocess.run([*gatewatch, "--every", "1", "--rounds", "2"], capture_output=True, text=True,
                                timeout=120)
    incidents = SQLiteStore(db).list_incidents()
    assert len(incidents) == 1
    assert incidents[0].verdict and incidents[0].verdict["category"] == "route_not_found" and incidents[0].notified_at
    assert second.stdout.count("[gatewatch] DOWN api") == 1, second.stdout[-3000:]


def test_an_oversized_response_cannot_break_the_record_or_the_incident(dynamo_store, aws, table):
    """A 1.5 MB JSON body in the failing round: the probe record and the incident (opened with it, atomically) are
    still written, bounded under DynamoDB's 400 KB, with the cut marked."""
    import botocore.exceptions

    from gatewatch.store.base import Incident, ProbeRecord, TargetState, json_size

    huge = {"http": {"status": 502, "json": [{"row": i, "text": "x" * 300} for i in range(5000)],
                     "body_excerpt": "y" * 2048}}
    assert json_size(huge) > 1_400_000
    client = aws.client("dynamodb")
    with pytest.raises(botocore.exceptions.ClientError):  # moto enforces the limit the store must respect
        client.put_item(TableName=table, Item={"PK": {"S": "raw"}, "SK": {"S": "raw"}, "v": {"S": "z" * 500_000}})
    dynamo_store.record_probe(ProbeRecord(target="api", at="2026-11-28T10:00:00.000Z", status="down",
                                          reason="http_5xx", total_ms=12.0, result={"status": "down", "probe": huge}))
    state = TargetState(target="api", status="DOWN", incident_id="api-1")
    dynamo_store.open_incident(state, 0, Incident(id="api-1", target="api", opened_at="2026-11-28T10:00:00.000Z",
                                                  outside={"status": "down", "probe": huge}))
    dynamo_store.update_incident("api-1", facts={"outside": huge, "onbox": {"log": "z" * 600_000}})
    [record] = dynamo_store.history("api")
    assert record.status == "down" and "truncated" in str(record.result["probe"]["http"]["json"][-1])
    incident = dynamo_store.get_incident("api-1")
    assert incident.outside["probe"]["http"]["status"] == 502
    assert json_size(incident.to_dict()) < 400_000 and "truncated" in incident.facts["onbox"]["log"]


def test_sns_subjects_are_ascii_and_at_most_100_characters_on_every_path():
    import json
    import re

    from gatewatch.messages import subject_line
    from tests.sfn_harness import DEFINITION

    longest = "a" * 63  # target names are at most 63 characters of [a-z0-9-]
    subject = subject_line("DOWN", longest, "backend_down", "Le serveur « api » ne répond plus — " + "é" * 200)
    assert subject.isascii() and len(subject) <= 100
    definition = json.loads(DEFINITION.read_text())
    formats = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Subject.$":
                    formats.append(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition)
    assert formats, "the state machine publishes no subject"
    for fmt in formats:
        literal = re.fullmatch(r"States\.Format\('([^']*)', \$\.target\)", fmt)
        if literal:  # a fixed text around the target name
            rendered = literal.group(1).replace("{}", longest)
            assert rendered.isascii() and len(rendered) <= 100, rendered
        else:  # rendered by RecordFunction through messages.subject_line
            assert fmt == "$.record.notification.subject", fmt


def test_a_verdict_that_cannot_be_published_falls_back_and_fails_the_execution():
    """Notify catches every error into the fixed-text NotifyFailure publish, which ends in the Fail state that
    DiagnosisFailedAlarm counts (AWS/States ExecutionsFailed)."""
    import json

    from tests.sfn_harness import DEFINITION

    states = json.loads(DEFINITION.read_text())["States"]
    [catch] = states["Notify"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "NotifyFailure"
    assert catch["ResultPath"] == "$.error"  # the original state is kept for the fallback's message
    assert states[states["NotifyFailure"]["Next"]]["Type"] == "Fail"
