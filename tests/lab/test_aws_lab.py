"""The AWS deployment against the real lab, in moto: a scheduled ProbeFunction tick sees the injected fault, the
state machine runs the generated on-box document through SSM inside the lab's namespace, walks the tree, records,
asks the GuardFunction, runs the remediation document (a real supervisorctl restart), verifies with the on-box
checks and the outside probe, resolves the incident as auto-remediated and notifies through SNS to SQS."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from gatewatch.aws import runtime
from gatewatch.pipeline import collect_facts
from gatewatch.probe import probe_target
from gatewatch.runner.local import LocalRunner
from gatewatch.tree import diagnose
from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    ONBOX_DOCUMENT,
    REMEDIATION_DOCUMENT,
    aws,
    lambda_dispatch,
    ssm_executor,
    table,
    template,
    topic_and_queue,
)
from tests.sfn_harness import deploy_stack, lambda_context

pytestmark = pytest.mark.lab

INSTANCE = "i-0fedcba9876543210"
PARAMETER = "/gatewatch/targets"


def targets_yaml(lab) -> str:
    """The lab's targets file, as an AWS user would write it: the host is an SSM instance with default guardrails."""
    doc = yaml.safe_load(Path(lab.targets_path).read_text())
    target = doc["targets"][0]
    host = target["host"]
    host.pop("local", None)
    host.pop("netns", None)
    host["instance_id"] = INSTANCE
    target["remediation"] = {"mode": "auto", "cooldown_minutes": 15, "max_per_day": 3}
    return yaml.safe_dump(doc)


@pytest.fixture
def stack(lab, aws, table, topic_and_queue, ssm_executor, lambda_dispatch, monkeypatch):  # noqa: F811
    ssm, sfn = aws.client("ssm"), aws.client("stepfunctions")
    ssm_executor.create_gatewatch_documents(ssm)
    venv_bin = str(Path(sys.executable).parent)
    ssm_executor.add_instance(INSTANCE, prefix=("ip", "netns", "exec", lab.netns),
                              env={"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin"})
    ssm.put_parameter(Name=PARAMETER, Type="String", Value=targets_yaml(lab))
    machine = deploy_stack(aws, table, topic_and_queue.topic_arn, lambda_dispatch, monkeypatch,
                           {"TARGETS_PARAMETER": PARAMETER, "REMEDIATION_CEILING": "auto",
                            "REMEDIATION_SETTLE_S": "2"})
    lab.heal()
    yield SimpleNamespace(sfn=sfn, machine=machine, queue=topic_and_queue, executor=ssm_executor)
    runtime.reset()
    lab.heal()


def tick() -> dict:
    return importlib.import_module("functions.probe.app").handler({}, lambda_context("probe"))


def finished(sfn, machine: str, count: int, timeout_s: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = sfn.list_executions(stateMachineArn=machine)["executions"]
        if len(runs) >= count and all(r["status"] != "RUNNING" for r in runs):
            return [sfn.describe_execution(executionArn=r["executionArn"]) for r in runs]
        time.sleep(0.3)
    raise AssertionError("the diagnosis did not finish in time")


def test_backend_stopped_is_diagnosed_fixed_and_verified_through_ssm(stack, lab):
    tick()  # healthy round: the target is UP
    lab.inject("backend_stopped")
    local = diagnose(collect_facts(lab.target(), probe_target(lab.target()).to_dict(), LocalRunner()))
    result = tick()
    [opened] = [e for e in result["events"] if e["event"] == "opened"]
    [desc] = finished(stack.sfn, stack.machine, 1)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    incident = runtime.store().get_incident(opened["incident_id"])
    assert incident.verdict["category"] == "backend_down" == local["category"]
    assert incident.verdict["path"] == local["path"]  # the state machine walked what the local pipeline walked
    assert incident.remediation["action"] == "restart_backend"
    assert incident.remediation["result"] == "verified", incident.remediation
    assert incident.status == "resolved" and incident.resolution == "auto_remediated" and incident.duration_s > 0
    assert lab.healthy()

    documents = [r.document for r in stack.executor.runs]
    assert documents == [ONBOX_DOCUMENT, REMEDIATION_DOCUMENT, ONBOX_DOCUMENT]  # check, fix, verify
    fix = stack.executor.runs[1]
    assert fix.parameters["Action"] == ["restart_backend"] and fix.invocation["Status"] == "Success"

    story = [a.decision for a in runtime.store().list_actions(incident_id=opened["incident_id"])]
    assert story[:1] == ["considered"] and "allowed" in story and "ran" in story and story[-1] == "verified"
    [message] = stack.queue.read(expect=1)
    assert message["Subject"].startswith("[gatewatch] FIXED lab-api") and "restart_backend" in message["Message"]
    state = runtime.store().get_state("lab-api")
    assert state.status == "UP" and state.incident_id is None

    # the same fault again at once: the cooldown refuses a second restart, and a human is told
    lab.inject("backend_stopped")
    second = tick()
    [again] = [e for e in second["events"] if e["event"] == "opened"]
    runs = finished(stack.sfn, stack.machine, 2)
    assert all(r["status"] == "SUCCEEDED" for r in runs)
    incident = runtime.store().get_incident(again["incident_id"])
    assert incident.remediation["result"] == "refused" and incident.remediation["guard"] == "cooldown"
    assert [r.document for r in stack.executor.runs].count(REMEDIATION_DOCUMENT) == 1
    [message] = stack.queue.read(expect=1)
    assert "cooldown" in message["Message"]
    json.dumps(incident.to_dict())  # the stored incident stays plain JSON


def test_stale_config_is_reloaded_and_proven_through_the_proxy(stack, lab):
    """The backend moved to another port, the site file on disk says so, nginx was never reloaded. The state machine
    reloads nginx (a real HUP through supervisor) and proves it through the proxy and from outside; the targets file
    still names the old backend port, so the direct health check fails, which must not turn the fix into an
    escalation (it did: the catalogue's verify for reload_proxy is the proxy path)."""
    tick()
    lab.inject("stale_config")
    result = tick()
    [opened] = [e for e in result["events"] if e["event"] == "opened"]
    [desc] = finished(stack.sfn, stack.machine, 1)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    incident = runtime.store().get_incident(opened["incident_id"])
    assert incident.verdict["category"] == "proxy_upstream_mismatch", incident.verdict
    assert incident.remediation["action"] == "reload_proxy"
    assert incident.remediation["result"] == "verified", incident.remediation
    assert "update the target's host section" in incident.remediation["summary"]
    assert incident.status == "resolved" and incident.resolution == "auto_remediated"
    assert lab.healthy() and lab.login_status() not in (None, 502, 504)  # the app answers through nginx
    fix = stack.executor.runs[1]
    assert fix.parameters["Action"] == ["reload_proxy"] and fix.invocation["Status"] == "Success"
