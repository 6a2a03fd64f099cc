"""The ProbeFunction's per-target metric policy (PerTargetMetrics): each per-target metric is $0.30 a target-month."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest

from gatewatch.pipeline import RoundReport


@pytest.fixture
def probe_app(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Gatewatch")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "gatewatch")
    app = importlib.import_module("functions.probe.app")
    reports = [RoundReport("a", "up", None, latency_ms=12.5), RoundReport("b", "down", "timeout", latency_ms=None)]
    store = SimpleNamespace(list_incidents=lambda **_kw: [])
    fleet = SimpleNamespace(targets=[], settings=SimpleNamespace(concurrency=16))  # one invocation: not sharded
    monkeypatch.setattr(app.runtime, "load_targets", lambda: fleet)
    monkeypatch.setattr(app.runtime, "store", lambda: store)
    monkeypatch.setattr(app.runtime, "notifier", lambda: None)
    monkeypatch.setattr(app, "probe_step", lambda *a, **kw: reports)
    return app


def emitted(app, capsys):
    context = SimpleNamespace(function_name="probe", memory_limit_in_mb=1024, aws_request_id="r",
                              invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:probe",
                              get_remaining_time_in_millis=lambda: 50_000)
    app.handler({}, context)
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    return {(m["Name"], doc.get("target")) for doc in docs for d in doc["_aws"]["CloudWatchMetrics"]
            for m in d["Metrics"]}


@pytest.mark.parametrize(("policy", "per_target"), [
    (None, set()),
    ("none", set()),
    ("success", {("ProbeSuccess", "a"), ("ProbeSuccess", "b")}),
    ("all", {("ProbeSuccess", "a"), ("ProbeSuccess", "b"), ("Latency", "a")}),
])
def test_per_target_metrics_follow_the_policy(probe_app, capsys, monkeypatch, policy, per_target):
    if policy is None:
        monkeypatch.delenv("PER_TARGET_METRICS", raising=False)
    else:
        monkeypatch.setenv("PER_TARGET_METRICS", policy)
    names = emitted(probe_app, capsys)
    assert {n for n in names if n[1] is not None} == per_target
    assert {n for n, t in names if t is None} == set(probe_app.FLEET_METRICS)
