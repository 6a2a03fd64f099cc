"""A sharded round in moto: 1,000 loopback targets, the scheduled ProbeFunction splits them by the computed shard
size and invokes itself asynchronously once per further shard (moto Lambda Invoke, InvocationType=Event); the
workers run concurrently in threads, each under the ProbeFunction role (IAM enforced) with its own budget. Every
target's result is stored once and the states are those a single invocation leaves."""

from __future__ import annotations

import importlib
import json
import threading
import time
from types import SimpleNamespace

import pytest
import yaml

from gatewatch.aws import runtime, shard
from gatewatch.config.loader import load_config_text
from tests.integration.iam import IamEnforcement, declared_actions
from tests.servers import Reply, http_server
from tests.sfn_harness import ACCOUNT, REGION, deploy_stack, function_arn

FLEET = 1000


def lambda_context(remaining_ms: int = 50_000) -> SimpleNamespace:
    """ProbeFunction's context (the template's 50 s timeout); each invocation has its own remaining time."""
    deadline = time.monotonic() + remaining_ms / 1000.0
    return SimpleNamespace(function_name="ProbeFunction", memory_limit_in_mb=1024, aws_request_id="req",
                           invoked_function_arn=function_arn("ProbeFunction"),
                           get_remaining_time_in_millis=lambda: int((deadline - time.monotonic()) * 1000))
DOWN_EVERY = 25  # every 25th target answers 500: 40 targets fail their first round (failure_threshold 2: no incident)


def fleet_yaml(base: str) -> str:
    targets = [{"name": f"t{i:04d}", "url": f"{base}/{'bad' if i % DOWN_EVERY == 0 else 'ok'}?i={i}",
                "timeout_s": 10, "confirm": {"retries": 0}, "expect": {"status": [200]},
                "alerting": {"failure_threshold": 2, "success_threshold": 1}} for i in range(FLEET)]
    return yaml.safe_dump({"settings": {"concurrency": 16}, "targets": targets})


@pytest.fixture
def stack(aws, table, topic_and_queue, lambda_dispatch, monkeypatch):
    deploy_stack(aws, table, topic_and_queue.topic_arn, lambda_dispatch, monkeypatch, {"REMEDIATION_CEILING": "off"})
    monkeypatch.delenv("SHARD_SIZE", raising=False)
    aws.client("lambda").create_function(FunctionName="ProbeFunction", Runtime="python3.12", Role="arn:aws:iam::"
                                         "123456789012:role/gw", Handler="app.handler", Code={"ZipFile": b"x"})
    iam = IamEnforcement(monkeypatch, ["ProbeFunction"])
    yield iam
    runtime.reset()
    assert not iam.denied, f"AccessDenied under the template's roles: {iam.denied}"
    undeclared = sorted(iam.used.get("ProbeFunction", set()) - declared_actions("ProbeFunction"))
    assert not undeclared, f"ProbeFunction used actions tests/integration/iam.py does not declare: {undeclared}"


def test_shard_size_is_computed_from_the_per_target_cost(monkeypatch):
    monkeypatch.delenv("SHARD_SIZE", raising=False)
    # the template's 50 s timeout leaves a 45 s budget; concurrency 16, timeout 10 s: 0.0042 + 0.625 s a target
    assert shard.shard_size(45.0, 16, 10.0) == 71
    assert shard.shard_size(45.0, 128, 5.0) == 1040
    assert shard.fleet_size(45.0, 16, []) == 71  # no target: Target.timeout_s's default
    monkeypatch.setenv("SHARD_SIZE", "250")
    assert shard.fleet_size(45.0, 16, [10.0]) == 250
    parts = shard.split([f"t{i}" for i in range(1000)], 71)
    assert len(parts) == 15 and {len(p) for p in parts} == {66, 67}
    assert [n for p in parts for n in p] == [f"t{i}" for i in range(1000)]


