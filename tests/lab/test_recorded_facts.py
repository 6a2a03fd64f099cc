"""The recorded lab fixtures (tests/events/), checked without the lab: complete, shaped as docs/data-model.md says,
and still diagnosed as their fault by the tree. Re-record with ``make record-facts`` when the checks change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewatch.tree import diagnose
from lab.faults import FAULTS

EVENTS = Path(__file__).resolve().parents[1] / "events"
CASES = {"healthy": "healthy", **{name: f.expect for name, f in FAULTS.items()}}
FACTS_KEYS = {"schema", "target", "incident_id", "collected_at", "outside", "onbox", "onbox_error", "config"}
ONBOX_CHECKS = {"schema", "meta", "service", "port", "local_health", "local_endpoint", "nginx", "app_log", "firewall",
                "resources", "selinux", "database"}


def _load(kind: str, name: str) -> dict:
    path = EVENTS / kind / f"{name}.json"
    assert path.exists(), f"{path} is missing: run `make record-facts` (as root) and commit tests/events/"
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_recorded_documents_are_complete(name):
    facts, onbox = _load("facts", name), _load("onbox", name)
    assert FACTS_KEYS <= set(facts)
    assert facts["schema"] == 1 and facts["target"] == "lab-api" and facts["incident_id"] is None
    assert facts["onbox_error"] is None and facts["onbox"] == onbox
    assert ONBOX_CHECKS <= set(onbox)
    assert len(json.dumps(onbox)) < 24_000
    assert facts["config"]["host"]["netns"] == "gwlab" and facts["config"]["method"] == "POST"
    assert facts["outside"]["status"] == ("up" if name == "healthy" else "down")


@pytest.mark.parametrize("name", list(CASES))
def test_tree_reaches_the_faults_verdict_on_recorded_facts(name):
    verdict = diagnose(_load("facts", name))
    assert verdict["category"] == CASES[name], [(p["node"], p["answer"]) for p in verdict["path"]]
