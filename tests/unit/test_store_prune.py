"""Retention on SQLite: `gatewatch store prune` and the once-a-day automatic prune of `gatewatch run`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gatewatch.cli import main
from gatewatch.clock import iso
from gatewatch.store import ActionRecord, Incident, ProbeRecord, SQLiteStore
from gatewatch.store.base import NotificationRecord
from gatewatch.store.retention import auto_prune, cutoffs
from tests.unit.test_cli_json import DOCS

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def ago(days: float, now: datetime = NOW) -> str:
    return iso(now - timedelta(days=days))


def seeded(path, now: datetime = NOW) -> SQLiteStore:
    def ago(days: float) -> str:
        return iso(now - timedelta(days=days))

    store = SQLiteStore(path)
    for days in (40, 31, 29, 1):
        store.record_probe(ProbeRecord("api", ago(days), "up", None, 1.0, {"d": days}))
    store.create_incident(Incident("old-resolved", "api", ago(200), status="resolved", resolved_at=ago(190)))
    store.create_incident(Incident("recent-resolved", "api", ago(200), status="resolved", resolved_at=ago(10)))
    store.create_incident(Incident("old-open", "api", ago(300)))
    store.record_action(ActionRecord("old-resolved", "api", "restart", "ran", "ok", ago(195)))
    store.record_action(ActionRecord("old-open", "api", "restart", "ran", "ok", ago(5)))
    return store


def test_prune_deletes_old_rounds_and_long_resolved_incidents_but_never_open_ones(tmp_path):
    store = seeded(tmp_path / "gw.db")
    counts = store.prune(*cutoffs(NOW))
    assert counts == {"probes": 2, "notifications": 0, "actions": 1, "incidents": 1}
    assert [p.result["d"] for p in store.history("api")] == [1, 29]
    assert sorted(i.id for i in store.list_incidents()) == ["old-open", "recent-resolved"]
    assert [a.incident_id for a in store.list_actions()] == ["old-open"]
    assert store.prune(*cutoffs(NOW)) == {"probes": 0, "notifications": 0, "actions": 0, "incidents": 0}


def test_auto_prune_runs_at_most_once_a_day(tmp_path):
    store = seeded(tmp_path / "gw.db")
    assert auto_prune(store, NOW)["probes"] == 2
    store.record_probe(ProbeRecord("api", ago(35), "up", None, 1.0, {"d": 35}))
    assert auto_prune(store, NOW + timedelta(hours=23)) is None  # pruned less than a day ago
    assert len(store.history("api")) == 3
    assert auto_prune(SQLiteStore(tmp_path / "gw.db"), NOW + timedelta(days=1))["probes"] == 1  # another process


def test_notifications_are_pruned_unless_still_pending(tmp_path):
    store = SQLiteStore(tmp_path / "gw.db")
    for id_, status in (("n1", "delivered"), ("n2", "pending")):
        store.put_notification(NotificationRecord(id_, "api", "slack", "opened", ago(40), status=status))
    assert store.prune(*cutoffs(NOW))["notifications"] == 1


def test_cli_store_prune(tmp_path, capsys):
    db = tmp_path / "gw.db"
    seeded(db, now=datetime.now(UTC)).close()
    assert main(["store", "prune", "--db", str(db), "--older-than", "35d", "--resolved-older-than", "1000d",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"probes": 1, "notifications": 0, "actions": 0, "incidents": 0}
    assert sorted(doc) == DOCS["store prune --json"]  # docs/cli.md lists these fields
    assert main(["store", "prune", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "deleted: 1 probes, 0 notifications, 1 actions, 1 incidents\n"
    assert main(["store", "prune", "--db", str(db), "--older-than", "soon"]) == 2
    assert "30d" in capsys.readouterr().err


def test_gatewatch_run_prunes_once_a_day_and_stores_a_compact_round(tmp_path, monkeypatch):
    from gatewatch.probe.demo import DemoSite

    monkeypatch.delenv("GATEWATCH_DB", raising=False)
    db = tmp_path / "gw.db"
    store = seeded(db, now=datetime.now(UTC))
    store.close()
    with DemoSite() as site:
        cfg = tmp_path / "t.yaml"
        url = f"http://127.0.0.1:{site.port}/api/v1/orders"
        cfg.write_text(f"targets:\n  - {{name: api, url: '{url}', confirm: {{retries: 0}}}}\n")
        assert main(["run", "--config", str(cfg), "--db", str(db)]) == 0
        store = SQLiteStore(db)
        days = [p.result.get("d") for p in store.history("api")]
        assert days == [None, 1, 29]  # this round, and the two rounds younger than 30 days
        assert "attempts" not in store.history("api")[0].result  # healthy: compact
        store.record_probe(ProbeRecord("api", ago(45, datetime.now(UTC)), "up", None, 1.0, {"d": 45}))
        assert main(["run", "--config", str(cfg), "--db", str(db)]) == 0  # same day: no second prune
        assert 45 in [p.result.get("d") for p in SQLiteStore(db).history("api")]
