"""restart_backend against a real supervisord on loopback: the backend is stopped, gatewatch plans, restarts it
through supervisorctl (LocalRunner, no shell), re-probes over HTTP and records a verified fix."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
import yaml

from gatewatch.clock import Clock
from gatewatch.config import load_config_text
from gatewatch.remediation import execute, plan, story
from gatewatch.runner.local import LocalRunner
from gatewatch.store import SQLiteStore

BIN = Path(sys.executable).parent
SUPERVISORD = shutil.which("supervisord", path=str(BIN)) or shutil.which("supervisord")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback test server
            return resp.status
    except OSError:
        return None


def _wait(predicate, deadline_s: float = 15.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture()
def supervised(tmp_path, monkeypatch):
    if not SUPERVISORD:
        pytest.skip("supervisord is not installed")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # supervisorctl next to python
    port = _free_port()
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""
[unix_http_server]
file={tmp_path}/supervisor.sock
[supervisord]
nodaemon=true
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock
[program:backend]
command={sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {tmp_path}
startsecs=1
stopsignal=TERM
""")
    proc = subprocess.Popen([SUPERVISORD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        assert _wait(lambda: _get(url) == 200), "supervisord did not start the backend"
        yield conf, url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_restart_backend_through_a_real_supervisord(supervised, tmp_path):
    conf, url = supervised
    ctl = ["supervisorctl", "-c", str(conf)]
    subprocess.run([*ctl, "stop", "backend"], check=True, capture_output=True, timeout=30)
    assert _get(url) is None  # the fault: backend down

    doc = {"name": "sup-api", "url": url, "remediation": {"mode": "auto"},
           "host": {"local": True, "service": "backend", "service_manager": "supervisor",
                    "supervisor_config": str(conf)}}
    target = load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]
    store, clock = SQLiteStore(tmp_path / "gw.db"), Clock()
    verdict = {"category": "backend_down", "remediation": "restart_backend", "evidence": []}
    d = plan(verdict, {}, target, store=store, clock=clock, incident_id="inc-sup")
    assert d.allowed, d.reason

    def reprobe():
        status = _get(url)
        return status == 200, {"status": status}

    out = execute(d, target, LocalRunner(), store=store, clock=clock, reprobe=reprobe, recheck=reprobe,
                  settle_s=0.5, timeout_s=30)
    assert out.result == "verified", (out.message, out.run)
    assert "backend: started" in out.run["stdout"]
    status = subprocess.run([*ctl, "status", "backend"], capture_output=True, text=True, timeout=30).stdout
    assert "RUNNING" in status
    kinds = [line.split()[1] for line in story(store, "inc-sup")]
    assert kinds == ["considered", "allowed", "starting", "ran", "verified"]
    store.close()
