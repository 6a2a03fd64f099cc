"""The decision tree: every named case gets its verdict, verdicts explain themselves, bad trees fail at load."""

import json
from pathlib import Path

import pytest

from gatewatch.cli import main
from gatewatch.tree import diagnose, load_tree
from gatewatch.tree.asl import to_asl
from gatewatch.tree.engine import walk
from gatewatch.tree.model import TreeError, build_tree
from gatewatch.tree.signals import SIGNALS, derive
from tests.cases import CASES, RECORDED

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_gets_its_verdict(name):
    facts, leaf, category = CASES[name]
    verdict = diagnose(facts)
    assert (verdict["leaf"], verdict["category"]) == (leaf, category), json.dumps(verdict["path"], indent=1)
    assert verdict["path"] and verdict["path"][0]["node"] == "retry_cleared"
    assert "unknown" not in verdict["title"], verdict["title"]
    assert "signal_errors" not in verdict


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_lab_facts_get_their_faults_verdict(name):
    facts, _, category = RECORDED[name]
    verdict = diagnose(facts)
    assert verdict["category"] == category, json.dumps(verdict["path"], indent=1)


def test_upstream_mismatch_names_the_exact_values():
    verdict = diagnose(CASES["upstream_wrong_port"][0])
    assert "127.0.0.1:8001" in verdict["title"] and "127.0.0.1:8000" in verdict["title"]
    assert any("server 127.0.0.1:8000;" in step for step in verdict["next_steps"])
    assert verdict["remediation"] is None


def test_route_not_found_names_the_nearest_real_route():
    verdict = diagnose(CASES["route_not_found_outside"][0])
    assert "/api/v1/auth/demo-login" in verdict["title"]


def test_safe_causes_allow_their_remediation_and_others_none():
    allowed = {name: diagnose(f)["remediation"] for name, (f, _, _) in CASES.items()}
    assert allowed["backend_down"] == "restart_backend"
    assert allowed["backend_hung"] == "restart_backend"
    assert allowed["oom_killed"] == "restart_backend"
    assert allowed["nginx_down"] == "start_proxy"
    assert allowed["stale_nginx_config"] == "reload_proxy"
    for name in ("crash_loop", "port_conflict", "nginx_config_invalid", "upstream_wrong_port", "firewall_backend"):
        assert allowed[name] is None, name


def test_evidence_quotes_the_log_line_that_decided():
    verdict = diagnose(CASES["header_too_big"][0])
    quotes = [e["quote"] for e in verdict["evidence"] if e.get("quote")]
    assert any("header_too_big" in q for q in quotes)


def test_signals_are_always_present_and_typed_even_for_empty_facts():
    values, errors = derive({})
    assert set(values) == set(SIGNALS)
    for name, sig in SIGNALS.items():
        assert isinstance(values[name], {"bool": bool, "number": (int, float), "string": str}[sig.type]), name
    assert errors == {}


def test_broken_facts_fail_closed_with_a_reason():
    facts = {"outside": {"status": "down", "probe": {"http": {"status": "not-a-number"}}}}
    verdict = diagnose(facts)
    assert "http_status" in verdict["signal_errors"]
    assert verdict["category"] in ("unknown", "host_unreachable")


def test_engine_fails_closed_on_an_unevaluable_node():
    tree = load_tree()
    signals, _ = derive({})
    signals["outside_transient"] = object()  # eq against True is fine; make lt fail instead
    signals["http_status"] = "x"  # eq 404 is fine; ge 500 (out_page_5xx) cannot be evaluated
    signals["outside_status"] = "down"
    signals["onbox_error"] = "not_configured"
    run = walk(tree, signals)
    assert run.error and "out_page_5xx" in run.error


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"start": "a", "nodes": {"a": {"question": "q", "signal": "nope", "op": "eq", "value": True,
                                        "yes": "l", "no": "l"}},
          "leaves": {"l": {"category": "healthy", "title": "t", "explanation": "e"}}}, "unknown signal 'nope'"),
        ({"start": "a", "nodes": {"a": {"question": "q", "signal": "port_listening", "op": "lt", "value": 3,
                                        "yes": "l", "no": "l"}},
          "leaves": {"l": {"category": "healthy", "title": "t", "explanation": "e"}}}, "op 'lt' is not valid"),
        ({"start": "a", "nodes": {"a": {"question": "q", "signal": "port_listening", "op": "eq", "value": True,
                                        "yes": "missing", "no": "l"}},
          "leaves": {"l": {"category": "healthy", "title": "t", "explanation": "e"}}}, "neither a node nor a leaf"),
        ({"start": "a", "nodes": {"a": {"question": "q", "signal": "port_listening", "op": "eq", "value": True,
                                        "yes": "l", "no": "l"}},
          "leaves": {"l": {"category": "made_up", "title": "t", "explanation": "e"}}}, "unknown category"),
        ({"start": "a", "nodes": {"a": {"question": "q", "signal": "port_listening", "op": "eq", "value": True,
                                        "yes": "b", "no": "l"},
                                  "b": {"question": "q", "signal": "port_listening", "op": "eq", "value": True,
                                        "yes": "a", "no": "l"}},
          "leaves": {"l": {"category": "healthy", "title": "t", "explanation": "e"}}}, "cycle"),
    ],
)
def test_invalid_trees_are_rejected_with_the_node_named(doc, message):
    with pytest.raises(TreeError) as info:
        build_tree(doc)
    assert message in str(info.value)


def test_committed_state_machine_is_generated_from_the_current_tree():
    committed = (ROOT / "infra" / "statemachine" / "diagnose.asl.json").read_text()
    assert committed == to_asl(load_tree()), "stale: run `make generate` (gatewatch tree --format asl)"


def test_diagnose_cli_prints_the_verdict_and_exits_1(tmp_path, capsys):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(CASES["backend_down"][0]))
    assert main(["diagnose", "--facts", str(path)]) == 1
    out = capsys.readouterr().out
    assert "verdict:    backend_down" in out and "systemctl restart bandarupay-backend" in out
    assert main(["diagnose", "--facts", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["category"] == "backend_down"


def test_diagnose_cli_rejects_a_non_facts_file(tmp_path, capsys):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    assert main(["diagnose", "--facts", str(path)]) == 2
    assert "not a facts document" in capsys.readouterr().err


def test_tree_cli_formats(capsys):
    assert main(["tree", "--format", "mermaid"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD") and "L_backend_down" in out
    assert main(["tree"]) == 0
    assert "=> backend_down" in capsys.readouterr().out


def test_docs_show_the_current_tree():
    from gatewatch.tree.export import TREE_DOC, tree_doc

    assert (ROOT / TREE_DOC).read_text() == tree_doc(load_tree()), f"{TREE_DOC} is stale: run `make generate`"
    assert f"]({TREE_DOC})" in (ROOT / "README.md").read_text()  # the README links the picture
