"""The recorded lab fixtures (tests/events/<kind>/<topology>/), checked without the lab: complete, shaped as
docs/data-model.md says, still diagnosed as their fault by the tree, and explained only in terms of checks that apply
to the topology's setup. Re-record with ``make record-facts`` when the checks change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewatch.tree import diagnose
from lab.faults import FAULTS
from lab.topology import TOPOLOGIES
from tests.lab.test_faults import MATRIX

EVENTS = Path(__file__).resolve().parents[1] / "events"
CASES = [(topo, name) for topo, names in MATRIX.items() for name in ("healthy", *names)]
IDS = [f"{t}:{n}" for t, n in CASES]
FACTS_KEYS = {"schema", "target", "incident_id", "collected_at", "outside", "onbox", "onbox_error", "config"}
ONBOX_CHECKS = {"schema", "meta", "service", "port", "local_health", "local_endpoint", "nginx", "app_log", "firewall",
                "resources", "selinux", "database"}


def _expect(name: str) -> str:
    return "healthy" if name == "healthy" else FAULTS[name].expect


def _load(kind: str, topo: str, name: str) -> dict:
    path = EVENTS / kind / topo / f"{name}.json"
    assert path.exists(), f"{path} is missing: run `make record-facts` (as root) and commit tests/events/"
    return json.loads(path.read_text())


@pytest.mark.parametrize(("topo", "name"), CASES, ids=IDS)
def test_recorded_documents_are_complete(topo, name):
    facts, onbox = _load("facts", topo, name), _load("onbox", topo, name)
    assert FACTS_KEYS <= set(facts)
    assert facts["schema"] == 1 and facts["target"] == "lab-api" and facts["incident_id"] is None
    assert facts["onbox_error"] is None and facts["onbox"] == onbox
    assert ONBOX_CHECKS <= set(onbox)
    assert len(json.dumps(onbox)) < 24_000
    assert facts["config"]["host"]["netns"] == "gwlab" and facts["config"]["method"] == "POST"
    assert facts["outside"]["status"] == ("up" if name == "healthy" else "down")


@pytest.mark.parametrize(("topo", "name"), CASES, ids=IDS)
def test_tree_reaches_the_faults_verdict_on_recorded_facts(topo, name):
    verdict = diagnose(_load("facts", topo, name))
    assert verdict["category"] == _expect(name), [(p["node"], p["answer"]) for p in verdict["path"]]


def _words_that_do_not_apply(topo: str) -> list[str]:
    t = TOPOLOGIES[topo]
    words = []
    if t.unix:
        words += ["port 8000", "127.0.0.1:8000", "firewall", "ipv6", "[::1]"]
    if not t.supervised:
        words += ["supervisorctl", "systemctl", "journalctl"]
    if t.database == "mariadb":
        words += ["postgres"]
    else:
        words += ["mariadb", "mysql"]
    return words


@pytest.mark.parametrize(("topo", "name"), CASES, ids=IDS)
def test_explanations_mention_only_checks_that_apply_to_the_setup(topo, name):
    verdict = diagnose(_load("facts", topo, name))
    text = " ".join([verdict["title"], verdict["explanation"], *verdict["next_steps"]]).lower()
    for word in _words_that_do_not_apply(topo):
        assert word.lower() not in text, f"{topo}:{name}: the verdict mentions {word!r}: {text}"
