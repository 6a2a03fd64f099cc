"""``gatewatch remediation``: the catalogue, a target's command preview, an incident's audit trail."""

import json
from datetime import UTC, datetime

import yaml

from gatewatch.cli import main
from gatewatch.clock import FakeClock
from gatewatch.config import load_config
from gatewatch.remediation import plan
from gatewatch.store import SQLiteStore

TARGETS = {
    "targets": [
        {"name": "lab-api", "url": "http://127.0.0.1:18080/", "remediation": {"mode": "auto"},
         "host": {"local": True, "service": "bandarupay-backend", "service_manager": "supervisor",
                  "supervisor_config": "/tmp/gatewatch-lab/supervisord.conf"}},
        {"name": "bare", "url": "http://127.0.0.1:18081/", "host": {"local": True}},
    ]
}


def test_catalogue_lists_rules_commands_and_what_is_never_automated(capsys):
    assert main(["remediation", "catalogue"]) == 0
    out = capsys.readouterr().out
    assert "restart_backend: restart the backend service through its service manager" in out
    assert "  supervisor: supervisorctl [-c {supervisor_config}] restart {service}" in out
    assert "kill -9 $(lsof -t -i:8000)" in out
    assert main(["remediation", "catalogue", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["actions"]) == {"restart_backend", "start_proxy", "reload_proxy"}


def test_commands_preview_per_target(tmp_path, capsys):
    cfg = tmp_path / "targets.yaml"
    cfg.write_text(yaml.safe_dump(TARGETS))
    assert main(["remediation", "commands", "--config", str(cfg), "lab-api"]) == 0
    out = capsys.readouterr().out
    assert "restart_backend: supervisorctl -c /tmp/gatewatch-lab/supervisord.conf restart bandarupay-backend" in out
    assert main(["remediation", "commands", "--config", str(cfg), "bare"]) == 0
    assert "restart_backend: not available (host.service is not set" in capsys.readouterr().out
    assert main(["remediation", "commands", "--config", str(cfg), "nope"]) == 2
    assert "no target named 'nope'" in capsys.readouterr().err


def test_audit_prints_the_story(tmp_path, capsys):
    cfg = tmp_path / "targets.yaml"
    cfg.write_text(yaml.safe_dump(TARGETS))
    target = load_config(cfg).target("lab-api")
    db = tmp_path / "gw.db"
    store = SQLiteStore(db)
    plan({"category": "backend_crash_loop", "remediation": "restart_backend"}, {}, target, store=store,
         clock=FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC)), incident_id="inc-7")
    store.close()
    assert main(["remediation", "audit", "inc-7", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["considered", "refused"]
    assert "[catalogue] the backend is crash looping" in lines[1]
    assert main(["remediation", "audit", "inc-8", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "no remediation records for incident inc-8\n"
