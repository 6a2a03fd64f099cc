"""The lab's own behaviour: its targets file, idempotent up, status, heal of stacked faults, a full down, the CLI,
and the clear errors when it cannot run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from gatewatch.cli import main as gatewatch_main
from gatewatch.config import load_config
from lab.faults import FAULTS
from lab.manager import Lab, LabError, LabPrerequisiteError

pytestmark = pytest.mark.lab

DESIGN_CATEGORIES = {
    "healthy", "transient", "dns_failure", "tls_certificate_invalid", "tls_certificate_expiring", "edge_unreachable",
    "edge_to_origin_blocked", "origin_tls_error", "route_not_found", "assertion_failed", "host_unreachable",
    "proxy_down", "proxy_config_invalid", "proxy_upstream_mismatch", "proxy_header_too_big",
    "proxy_permission_denied", "backend_down", "backend_crash_loop", "backend_not_listening", "port_conflict",
    "backend_hung", "backend_unhealthy", "database_unavailable", "endpoint_error", "firewall_blocked",
    "out_of_memory", "disk_full", "fd_exhausted", "unknown",
}


def test_catalogue_names_known_verdicts_and_says_what_each_fault_proves():
    assert len(FAULTS) >= 15
    for name, fault in FAULTS.items():
        assert fault.name == name
        assert fault.expect in DESIGN_CATEGORIES, f"{name}: {fault.expect} is not a DESIGN.md category"
        assert fault.description and fault.proves


def test_targets_file_is_a_valid_gatewatch_config(lab):
    config = load_config(lab.targets_path)
    t = config.target("lab-api")
    assert t.url == f"http://127.0.0.1:{lab.edge_port}/api/v1/auth/demo-login" and t.method == "POST"
    assert t.headers["Host"] == "backend.lab.test"
    assert t.expect.status == [200, 401] and t.expect.body_contains == "detail"
    assert t.health.url == f"http://127.0.0.1:{lab.edge_port}/api/v1/health"
    assert t.health.expect_json == {"status": "healthy", "database": "connected"}
    h = t.host
    assert h.local and h.netns == lab.netns and h.service == "bandarupay-backend" and h.service_manager == "supervisor"
    assert h.supervisor_config == str(lab.paths.supervisord_conf)
    assert h.nginx_conf == str(lab.paths.nginx_conf) and Path(h.nginx_error_log).parent.exists()
    assert h.app_log == str(lab.paths.app_log) and h.database.port == 5432
    assert t.remediation.mode == "auto" and t.alerting.failure_threshold == 1


def test_backend_publishes_openapi_with_the_real_route(baseline):
    status, _, body = baseline.request("GET", "/openapi.json")
    assert status == 200
    assert "/api/v1/auth/demo-login" in json.loads(body)["paths"]


def test_up_again_is_idempotent(baseline):
    before = baseline.status()
    after = baseline.up()
    assert after["supervisord"]["pid"] == before["supervisord"]["pid"]
    assert after["edge"]["pid"] == before["edge"]["pid"]
    assert {n: p["pid"] for n, p in after["programs"].items()} == {n: p["pid"] for n, p in before["programs"].items()}


def test_status_reports_programs_edge_and_faults(baseline):
    s = baseline.status()
    assert {n: p["state"] for n, p in s["programs"].items()} == {
        "postgres": "RUNNING", "bandarupay-backend": "RUNNING", "nginx": "RUNNING", "stranger": "STOPPED",
        "dbhog": "STOPPED"}
    assert s["topology"]["name"] == "classic"
    assert s["netns"] == {"name": baseline.netns, "exists": True}
    assert s["edge"]["running"] and s["edge"]["mode"] == "cloudflare emulation"
    assert s["health"]["status"] == 200 and s["faults"] == []
    baseline.inject("endpoint_500")
    assert baseline.status()["faults"] == ["endpoint_500"]
    assert baseline.status()["toggles"] == ["raise_500"]


def test_full_heal_undoes_several_faults_at_once(baseline):
    lab = baseline
    # in an order where each fault still shows through the ones before it
    for name in ("wrong_route", "header_too_big", "firewall_drop", "crash_loop", "nginx_config_broken"):
        lab.inject(name)
    assert lab.firewall_rules() and lab.toggles.active() and not lab.healthy()
    lab.heal()
    assert lab.healthy()
    assert lab.firewall_rules() == [] and lab.toggles.active() == [] and lab.status()["faults"] == []
    assert lab.paths.nginx_conf.read_text() == lab_baseline_nginx(lab)
    assert lab.targets_path.read_text() == lab.targets_text()
    assert lab.target().url.endswith("/api/v1/auth/demo-login")


def lab_baseline_nginx(lab) -> str:
    from lab.render import nginx_conf

    return nginx_conf(lab.paths, topo=lab.topology)


def test_inject_unknown_fault_names_the_known_ones(baseline):
    with pytest.raises(LabError, match="unknown fault 'disk_full'; known: backend_stopped"):
        baseline.inject("disk_full")


def test_cli_status_and_inject_heal_against_the_session_lab(lab, capsys):
    assert gatewatch_main(["lab", "--dir", str(lab.paths.root), "heal"]) == 0
    assert "healed everything" in capsys.readouterr().out
    assert gatewatch_main(["lab", "--dir", str(lab.paths.root), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["netns"]["name"] == lab.netns and status["edge"]["listen"].endswith(f":{lab.edge_port}")
    assert gatewatch_main(["lab", "--dir", str(lab.paths.root), "inject", "nginx_stopped", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"injected": "nginx_stopped", "expect": "proxy_down"}
    assert gatewatch_main(["lab", "--dir", str(lab.paths.root), "status"]) == 1  # a fault is in
    assert "nginx STOPPED" in capsys.readouterr().out
    assert gatewatch_main(["lab", "--dir", str(lab.paths.root), "heal", "nginx_stopped"]) == 0
    assert lab.healthy()


def test_cli_faults_lists_the_catalogue(capsys):
    assert gatewatch_main(["lab", "faults", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(FAULTS)
    assert rows[0] == {"name": "backend_stopped", "expect": "backend_down",
                       "description": FAULTS["backend_stopped"].description,
                       "proves": FAULTS["backend_stopped"].proves,
                       "topologies": ["classic", "gunicorn-socket-mariadb", "bare-loop", "bare-plain"]}
    assert next(r for r in rows if r["name"] == "stale_socket")["topologies"] == [
        "gunicorn-socket-mariadb", "bare-plain"]


def test_cli_rejects_an_unknown_fault_with_usage_exit(capsys):
    with pytest.raises(SystemExit) as exc:
        gatewatch_main(["lab", "inject", "disk_full"])
    assert exc.value.code == 2
    assert "invalid choice: 'disk_full'" in capsys.readouterr().err


def test_without_root_it_says_so_and_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabPrerequisiteError, match="the lab needs root"):
        Lab(dir="/tmp/gatewatch-lab-never-made").check_prerequisites()
    assert gatewatch_main(["lab", "--dir", "/tmp/gatewatch-lab-never-made", "up"]) == 2
    assert "needs root" in capsys.readouterr().err
    assert not Path("/tmp/gatewatch-lab-never-made").exists()


def test_a_missing_server_is_named_with_its_package(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "nginx" else real_which(name, *a, **k))
    with pytest.raises(LabPrerequisiteError, match=r"nginx \(apt-get install nginx\)"):
        Lab(dir="/tmp/gatewatch-lab-never-made").check_prerequisites()


def test_bad_lab_settings_are_refused_with_the_field_named():
    with pytest.raises(LabError, match="netns must be"):
        Lab(dir="/tmp/gatewatch-lab-never-made", netns="Bad Name")
    with pytest.raises(LabError, match="edge_port must be from 1024 to 65535"):
        Lab(dir="/tmp/gatewatch-lab-never-made", edge_port=80)
    with pytest.raises(LabError, match="lab directory must be an absolute path"):
        Lab(dir="/tmp/a lab with spaces")


def test_down_removes_namespace_edge_and_every_process(lab):
    """A second, separate lab: up, down, and nothing of it is left."""
    root = Path(tempfile.mkdtemp(prefix="gatewatch-lab-down-", dir="/tmp"))
    root.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other = Lab(dir=root, netns=f"gwd{os.getpid() % 100000}", edge_port=port)
    try:
        status = other.up(wait_s=90)
        pids = [status["supervisord"]["pid"], status["edge"]["pid"]]
        pids += [p["pid"] for p in status["programs"].values() if p["pid"]]
        assert len(pids) == 5 and all(pids)
        other.down()
        assert not Path("/run/netns", other.netns).exists()
        assert not Path("/etc/netns", other.netns).exists()
        for pid in pids:
            assert not _alive(pid), f"pid {pid} survived lab down"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # the edge is gone
        assert other.status()["supervisord"]["running"] is False
        assert lab.healthy()  # the session's lab was not touched
    finally:
        other.down()
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
