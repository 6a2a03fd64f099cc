"""The views' computations over a store filled from recorded lab facts (tests/webstore.py): overview, incident
timeline, report (numbers checked by hand against the fixture) and the SVG builders."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from gatewatch.clock import iso
from gatewatch.store import ActionRecord, Incident, ProbeRecord, SQLiteStore, TargetState
from gatewatch.tree import load_tree
from gatewatch.views import build_report, incident_detail, overview, parse_window, render_report, target_detail
from gatewatch.views.svg import line_chart, tree_rows, tree_svg, uptime_bars
from gatewatch.views.windows import percentile, uptime_pct
from tests.webstore import NOW, fill_store


@pytest.fixture(scope="module")
def filled():
    store = SQLiteStore(":memory:")
    written = fill_store(store)
    yield store, written
    store.close()


def test_window_parsing_and_small_statistics():
    assert parse_window("30d") == timedelta(days=30)
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window(" 2w") == timedelta(days=14)
    for bad in ("", "30", "d", "-1d", "0d", "3x"):
        with pytest.raises(ValueError, match="such as 30d or 24h"):
            parse_window(bad)
    assert uptime_pct([]) is None
    assert uptime_pct(["up", "degraded", "down", "up"]) == 75.0  # degraded counts as up
    assert percentile([5, 1, 4, 2, 3], 50) == 3 and percentile([5, 1, 4, 2, 3], 95) == 5
    assert percentile([], 50) is None


def test_overview_lists_every_target_with_state_uptime_latency_cert_and_open_incident(filled):
    store, written = filled
    view = overview(store, NOW)
    by_name = {t["name"]: t for t in view["targets"]}
    assert list(by_name) == ["admin", "api", "blog", "shop"]
    assert {n: t["state"] for n, t in by_name.items()} == {"admin": "UP", "api": "UP", "blog": "UP", "shop": "DOWN"}
    assert view["down"] == 1 and [i["id"] for i in view["open_incidents"]] == [written["incidents"]["shop"]]
    assert by_name["blog"]["uptime"] == {"24h": 100.0, "7d": 100.0, "30d": 100.0}
    # shop has been down for 50 minutes: 10 of the last day's 288 five-minute rounds failed
    assert by_name["shop"]["uptime"]["24h"] == pytest.approx(100 * 278 / 288)
    assert by_name["blog"]["cert_days_left"] == 9.4
    assert 35 <= by_name["blog"]["p50_ms"] <= by_name["blog"]["p95_ms"] <= 35 * 1.35 + 25
    assert len(by_name["blog"]["latency"]["p50"]) == 24  # one point per hour of the last day
    assert by_name["shop"]["open_incident"]["category"] == "proxy_config_invalid"


def test_configured_targets_without_rounds_still_show(filled):
    store, _ = filled
    names = [t["name"] for t in overview(store, NOW, configured=["new-one"])["targets"]]
    assert "new-one" in names
    new = next(t for t in overview(store, NOW, configured=["new-one"])["targets"] if t["name"] == "new-one")
    assert new["state"] == "UNKNOWN" and new["uptime"]["24h"] is None


def test_target_detail_has_phases_rounds_and_incidents(filled):
    store, written = filled
    view = target_detail(store, "admin", NOW)
    assert set(view["phases"]) >= {"dns", "connect", "ttfb", "total"}
    assert len(view["rounds"]) == 200 and view["rounds"][0]["at"] > view["rounds"][-1]["at"]
    assert [i["id"] for i in view["incidents"]] == [written["incidents"]["admin"]]
    assert target_detail(store, "nobody", NOW) is None


def test_incident_timeline_tells_the_story_in_order(filled):
    store, written = filled
    view = incident_detail(store, written["incidents"]["api"], NOW)
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds == ["detected", "opened", "diagnosed", "considered", "allowed", "ran", "verified", "resolved"]
    assert [e["at"] for e in view["timeline"]] == sorted(e["at"] for e in view["timeline"])
    assert view["verdict"]["category"] == "backend_down" and view["leaf"] == "backend_down"
    assert view["path"][0]["node"] == "retry_cleared" and view["next_steps"]
    assert next(e for e in view["timeline"] if e["kind"] == "allowed")["guard"] == "all"
    shop = incident_detail(store, written["incidents"]["shop"], NOW)
    assert [e["kind"] for e in shop["timeline"]][-1] == "no_action"
    assert incident_detail(store, "nope", NOW) is None


def test_incident_timeline_shows_notification_attempts_when_the_store_has_them(tmp_path):
    store = SQLiteStore(tmp_path / "g.db")
    store.create_incident(Incident("api-1", "api", "2026-01-01T00:01:00.000Z"))
    store.list_notifications = lambda incident_id, limit: [  # alert's NotificationRecord fields, newest first
        {"first_at": "2026-01-01T00:01:09.000Z", "last_at": "2026-01-01T00:03:09.000Z", "channel": "slack",
         "kind": "diagnosed", "status": "failed", "attempts": 3, "detail": {"error": "HTTP 500"}},
        {"first_at": "2026-01-01T00:01:05.000Z", "last_at": "2026-01-01T00:01:05.000Z", "channel": "email",
         "kind": "diagnosed", "status": "delivered", "attempts": 1, "detail": {}}]
    events = incident_detail(store, "api-1", NOW)["timeline"]
    assert [(e["kind"], e["text"], e["reason"]) for e in events if e["kind"] == "notified"] == [
        ("notified", "diagnosed notification via email: delivered", ""),
        ("notified", "diagnosed notification via slack: failed after 3 attempts", "HTTP 500")]


def test_failure_start_is_the_first_round_of_the_failing_run(tmp_path):
    store = SQLiteStore(tmp_path / "g.db")
    for minute, status in enumerate(["up", "down", "up", "down", "down", "down"]):
        store.record_probe(ProbeRecord("api", f"2026-01-01T00:0{minute}:00.000Z", status, None, 5.0, {}))
    store.create_incident(Incident("api-1", "api", "2026-01-01T00:04:01.000Z", status="resolved",
                                   resolved_at="2026-01-01T00:10:00.000Z", outside={"at": "2026-01-01T00:04:00.000Z"},
                                   facts={"collected_at": "2026-01-01T00:04:10.000Z"}, verdict={"category": "x"}))
    report = build_report(store, NOW.replace(year=2026, month=1, day=2), parse_window("7d"), "7d")
    api = report["targets"][0]
    assert api["time_to_detect"]["mean_s"] == 60.0  # 00:03 first failure of the run -> 00:04 confirmed
    assert api["time_to_verdict"]["mean_s"] == 10.0
    assert api["time_to_recover"]["mean_s"] == 420.0  # 00:03 -> 00:10
    assert api["uptime_pct"] == pytest.approx(100 * 2 / 6, abs=1e-3)


def test_report_numbers_and_root_causes_next_to_the_runbook(filled):
    store, _ = filled
    report = build_report(store, NOW, parse_window("30d"), "30d")
    rows = {r["target"]: r for r in report["targets"]}
    assert rows["api"]["incidents"] == 1 and rows["api"]["auto_remediated_pct"] == 100.0
    assert rows["api"]["time_to_recover"]["mean_s"] == 48.0 and rows["api"]["time_to_verdict"]["mean_s"] == 6.0
    assert rows["admin"]["time_to_recover"]["mean_s"] == 95 * 60  # failure start to recovery
    assert rows["shop"]["open"] == 1 and rows["shop"]["time_to_recover"]["n"] == 0
    assert rows["blog"]["uptime_pct"] == 100.0 and rows["blog"]["incidents"] == 0
    fleet = report["fleet"]
    assert fleet["incidents"] == 3 and fleet["auto_remediated"] == 1 and fleet["targets"] == 4
    assert fleet["rounds"] == sum(r["rounds"] for r in report["targets"])
    causes = {r["cause"]: r for r in report["root_causes"]}
    assert [c["runbook_pct"] for c in report["root_causes"]] == [70.0, 20.0, 5.0, 5.0, 0.0]
    assert causes["backend down"]["categories"] == {"backend_down": 1}
    assert causes["proxy misconfiguration"]["categories"] == {"proxy_config_invalid": 1}
    assert causes["firewall"]["observed_pct"] == pytest.approx(33.3)
    # a shorter window leaves the older incidents out
    assert build_report(store, NOW, parse_window("7d"))["fleet"]["incidents"] == 2


def test_report_formats(filled):
    store, _ = filled
    report = build_report(store, NOW, parse_window("30d"), "30d")
    text = render_report(report, "text")
    assert re.search(r"^api\s+99\.\d{3}%\s+\d+\s+1\s+0\s+0s\s+6s\s+48s\s+100%$", text, re.M), text
    assert re.search(r"^backend down\s+70%\s+33% \(1\)\s+backend_down 1$", text, re.M)
    md = render_report(report, "markdown")
    assert "| target | uptime |" in md and "| **fleet** |" in md
    assert json.loads(render_report(report, "json"))["fleet"]["incidents"] == 3
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv"))))
    assert [r["target"] for r in rows] == ["admin", "api", "blog", "shop", "fleet"]
    assert rows[1]["root_causes"] == "backend_down=1"


def test_line_chart_has_a_point_per_value_and_escapes_names():
    svg = line_chart({"p50<x>": [(iso(NOW), 10.0), (iso(NOW + timedelta(hours=1)), 20.0)], "empty": []},
                     title='a "title" <b>')
    assert svg.count('<circle class="pt"') == 2
    assert "<b>" not in svg and "p50<x>" not in svg and "&lt;b&gt;" in svg
    assert "no data" in line_chart({}, title="t")


def test_uptime_bars_colour_by_threshold():
    svg = uptime_bars([{"date": "d1", "uptime": 100.0}, {"date": "d2", "uptime": 99.5},
                       {"date": "d3", "uptime": 90.0}, {"date": "d4", "uptime": None}], title="t")
    assert [m for m in re.findall(r'class="day (\w+)"', svg)] == ["ok", "warn", "bad", "nodata"]


def test_tree_drawing_highlights_exactly_the_walked_path(filled):
    store, written = filled
    verdict = written["verdicts"]["api"]
    tree = load_tree()
    trail = [step["node"] for step in verdict["path"]]
    rows = tree_rows(tree, trail, verdict["leaf"])
    walked = [r["ref"] for r in rows if r["walked"]]
    assert walked == [*trail, verdict["leaf"]]
    full = tree_rows(tree, trail, verdict["leaf"], collapse=False)
    assert len(full) > len(rows) and [r["ref"] for r in full if r["walked"]] == walked
    svg = tree_svg(tree, trail, verdict["leaf"])
    assert svg.count('data-walked="true"') == len(walked)
    assert svg.count('class="edge walked"') == len(walked) - 1


def test_views_read_dynamodb_the_same_way(monkeypatch):
    """The views use only the port: the same overview comes out of DynamoDB (moto)."""
    import boto3
    from moto import mock_aws

    from gatewatch.aws.template_schema import create_table_from_template, load_template
    from gatewatch.store import DynamoDBStore

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(client, load_template(), "gw")
        store = DynamoDBStore("gw", client=client)
        for i, status in enumerate(["up", "down", "up"]):
            store.record_probe(ProbeRecord("api", iso(NOW - timedelta(hours=3 - i)), status, None, 10.0 + i, {}))
        store.put_state(TargetState("api", "DOWN", 1, 0, "api-1", iso(NOW)), 0)
        store.create_incident(Incident("api-1", "api", iso(NOW - timedelta(hours=2)), category="backend_down"))
        store.record_action(ActionRecord("api-1", "api", "restart_backend", "refused", "mode", iso(NOW), {}))
        view = overview(store, NOW)
        [api] = view["targets"]
        assert api["state"] == "DOWN" and api["uptime"]["24h"] == pytest.approx(200 / 3)
        assert api["open_incident"]["id"] == "api-1" and api["p95_ms"] == 12.0
        assert [e["kind"] for e in incident_detail(store, "api-1", NOW)["timeline"]] == ["detected", "opened",
                                                                                          "refused"]


def test_report_command(tmp_path, capsys):
    from gatewatch.cli import main
    from tests.webstore import filled_db

    db = tmp_path / "g.db"
    filled_db(db)
    assert main(["report", "--db", str(db), "--since", "3650d", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["window"] == "3650d" and doc["fleet"]["incidents"] == 3
    assert main(["report", "--db", str(db), "--format", "markdown"]) == 0
    assert "| **fleet** |" in capsys.readouterr().out
    assert main(["report", "--db", str(db), "--since", "soon"]) == 2
    assert "such as 30d" in capsys.readouterr().err


def test_skipped_rounds_count_neither_up_nor_down(tmp_path):
    """A round that ran out of time before reaching a target (status skipped) says nothing about it."""
    store = SQLiteStore(tmp_path / "g.db")
    for minute, status in enumerate(["up", "skipped", "down", "skipped", "up"]):
        store.record_probe(ProbeRecord("api", iso(NOW - timedelta(minutes=10 - minute)), status, None, 5.0, {}))
    store.put_state(TargetState("api"), 0)
    [api] = overview(store, NOW)["targets"]
    assert api["uptime"]["24h"] == pytest.approx(200 / 3)
    report = build_report(store, NOW, parse_window("1d"))
    assert report["targets"][0]["rounds"] == 3 and report["targets"][0]["uptime_pct"] == pytest.approx(66.6667)
    assert uptime_pct(["skipped"]) is None


def test_timeline_shows_when_the_diagnosis_started_and_the_incident_was_announced():
    """Fields newer stores record on the incident (aws: diagnosis_started_at, notified_at)."""
    from dataclasses import dataclass

    from gatewatch.views.incident import timeline

    @dataclass
    class NewerIncident(Incident):
        diagnosis_started_at: str | None = None
        notified_at: str | None = None

    incident = NewerIncident("api-1", "api", "2026-01-01T00:01:00.000Z",
                             diagnosis_started_at="2026-01-01T00:01:01.000Z", notified_at="2026-01-01T00:01:30.000Z")
    events = timeline(SQLiteStore(":memory:"), incident, [], [], "2026-01-01T00:00:00.000Z")
    assert [e["kind"] for e in events] == ["detected", "opened", "diagnosing", "notified"]
