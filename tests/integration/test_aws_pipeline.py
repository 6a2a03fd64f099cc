"""The AWS deployment end to end, in moto: the ProbeFunction handler on a schedule tick, the state machine it
starts (Lambda tasks dispatched in-process to the real handlers, SSM SendCommand running the generated on-box
document's script on this machine), DynamoDB, SNS -> SQS, and the EMF metrics the handler prints."""

from __future__ import annotations

import importlib
import json
import threading
import time
from types import SimpleNamespace

import pytest

from gatewatch.aws import runtime
from gatewatch.tree import diagnose
from tests.integration.conftest import ONBOX_DOCUMENT
from tests.integration.iam import IamEnforcement, declared_actions
from tests.servers import Reply, http_server
from tests.sfn_harness import STEP_FUNCTIONS, deploy_stack, lambda_context

INSTANCE = "i-0123456789abcdef0"
PARAMETER = "/gatewatch/targets"


context = lambda_context
ROLE_OWNERS = ["ProbeFunction", "FactsFunction", "RecordFunction", "GuardFunction", "ReprobeFunction",
               "DiagnoseStateMachine"]


def owner_of(module: str) -> str:
    return f"{module.capitalize()}Function"


@pytest.fixture
def deployed(aws, table, topic_and_queue, ssm_executor, lambda_dispatch, monkeypatch, tmp_path):
    """The stack's resources, created the way the template wires them."""
    ssm, sfn = aws.client("ssm"), aws.client("stepfunctions")
    ssm_executor.create_gatewatch_documents(ssm)
    ssm_executor.add_instance(INSTANCE)
    machine = deploy_stack(aws, table, topic_and_queue.topic_arn, lambda_dispatch, monkeypatch,
                           {"TARGETS_PARAMETER": PARAMETER, "REMEDIATION_CEILING": "suggest"})
    # From here on moto enforces IAM: each handler and the state machine call AWS as their template role.
    iam = IamEnforcement(monkeypatch, ROLE_OWNERS)
    for name, module in STEP_FUNCTIONS.items():
        lambda_dispatch[name] = iam.wrap(owner_of(module), lambda_dispatch.handlers[name])

    def handler(module: str):
        return iam.wrap(owner_of(module), importlib.import_module(f"functions.{module}.app").handler)

    yield SimpleNamespace(ssm=ssm, sfn=sfn, machine=machine, queue=topic_and_queue, executor=ssm_executor,
                          iam=iam, handler=handler)
    runtime.reset()
    assert not iam.denied, f"AccessDenied under the template's roles: {iam.denied}"
    for owner, actions in iam.used.items():
        undeclared = sorted(actions - declared_actions(owner))
        assert not undeclared, f"{owner} used actions tests/integration/iam.py does not declare: {undeclared}"


def put_targets(ssm, url: str, backend_port: int) -> None:
    ssm.put_parameter(Name=PARAMETER, Type="String", Overwrite=True, Value=f"""
targets:
  - name: api
    url: {url}
    method: POST
    timeout_s: 3
    expect: {{status: [200, 401]}}
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
    host:
      instance_id: {INSTANCE}
      service: gatewatch-test-backend
      service_manager: command
      process_match: gatewatch-test-no-such-process
      backend_port: {backend_port}
      nginx_port: 1
      nginx_error_log: /nonexistent/gatewatch/error.log
      log_roots: [/nonexistent]
""")


