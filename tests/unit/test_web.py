"""``gatewatch serve``'s pages over the recorded-facts store (FastAPI's test client), the escaping of everything
that came from a probed server or host, and the read-only guarantee."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gatewatch.clock import iso
from gatewatch.store import ActionRecord, Incident, ProbeRecord, SQLiteStore, TargetState
from gatewatch.web import create_app
from tests.webstore import NOW, fill_store

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&'


@pytest.fixture(scope="module")
def site():
    store = SQLiteStore(":memory:")
    written = fill_store(store)
    with TestClient(create_app(store, now=lambda: NOW)) as client:
        yield client, written
    store.close()


def test_overview_lists_targets_with_states_and_links(site):
    client, written = site
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    rows = dict(re.findall(r'data-target="([^"]+)" data-state="([^"]+)"', page.text))
    assert rows == {"admin": "UP", "api": "UP", "blog": "UP", "shop": "DOWN"}
    assert f'href="/incidents/{written["incidents"]["shop"]}"' in page.text
    assert page.text.count("<svg") == 4 and page.text.count('class="pt"') >= 4 * 24
    assert "<caption>" in page.text and 'scope="col"' in page.text  # a labelled table


def test_target_page_has_phase_chart_rounds_and_incidents(site):
    client, written = site
    page = client.get("/targets/shop")
    assert page.status_code == 200
    assert 'data-series="dns"' in page.text and 'data-series="total"' in page.text
    assert page.text.count('<tr class="fail">') == 10  # the 10 failing rounds since shop went down
    assert written["incidents"]["shop"] in page.text
    assert client.get("/targets/nobody").status_code == 404


def test_incident_page_shows_verdict_timeline_guard_and_walked_path(site):
    client, written = site
    verdict = written["verdicts"]["api"]
    page = client.get(f"/incidents/{written['incidents']['api']}")
    assert page.status_code == 200
    text = page.text
    assert 'data-category="backend_down"' in text
    assert "is not running" in text  # the verdict's title
    for kind in ("detected", "opened", "diagnosed", "considered", "allowed", "ran", "verified", "resolved"):
        assert f'class="ev {kind}"' in text
    assert "guard: <code>verify</code>" in text
    walked = re.findall(r'data-ref="([^"]+)" data-walked="true"', text)
    assert walked == [step["node"] for step in verdict["path"]] + [verdict["leaf"]]
    assert verdict["next_steps"][0].split("`")[0][:30] in text.replace("&#39;", "'").replace("&lt;", "<")
    whole = client.get(f"/incidents/{written['incidents']['api']}/tree").text
    assert re.findall(r'data-ref="([^"]+)" data-walked="true"', whole) == walked
    assert whole.count('class="row') > text.count('class="row')


def test_audit_lists_every_decision(site):
    client, _ = site
    page = client.get("/audit").text
    for decision in ("considered", "allowed", "ran", "verified", "no_action"):
        assert f"decision-{decision}" in page
    assert client.get("/incidents").status_code == 200


def test_read_only_and_security_headers(site):
    client, _ = site
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/").status_code == 405
    headers = client.get("/").headers
    assert "script-src" not in headers["content-security-policy"]
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404


def test_everything_from_probed_servers_and_hosts_is_escaped(tmp_path):
    """A hostile body, header, log line, verdict text and audit detail show as text, never as markup."""
    store = SQLiteStore(tmp_path / "g.db")
    at = iso(NOW)
    result = {"probe": {"error": HOSTILE, "http": {"status": 502}, "timings_ms": {"total": 5.0}}, "transient": False}
    store.record_probe(ProbeRecord("evil", at, "down", HOSTILE, 5.0, result))
    store.put_state(TargetState("evil", "DOWN", 1, 0, "evil-1", at), 0)
    verdict = {"category": "backend_down", "title": HOSTILE, "explanation": HOSTILE, "leaf": "backend_down",
               "path": [{"node": "retry_cleared", "question": HOSTILE, "answer": "no"}],
               "evidence": [{"fact": HOSTILE, "value": HOSTILE, "quote": HOSTILE, "node": "x"}],
               "next_steps": [HOSTILE], "never_automate": [HOSTILE]}
    store.create_incident(Incident("evil-1", "evil", at, title=HOSTILE, category="backend_down", verdict=verdict,
                                   outside={"at": at, "probe": {"url": HOSTILE, "method": "GET"}},
                                   remediation={"action": HOSTILE, "reason": HOSTILE, "command": HOSTILE}))
    store.record_action(ActionRecord("evil-1", "evil", HOSTILE, "refused", HOSTILE, at, {"reason": HOSTILE}))
    client = TestClient(create_app(store, now=lambda: NOW))
    for url in ("/", "/targets/evil", "/incidents/evil-1", "/incidents/evil-1/tree", "/audit", "/incidents"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "<script>" not in page.text and "<img" not in page.text, url
    assert "&lt;script&gt;" in client.get("/incidents/evil-1").text
    assert "&lt;script&gt;" in client.get("/targets/evil").text


def test_serve_binds_loopback_by_default_and_warns_otherwise(monkeypatch, tmp_path, capsys):
    from gatewatch.cli import build_parser, main

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.table) == ("127.0.0.1", 8080, None)
    ran = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: ran.update(kw))
    assert main(["serve", "--db", str(tmp_path / "g.db"), "--host", "0.0.0.0", "--port", "9999"]) == 0
    assert ran["host"] == "0.0.0.0" and ran["port"] == 9999
    assert "there is no login" in capsys.readouterr().err
