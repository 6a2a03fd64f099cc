"""LocalRunner.run_remediation for real: subprocesses without a shell, the argv rebuilt from the catalogue (never
the caller's params), nginx -t run on the host right before touching nginx, and a fix verified over loopback HTTP."""

import http.server
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import urlopen

import pytest
import yaml

from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.remediation import execute, plan, story
from gatewatch.runner.local import LocalRunner
from gatewatch.store import SQLiteStore

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
GOOD_CONF = "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\nhttp { server { listen 127.0.0.1:18999; } }\n"


def lab(tmp_path: Path, conf: str = GOOD_CONF, **commands):
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "conf" / "nginx.conf").write_text(conf)
    host = {
        "local": True, "service": "app", "service_manager": "command", "nginx_bin": NGINX,
        "nginx_prefix": str(tmp_path), "nginx_conf": str(tmp_path / "conf" / "nginx.conf"),
        "allowed_programs": ["echo", "touch"],
        "commands": {"restart_backend": ["echo", "restarted", "{service}"],
                     "start_proxy": ["echo", "started", "{proxy_service}"], **commands},
    }
    doc = {"name": "local-api", "url": "http://127.0.0.1:1/", "host": host, "remediation": {"mode": "auto"}}
    return load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_start_proxy_runs_nginx_t_first_then_the_action(tmp_path):
    target = lab(tmp_path)
    result = LocalRunner().run_remediation(target.host, "start_proxy", {}, timeout_s=20)
    assert result.status == "Success", result
    assert result.stdout == "started nginx\n"


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_a_config_broken_since_the_facts_were_taken_stops_the_action(tmp_path):
    target = lab(tmp_path, conf="events {}\nhttp { server { listen 127.0.0.1:18999 } }\n")  # missing ';'
    result = LocalRunner().run_remediation(target.host, "start_proxy", {}, timeout_s=20)
    assert result.status == "Failed"
    assert result.error.startswith(f"refused: `{NGINX} -t -p {tmp_path}/ -c {tmp_path}/conf/nginx.conf` failed "
                                   "just before start_proxy")
    assert result.error.endswith("nothing was run")
    assert "started" not in result.stdout and "emerg" in result.stderr


def test_the_argv_is_rebuilt_from_the_catalogue_not_taken_from_params(tmp_path):
    target = lab(tmp_path)
    planted = tmp_path / "pwned"
    result = LocalRunner().run_remediation(target.host, "restart_backend", {"argv": ["touch", str(planted)]}, 10)
    assert (result.status, result.stdout) == ("Success", "restarted app\n")
    assert not planted.exists()


def test_an_action_the_host_cannot_do_is_an_error_result_not_a_crash(tmp_path):
    target = lab(tmp_path)
    result = LocalRunner().run_remediation(target.host, "reload_proxy", {}, 10)
    assert (result.status, result.error) == ("Error", "host.commands has no reload_proxy template "
                                                      "(service_manager: command)")


class _Backend(http.server.BaseHTTPRequestHandler):
    flag: Path

    def do_GET(self):  # noqa: N802 - http.server's name
        healthy = self.flag.exists()
        self.send_response(200 if healthy else 502)
        self.end_headers()
        self.wfile.write(b"ok" if healthy else b"bad gateway")

    def log_message(self, *args):
        pass


def test_a_real_fix_end_to_end_plan_run_reprobe_verified(tmp_path):
    """The 'restart' is a real subprocess (touch a flag file); the re-probe is real HTTP to loopback."""
    flag = tmp_path / "backend-restarted"
    handler = type("Backend", (_Backend,), {"flag": flag})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"

    def reprobe():
        try:
            with urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test server
                return resp.status == 200, {"status": resp.status}
        except OSError as exc:
            return False, {"error": str(exc)}

    try:
        assert reprobe()[0] is False
        target = lab(tmp_path, restart_backend=["touch", str(flag)])
        store, clock = SQLiteStore(tmp_path / "gw.db"), FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
        verdict = {"category": "backend_down", "remediation": "restart_backend", "evidence": []}
        d = plan(verdict, {}, target, store=store, clock=clock, incident_id="inc-e2e")
        assert d.allowed, d.reason
        out = execute(d, target, LocalRunner(), store=store, clock=clock, reprobe=reprobe, recheck=reprobe,
                      settle_s=2, timeout_s=10)
        assert out.result == "verified", out.message
        assert out.after["probe"] == {"ok": True, "evidence": {"status": 200}}
        kinds = [line.split()[1] for line in story(store, "inc-e2e")]
        assert kinds == ["considered", "allowed", "starting", "ran", "verified"]
        store.close()
    finally:
        server.shutdown()
        server.server_close()