def wait_for_execution(sfn, machine: str, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        if executions and all(e["status"] != "RUNNING" for e in executions):
            return sfn.describe_execution(executionArn=executions[0]["executionArn"])
        time.sleep(0.2)
    tail = None
    if executions:
        events = sfn.get_execution_history(executionArn=executions[0]["executionArn"])["events"]
        tail = [(e["type"], e.get("taskFailedEventDetails")) for e in events][-6:]
    raise AssertionError(f"the diagnosis did not finish; last events: {tail}")


def test_probe_tick_to_verdict_notification_and_metrics(deployed, capsys):
    probe = SimpleNamespace(handler=deployed.handler("probe"))
    with http_server({"/api/v1/auth/demo-login": Reply(502, "<html>502 Bad Gateway</html>",
                                                       {"Server": "nginx"})}) as site:
        put_targets(deployed.ssm, site.url("/api/v1/auth/demo-login"), site.port)
        # two scheduled invocations race: exactly one execution may start
        results = []
        threads = [threading.Thread(target=lambda: results.append(probe.handler({}, context("probe"))))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        desc = wait_for_execution(deployed.sfn, deployed.machine)
    executions = deployed.sfn.list_executions(stateMachineArn=deployed.machine)["executions"]
    assert len(executions) == 1, "a racing second invocation must not start a second diagnosis"
    opened = [e for r in results for e in r["events"] if e["event"] == "opened"]
    assert len(opened) == 1 and executions[0]["name"] == opened[0]["incident_id"]
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    # the on-box document really ran on this "instance"
    [run] = [r for r in deployed.executor.runs if r.document == ONBOX_DOCUMENT]
    assert run.invocation["Status"] == "Success"
    report = json.loads(run.invocation["StandardOutputContent"])
    assert report["schema"] == 1 and report["port"]["value"]["listening"] is True

    # the verdict landed in DynamoDB, and equals the Python walker's over the stored facts
    incident = runtime.store().get_incident(opened[0]["incident_id"])
    assert incident.verdict and incident.facts["onbox"]["schema"] == 1
    assert incident.verdict["category"] == diagnose(incident.facts)["category"]
    assert incident.verdict["path"] == diagnose(incident.facts)["path"]

    # the notification reached the topic's subscriber
    [message] = deployed.queue.read(expect=1)
    assert message["Subject"].startswith("[gatewatch] DOWN api ")
    assert "What the outside sees: POST" in message["Message"] and incident.verdict["title"] in message["Message"]
    # the NotifyFunction routes on these attributes (alert)
    attributes = {k: v.get("Value") for k, v in (message.get("MessageAttributes") or {}).items()}
    assert attributes == {"kind": "diagnosed", "target": "api", "incident_id": incident.id}

    # metrics as CloudWatch EMF on stdout: the fleet's by default (per-target metrics are the PerTargetMetrics
    # parameter, test_probe_metrics_policy.py)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"TargetsDown", "OpenIncidents"} <= names
    assert not any("target" in doc for doc in emf)


def test_unregistered_instance_is_host_unreachable(deployed):
    probe = SimpleNamespace(handler=deployed.handler("probe"))
    deployed.executor.instances[INSTANCE].online = False
    with http_server({"/api/v1/auth/demo-login": Reply(502, "bad", {"Server": "nginx"})}) as site:
        put_targets(deployed.ssm, site.url("/api/v1/auth/demo-login"), site.port)
        result = probe.handler({}, context("probe"))
        desc = wait_for_execution(deployed.sfn, deployed.machine)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    incident = runtime.store().get_incident(result["events"][0]["incident_id"])
    assert incident.verdict["category"] == "host_unreachable"
    assert incident.facts["onbox_error"]["reason"] == "unreachable"


def test_a_retried_guard_invocation_returns_the_first_answer(deployed, monkeypatch):
    from tests.factsbuilder import down502, facts, healthy_onbox, with_changes

    monkeypatch.setenv("REMEDIATION_CEILING", "auto")
    deployed.ssm.put_parameter(Name=PARAMETER, Type="String", Overwrite=True, Value=f"""
targets:
  - name: api
    url: http://127.0.0.1:9/
    remediation: {{mode: auto}}
    host: {{instance_id: {INSTANCE}, service: bandarupay-backend, service_manager: systemd}}
""")
    onbox = with_changes(healthy_onbox(), service={"value.running": False}, port={"value.listening": False})
    state = {"incident_id": "api-20261125T130000Z", "target": "api", "outside": down502(),
             "diag": {"facts": facts(down502(), onbox)},
             "record": {"verdict": {"category": "backend_down", "remediation": "restart_backend", "evidence": []}}}
    guard = deployed.handler("guard")
    first = guard(state, context("guard"))
    again = guard(state, context("guard"))  # Step Functions retrying the task
    assert first["allowed"] is True and first["parameters"]["Action"] == ["restart_backend"]
    assert again == first
    decisions = [a.decision for a in runtime.store().list_actions(incident_id=state["incident_id"])]
    assert decisions.count("allowed") == 1 and "refused" not in decisions



def test_a_maintenance_window_silences_the_state_machines_notification(deployed):
    """The verdict is recorded, the InMaintenance Choice skips Notify (no message reaches the topic)."""
    probe = SimpleNamespace(handler=deployed.handler("probe"))
    with http_server({"/api/v1/auth/demo-login": Reply(502, "<html>502 Bad Gateway</html>",
                                                       {"Server": "nginx"})}) as site:
        put_targets(deployed.ssm, site.url("/api/v1/auth/demo-login"), site.port)
        text = deployed.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
        deployed.ssm.put_parameter(Name=PARAMETER, Type="String", Overwrite=True, Value=text.rstrip() + """
    maintenance:
      - {start: "2000-01-01T00:00:00Z", end: "2100-01-01T00:00:00Z", reason: planned upgrade}
""")
        result = probe.handler({}, context("probe"))
        desc = wait_for_execution(deployed.sfn, deployed.machine)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [opened] = [e for e in result["events"] if e["event"] == "opened"]
    incident = runtime.store().get_incident(opened["incident_id"])
    assert incident.verdict and incident.verdict["category"]  # diagnosed and recorded as usual
    entered = [e["stateEnteredEventDetails"]["name"] for e in deployed.sfn.get_execution_history(
        executionArn=desc["executionArn"], maxResults=1000)["events"] if e["type"].endswith("StateEntered")]
    assert "InMaintenance" in entered and "Silenced" in entered and "Notify" not in entered
    output = json.loads(desc["output"])
    assert output["record"]["maintenance"].startswith("maintenance window 2000-01-01")
    queue = deployed.queue
    assert not queue.sqs.receive_message(QueueUrl=queue.queue_url, WaitTimeSeconds=0).get("Messages")
