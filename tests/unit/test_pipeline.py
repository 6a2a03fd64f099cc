"""The local pipeline against a real loopback server: incidents open after the failure threshold, carry a verdict,
notify once, resolve after the success threshold with their duration, and survive a restart of the prober."""

from __future__ import annotations

import io

import pytest

from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.notify import ConsoleNotifier
from gatewatch.pipeline import Pipeline
from gatewatch.store import SQLiteStore
from tests.servers import Reply, http_server


class Switch:
    """A route whose answer the test flips."""

    def __init__(self, reply: Reply):
        self.reply = reply

    def __call__(self, _req):
        return self.reply


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, notification):
        self.sent.append(notification)


@pytest.fixture
def site():
    switch = Switch(Reply(401, {"detail": "bad credentials"}))
    with http_server({"/api/v1/auth/demo-login": switch,
                      "/openapi.json": Reply(200, {"paths": {"/api/v1/auth/demo-login": {}, "/health": {}}})}) as s:
        yield s, switch


def config_for(url: str):
    return load_config_text(f"""
targets:
  - name: api
    url: {url}
    method: POST
    timeout_s: 3
    expect: {{status: [200, 401]}}
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 2, success_threshold: 2}}
""")


def test_incident_opens_after_threshold_and_resolves_with_duration(site, tmp_path):
    server, switch = site
    config = config_for(server.url("/api/v1/auth/demo-login"))
    store = SQLiteStore(tmp_path / "g.db")
    clock = FakeClock()
    notes = Recorder()
    pipe = Pipeline(config, store, notes, clock=clock)

    assert pipe.run_once()[0].event is None  # healthy
    switch.reply = Reply(502, "<html>502 Bad Gateway</html>", {"Server": "nginx"})
    first = pipe.run_once()[0]
    assert (first.status, first.event) == ("down", None)  # one failure < threshold 2
    clock.advance(60)
    second = pipe.run_once()[0]
    assert second.event == "opened" and second.incident_id
    assert second.verdict["category"] == "unknown"  # outside only: no host to look at
    assert "502" in second.verdict["title"]
    [incident] = store.list_incidents()
    assert incident.status == "open" and incident.verdict["leaf"] == second.verdict["leaf"]
    assert incident.facts["onbox_error"]["reason"] == "not_configured"
    assert [n.kind for n in notes.sent] == ["diagnosed"]
    assert "What the outside sees: POST" in notes.sent[0].text and "502" in notes.sent[0].text

    clock.advance(60)
    assert pipe.run_once()[0].event is None  # still down: no second incident, no second notification
    assert len(store.list_incidents()) == 1 and len(notes.sent) == 1

    # the prober restarts: a new Pipeline on the same file carries on
    switch.reply = Reply(401, {"detail": "bad credentials"})
    pipe2 = Pipeline(config, SQLiteStore(tmp_path / "g.db"), notes, clock=clock)
    clock.advance(30)
    assert pipe2.run_once()[0].event is None  # 1 success < threshold 2
    clock.advance(30)
    resolved = pipe2.run_once()[0]
    assert resolved.event == "resolved" and resolved.incident_id == incident.id
    [incident] = store.list_incidents()
    assert incident.status == "resolved" and incident.duration_s == 120.0 and incident.resolution == "recovered"
    assert [n.kind for n in notes.sent] == ["diagnosed", "resolved"]
    assert "after 120 s" in notes.sent[1].text
    assert len(store.history(target="api", limit=100)) == 6


def test_route_404_names_the_nearest_route_from_openapi(site, tmp_path):
    server, _ = site
    config = config_for(server.url("/api/v1/demo-login"))  # the runbook's own mistake
    pipe = Pipeline(config, SQLiteStore(tmp_path / "g.db"), Recorder(), clock=FakeClock())
    pipe.run_once()
    report = pipe.run_once()[0]
    assert report.event == "opened"
    assert report.verdict["category"] == "route_not_found"
    assert "/api/v1/auth/demo-login" in report.verdict["title"]
    assert report.facts["outside"]["openapi_paths"] == ["/api/v1/auth/demo-login", "/health"]


def test_console_notifier_prints_the_incident(site, tmp_path):
    server, switch = site
    switch.reply = Reply(502, "bad", {"Server": "nginx"})
    out = io.StringIO()
    config = config_for(server.url("/api/v1/auth/demo-login"))
    pipe = Pipeline(config, SQLiteStore(tmp_path / "g.db"), ConsoleNotifier(stream=out), clock=FakeClock())
    pipe.run_once()
    pipe.run_once()
    text = out.getvalue()
    assert "api is DOWN" in text and "Verdict: unknown" in text and "Path through the decision tree" in text


def test_cli_run_incidents_history(site, tmp_path, capsys):
    from gatewatch.cli import main

    server, switch = site
    cfg = tmp_path / "targets.yaml"
    cfg.write_text(f"""
targets:
  - name: api
    url: {server.url("/api/v1/auth/demo-login")}
    method: POST
    timeout_s: 3
    expect: {{status: [401]}}
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
""")
    db = str(tmp_path / "cli.db")
    assert main(["run", "--config", str(cfg), "--once", "--db", db]) == 0
    switch.reply = Reply(500, "boom")
    assert main(["run", "--config", str(cfg), "--once", "--db", db]) == 1
    out = capsys.readouterr().out
    assert "OPENED api-" in out
    assert main(["incidents", "--db", db]) == 0
    assert "open" in capsys.readouterr().out
    assert main(["history", "--db", db, "--target", "api"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and " 500 " in lines[0] and " 401 " in lines[1]


def test_maintenance_window_silences_notifications_but_not_probing(site, tmp_path):
    server, switch = site
    switch.reply = Reply(502, "bad", {"Server": "nginx"})
    config = load_config_text(f"""
targets:
  - name: api
    url: {server.url("/api/v1/auth/demo-login")}
    method: POST
    timeout_s: 3
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
    maintenance:
      - {{start: "2025-12-31T00:00:00Z", end: "2026-01-01T01:00:00Z", reason: "kernel upgrade"}}
""")
    notes = Recorder()
    store = SQLiteStore(tmp_path / "g.db")
    pipe = Pipeline(config, store, notes, clock=FakeClock())  # FakeClock starts 2026-01-01T00:00Z: inside
    report = pipe.run_once()[0]
    assert report.event == "opened" and report.verdict is not None
    assert notes.sent == []  # silenced
    assert len(store.history()) == 1 and len(store.list_incidents()) == 1  # but probed and recorded
