"""The --json documents keep the fields docs/cli.md lists (the docs are read here, so they cannot drift)."""

import json
import re
from pathlib import Path

import pytest

from gatewatch.cli import main
from gatewatch.probe.demo import DemoSite
from gatewatch.store import ActionRecord, SQLiteStore

ROOT = Path(__file__).parents[2]


def documented() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "cli.md").read_text()
    out = {}
    for m in re.finditer(r"### `gatewatch (.+?)`[^\n]*\n(?:[^\n]*\n)*?fields: ([^\n]+)\n", text):
        out[m.group(1)] = sorted(re.findall(r"`([a-z_]+)`", m.group(2)))  # a set of names: order is no contract
    return out


DOCS = documented()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store with one round up and one down (an incident with its verdict and an audit record)."""
    tmp = tmp_path_factory.mktemp("json")
    db = str(tmp / "x.db")
    with DemoSite() as site:
        base = f"http://127.0.0.1:{site.port}"
        cfg = tmp / "t.yaml"
        cfg.write_text(f"targets: [{{name: api, url: '{base}/api/v1/checkout', confirm: {{retries: 0}}, "
                       "alerting: {failure_threshold: 1}}]\n")
        assert main(["run", "--config", str(cfg), "--db", db]) == 1
    store = SQLiteStore(db)
    incident = store.list_incidents()[0]
    store.record_action(ActionRecord(incident_id=incident.id, target="api", action="restart_backend",
                                     decision="refused", guard="catalogue", at="2026-11-28T19:00:00Z"))
    store.close()
    return db, incident.id, base, cfg


def keys(argv, capsys, expect=None):
    code = main(argv)
    out = capsys.readouterr().out
    if expect is not None:
        assert code == expect
    if argv[0] == "run":
        return sorted(json.loads(out.splitlines()[0]))
    doc = json.loads(out)
    return sorted(doc[0] if isinstance(doc, list) else doc)


def test_docs_list_the_commands():
    assert set(DOCS) == {"probe URL --json", "probe --config FILE --json", "run --json", "incidents --json",
                         "incidents show ID --json", "history --json", "remediation audit ID --json",
                         "diagnose --facts FILE --json", "store prune --json"}


def test_probe_json_fields(capsys):
    with DemoSite() as site:
        assert keys(["probe", f"http://127.0.0.1:{site.port}/health", "--json"], capsys) == DOCS["probe URL --json"]
    assert keys(["probe", "--demo", "--json"], capsys, 0) == DOCS["probe --config FILE --json"]


def test_run_json_fields(tmp_path, capsys):
    with DemoSite() as site:
        cfg = tmp_path / "t.yaml"
        cfg.write_text(f"targets: [{{name: api, url: 'http://127.0.0.1:{site.port}/health'}}]\n")
        got = keys(["run", "--config", str(cfg), "--db", str(tmp_path / "x.db"), "--json", "--every", "0.01",
                    "--rounds", "1"], capsys, 0)
    assert got == DOCS["run --json"]


def test_store_json_fields(recorded, capsys):
    db, incident_id, _, _ = recorded
    assert keys(["incidents", "--db", db, "--json"], capsys, 0) == DOCS["incidents --json"]
    assert keys(["incidents", "show", incident_id, "--db", db, "--json"], capsys, 0) == DOCS["incidents show ID --json"]
    assert keys(["history", "--db", db, "--json"], capsys, 0) == DOCS["history --json"]
    assert keys(["remediation", "audit", incident_id, "--db", db, "--json"], capsys, 0) == (
        DOCS["remediation audit ID --json"])


def test_diagnose_json_fields(capsys):
    facts = str(ROOT / "tests" / "events" / "facts" / "classic" / "backend_stopped.json")
    assert keys(["diagnose", "--facts", facts, "--json"], capsys) == DOCS["diagnose --facts FILE --json"]
