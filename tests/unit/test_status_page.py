"""The public status page: what it shows (display names, states, 90 daily bars, incidents with a public title and
duration) and, above all, what it never shows: no incident ids, hosts, ports, paths, URLs, errors, verdict texts,
evidence or facts. Every private string in the store is collected and searched for in every file written."""

from __future__ import annotations

import json

import pytest

from gatewatch.cli import main
from gatewatch.store import SQLiteStore
from gatewatch.views import status_data, write_status_site
from gatewatch.views.status import site_files
from tests.webstore import NOW, fill_store, filled_db, private_strings

DISPLAY = {"api": "Payments API", "shop": "Shop", "admin": "Back office", "blog": "Blog"}


@pytest.fixture(scope="module")
def filled():
    store = SQLiteStore(":memory:")
    written = fill_store(store)
    yield store, written
    store.close()


def test_status_page_shows_the_public_facts(filled):
    store, _ = filled
    data = status_data(store, NOW, DISPLAY)
    assert data["state"] == "partial outage"
    by_name = {t["name"]: t for t in data["targets"]}
    assert set(by_name) == set(DISPLAY.values())
    assert by_name["Shop"]["state"] == "down" and by_name["Blog"]["state"] == "up"
    assert all(len(t["days"]) == 90 for t in data["targets"])
    assert by_name["Blog"]["days"][-1]["uptime"] == 100.0 and by_name["Blog"]["days"][0]["uptime"] is None
    assert [i["title"] for i in data["incidents"]] == ["Shop: Gateway errors", "Payments API: Service unavailable",
                                                       "Back office: Network connectivity problem"]
    assert data["incidents"][0]["status"] == "ongoing" and data["incidents"][1]["duration_s"] == 48.0
    assert set(data["incidents"][0]) == {"target", "title", "status", "started_at", "resolved_at", "duration_s"}


def test_status_page_never_shows_a_private_field(filled, tmp_path):
    store, written = filled
    secrets = private_strings(store, written) | set(DISPLAY)  # with display names, even target names stay private
    files = site_files(status_data(store, NOW, DISPLAY))
    assert set(files) == {"index.html", "status.css", "status.json"}
    assert len(secrets) > 50  # the search is real: titles, explanations, evidence, URLs, log lines
    for name, content in files.items():
        leaked = sorted(s for s in secrets if s in content)
        assert leaked == [], f"{name} leaks {leaked[:5]}"
    html = files["index.html"]
    assert "<script" not in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    written_paths = write_status_site(status_data(store, NOW, DISPLAY), tmp_path / "site")
    assert sorted(p.name for p in written_paths) == ["index.html", "status.css", "status.json"]


def test_status_page_command_writes_the_site(tmp_path, capsys):
    db = tmp_path / "g.db"
    filled_db(db)
    config = tmp_path / "targets.yaml"
    config.write_text("targets:\n" + "".join(
        f"  - name: {n}\n    url: http://127.0.0.1:9/\n    display_name: {d}\n" for n, d in DISPLAY.items()))
    assert main(["status-page", "--db", str(db), "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
    doc = json.loads((tmp_path / "out" / "status.json").read_text())
    assert {t["name"] for t in doc["targets"]} == set(DISPLAY.values())
    assert "wrote" in capsys.readouterr().out