def test_a_thousand_targets_round_is_sharded_across_concurrent_workers(stack, aws, table, lambda_dispatch,
                                                                       monkeypatch, capsys):
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def route(req):
        with lock:
            seen[req.path] = seen.get(req.path, 0) + 1
        return Reply(500 if req.path.startswith("/bad") else 200, "ok")

    handler = stack.wrap("ProbeFunction", importlib.import_module("functions.probe.app").handler)
    workers: list[threading.Thread] = []
    results: list[dict] = []

    def worker_invocation(event, context):  # InvocationType=Event: Lambda returns at once, the worker runs apart
        thread = threading.Thread(target=lambda: results.append(handler(event, lambda_context())))
        workers.append(thread)
        thread.start()
        return None

    lambda_dispatch["ProbeFunction"] = worker_invocation
    with http_server({"/ok": route, "/bad": route}, backlog=1024) as server:
        config = load_config_text(fleet_yaml(server.url("/").rstrip("/")))
        monkeypatch.setattr(runtime, "load_targets", lambda *a, **k: config)
        started = time.monotonic()
        coordinator = handler({"source": "aws.events"}, lambda_context(remaining_ms=50_000))
        for thread in workers:
            thread.join(60)
        elapsed = time.monotonic() - started
    results.append(coordinator)

    size = shard.shard_size(45.0, 16, 10.0)
    shards = -(-FLEET // size)
    assert coordinator["shards"] == shards == len(workers) + 1 >= 10
    assert all(not t.is_alive() for t in workers)
    assert sum(r["targets"] for r in results) == FLEET and len(results) == shards
    assert sum(r["down"] for r in results) == FLEET // DOWN_EVERY, [
        (i["PK"], i.get("reason")) for i in aws.client("dynamodb").scan(TableName=table)["Items"]
        if i["SK"]["S"].startswith("PROBE#") and i["status"]["S"] == "down"][:60:7]
    # each target probed exactly once, across all shards
    assert len(seen) == FLEET and set(seen.values()) == {1}
    # each target's result stored once; states as one invocation leaves them (one scan reads both)
    # (read from moto's table itself: a Scan of 2,000 items through the API takes ~12 s here)
    from moto.dynamodb.models import dynamodb_backends

    items = [{k: v.to_json() for k, v in item.attrs.items()}
             for item in dynamodb_backends[ACCOUNT][REGION].get_table(table).all_items()]
    probes: dict[str, list[str]] = {}
    states: dict[str, dict] = {}
    for item in items:
        target = item["PK"]["S"].removeprefix("TARGET#")
        if item["SK"]["S"].startswith("PROBE#"):
            probes.setdefault(target, []).append(item["status"]["S"])
        elif item["SK"]["S"] == "STATE":
            states[target] = item
    assert len(probes) == len(states) == FLEET
    for i in range(FLEET):
        name, bad = f"t{i:04d}", i % DOWN_EVERY == 0
        assert probes[name] == ["down" if bad else "up"], name
        state = states[name]
        assert (state["status"]["S"], state["consecutive_failures"]["N"], state["consecutive_successes"]["N"],
                "incident_id" in state and "S" in state["incident_id"]) == \
            ("UP", "1" if bad else "0", "0" if bad else "1", False), name
    # every invocation emitted its own fleet metrics: TargetsDown's sample count is the prober's heartbeat. (The
    # in-process workers share one Powertools Metrics object, so only the coordinator's metadata is asserted.)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    fleet = [doc for doc in emf if "TargetsDown" in doc]
    assert len(fleet) == shards and sum(doc["TargetsDown"] in (0, 0.0, [0.0]) for doc in fleet) == shards
    assert any(doc.get("shard") == f"0/{shards}" for doc in fleet)
    print(f"sharded round: {FLEET} targets, shard size {size}, {shards} invocations, {elapsed:.1f}s")


def test_shards_are_sized_for_a_worker_that_starts_cold(stack, monkeypatch):
    """A worker parses the whole targets file before it probes (10,000 targets: seconds), so the coordinator sizes
    shards for the budget left after the slowest load this container has seen, even when its own load was warm."""
    from gatewatch.steps import round_budget

    app = importlib.import_module("functions.probe.app")
    budgets: list[float] = []
    monkeypatch.setattr(shard, "fleet_size", lambda budget, concurrency, timeouts: budgets.append(budget) or 10**6)
    monkeypatch.setattr(app, "probe_step", lambda *a, **k: [])
    monkeypatch.setattr(app, "_SLOWEST_LOAD_S", [0.0], raising=False)
    config = load_config_text(fleet_yaml("http://127.0.0.1:9"))
    loads = iter([0.4, 0.0])  # a cold parse, then the cached config

    def load_targets(*_a, **_k):
        time.sleep(next(loads))
        return config

    monkeypatch.setattr(runtime, "load_targets", load_targets)
    for _ in range(2):
        app.handler({"source": "aws.events"}, lambda_context(remaining_ms=50_000))
    assert round_budget(50_000) == 45.0
    cold = round_budget(50_000 - 400)
    assert budgets[0] <= cold + 0.01 and budgets[1] <= cold + 0.01, budgets  # the warm round remembers the cold one
