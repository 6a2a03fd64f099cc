"""The generated state machine walks the tree exactly as the Python walker does.

moto executes the committed definition; the FactsFunction is dispatched in-process to a callable that returns the
case's facts and their signals (the same ``derive`` the real handler uses), so what is compared is the walk:
every case must end at the same leaf after visiting the same nodes, and the verdict rendered from the
execution's trail must equal the Python walker's.
"""

import pytest
from moto import mock_aws

from gatewatch.tree import derive, diagnose, load_tree, verdict_from_trail
from gatewatch.tree.asl import trail_nodes
from tests.cases import CASES, RECORDED
from tests.sfn_harness import (
    MOTO_CONFIG,
    create_functions,
    create_state_machine,
    dispatch_lambdas,
    render_definition,
    run_execution,
    substitutions,
)


@pytest.fixture(scope="module")
def machine():
    with mock_aws(config=MOTO_CONFIG):
        import boto3

        boto3.client("sns", region_name="us-east-1").create_topic(Name="gatewatch-incidents")
        create_functions(["gatewatch-facts", "gatewatch-record", "gatewatch-guard", "gatewatch-reprobe"])
        current: dict = {}

        def facts_fn(event, _ctx):
            signals, _ = derive(current["facts"])
            return {"facts": current["facts"], "signals": signals}

        def record_fn(event, _ctx):
            decision = event["decision"]
            current["decision"] = decision
            return {"verdict": {"category": decision.get("category")},
                    "notification": {"subject": "s", "text": "t", "kind": "diagnosed"}, "remediation_candidate": False,
                    "maintenance": None}

        with dispatch_lambdas({"gatewatch-facts": facts_fn, "gatewatch-record": record_fn}):
            yield create_state_machine(render_definition(substitutions())), current


ALL = CASES | RECORDED


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_machine_reaches_the_python_walkers_verdict(machine, name, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    arn, current = machine
    facts = ALL[name][0]
    current.clear()
    current["facts"] = facts
    expected = diagnose(facts)
    run = run_execution(arn, {"incident_id": f"api-{name}"[:60].replace("_", "-"), "target": "api",
                              "outside": facts["outside"], "host": {}})
    assert run["status"] == "SUCCEEDED", run.get("cause") or run.get("error")
    decision = current["decision"]
    trail = trail_nodes(decision["trail"])
    assert decision["leaf"] == expected["leaf"]
    assert trail == [step["node"] for step in expected["path"]]
    assert decision["category"] == expected["category"]
    rendered = verdict_from_trail(facts, decision["leaf"], trail, load_tree())
    assert rendered == expected
