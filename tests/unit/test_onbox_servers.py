"""The on-box checks against a real nginx and a real supervisord, each with its own prefix in a tmp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.unit.test_onbox_script import PY38, Procs, free_port, run_script, wait_listening

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
SUPERVISORD = Path(sys.executable).with_name("supervisord")
SUPERVISORCTL = Path(sys.executable).with_name("supervisorctl")
# The script must behave the same on the oldest python it supports: run the real scenarios on both when we can.
PYTHONS = [sys.executable] + ([str(PY38)] if PY38.exists() else [])

NGINX_CONF = """
worker_processes 1;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    upstream backend_app {{
        server 127.0.0.1:{backend};
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name api.example.com;
        error_log {d}/site-error.log;
        location / {{
            proxy_pass http://backend_app;
            proxy_buffer_size 8k;
            proxy_connect_timeout 2s;
        }}
        location /sock/ {{
            proxy_pass http://unix:{d}/missing.sock:/;
        }}
    }}
}}
"""


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def start_nginx(d: Path, backend: int, port: int, procs: Procs) -> subprocess.Popen:
    (d / "tmp").mkdir(parents=True)
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, backend=backend, port=port))
    proc = subprocess.Popen([NGINX, "-p", f"{d}/", "-c", str(conf), "-g", f"daemon off; pid {d}/nginx.pid;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.started.append(proc)
    wait_listening(port)
    return proc


@pytest.mark.skipif(NGINX is None or os.geteuid() != 0, reason="needs nginx (apt-get install nginx) and root")
def test_real_nginx_config_upstreams_and_error_log(tmp_path, procs):
    backend_port, nginx_port, marker = free_port(), free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    backend = procs.backend(backend_port, "ok", marker)
    d = tmp_path / "nginx"
    master = start_nginx(d, backend_port, nginx_port, procs)
    params = {
        "service_manager": "command", "process_match": marker, "backend_port": backend_port, "nginx_port": nginx_port,
        "nginx_conf": str(d / "nginx.conf"), "nginx_prefix": str(d), "nginx_error_log": str(d / "error.log"),
        "endpoint_path": "/api/v1/x", "public_host": "api.example.com",
    }
    for python in PYTHONS:
        check_healthy_nginx_report(run_script(params, python=python), master, backend_port, d)

    # The backend dies: nginx answers 502 and logs the refusal; the checks read it back.
    backend.kill()
    backend.wait()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{nginx_port}/api/v1/x", timeout=5)
    assert err.value.code == 502
    # An edited config that the running workers have not loaded.
    future = time.time() + 60
    os.utime(d / "nginx.conf", (future, future))
    for python in PYTHONS:
        code, report, _ = run_script(params, python=python)
        ng = report["nginx"]
        # The server block logs to its own file: found through the config and read first (the site that serves
        # api.example.com on this port), then the configured main log.
        assert ng["value"]["error_log"]["paths"] == [str(d / "site-error.log"), str(d / "error.log")]
        assert ng["primary_signature"] == "connection_refused"
        assert ng["error_signatures"][0]["upstream"].startswith(f"http://127.0.0.1:{backend_port}/")
        assert ng["value"]["config_newer_than_master"] is True
        assert report["local_endpoint"]["value"]["via_nginx"]["status"] == 502
        assert report["local_health"]["value"]["refused"] is True


def check_healthy_nginx_report(run, master, backend_port, d):
    code, report, _ = run
    assert code == 0
    ng = report["nginx"]
    v = ng["value"]
    assert v["running"] is True and v["master_pid"] == master.pid and v["workers"] == 1
    assert v["config_test_ok"] is True and "syntax is ok" in v["config_test_output"]
    assert v["upstreams"] == [{"name": "backend_app", "servers": [f"127.0.0.1:{backend_port}"]}]
    assert v["proxy_pass"] == ["http://backend_app", f"http://unix:{d}/missing.sock:/"]
    assert {"host": "127.0.0.1", "port": backend_port, "unix": None} in v["targets"]
    assert v["matches_backend"] is True
    assert v["unix_sockets"] == [{"path": f"{d}/missing.sock", "exists": False}]
    assert v["proxy_buffer_size"] == "8k"
    assert v["config_newer_than_master"] is False
    assert str(d / "nginx.conf") in v["config_files"]
    assert ng["status"] == "fail"  # the unix socket one location proxies to is missing
    via = report["local_endpoint"]["value"]["via_nginx"]
    assert via["status"] == 200 and via["json"] == {"path": "/api/v1/x"}
    assert report["local_endpoint"]["status"] == "ok"
    assert report["resources"]["value"]["fds"]["nginx"]["open"] > 0


@pytest.mark.skipif(NGINX is None, reason="needs nginx (apt-get install nginx)")
def test_nginx_config_pointing_elsewhere_is_a_mismatch(tmp_path):
    backend_port = free_port()
    d = tmp_path / "nginx2"
    (d / "tmp").mkdir(parents=True)
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, backend=backend_port + 1, port=free_port()).replace(
        "location /sock/ {", f"location /other/ {{\n            proxy_pass http://localhost:{backend_port + 2};\n"
        "        }\n        location /sock/ {"))
    params = {"backend_port": backend_port, "nginx_conf": str(conf), "nginx_prefix": str(d),
              "nginx_error_log": str(d / "error.log"), "service_manager": "command", "process_match": "gwtest-none"}
    code, report, _ = run_script(params)
    v = report["nginx"]["value"]
    assert v["running"] is False and v["config_test_ok"] is True
    assert v["matches_backend"] is False
    assert {"host": "localhost", "port": backend_port + 2, "unix": None} in v["targets"]
    assert "127.0.0.1" in v["localhost_resolves_to"]


SUPERVISOR_CONF = """
[unix_http_server]
file={d}/supervisor.sock
[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{d}/supervisor.sock
[program:good]
command={python} {backend} {port} ok {marker}
stderr_logfile={d}/good.err.log
startsecs=1
[program:slow]
command={python} {backend} {slow_port} ok {marker}-slow
startsecs=60
[program:bad]
command={python} -c "import gatewatch_no_such_module_xyz"
stderr_logfile=%(here)s/%(program_name)s.err.log
startsecs=1
startretries=1
"""


def supervisor_states(conf: Path) -> dict[str, str]:
    out = subprocess.run([str(SUPERVISORCTL), "-c", str(conf), "status"], capture_output=True, text=True,
                         timeout=10).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) > 1}


@pytest.mark.skipif(not SUPERVISORD.exists(), reason="needs supervisor in the venv (pip install supervisor)")
def test_supervisor_running_program_and_crash_loop(tmp_path, procs):
    from tests.unit.test_onbox_script import BACKEND

    d = tmp_path / "sup"
    d.mkdir()
    backend_py = d / "backend.py"
    backend_py.write_text(BACKEND)
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    conf = d / "supervisord.conf"
    slow_port = free_port()
    conf.write_text(SUPERVISOR_CONF.format(d=d, python=sys.executable, backend=backend_py, port=port, marker=marker,
                                           slow_port=slow_port))
    supervisord = subprocess.Popen([str(SUPERVISORD), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 20
        states: dict[str, str] = {}
        while time.monotonic() < end:
            states = supervisor_states(conf) if (d / "supervisor.sock").exists() else {}
            if states.get("good") == "RUNNING" and states.get("bad") == "FATAL":
                break
            time.sleep(0.2)
        assert states == {"good": "RUNNING", "bad": "FATAL", "slow": "STARTING"}
        wait_listening(port)
        wait_listening(slow_port)
        base = {"service_manager": "supervisor", "supervisor_config": str(conf), "backend_port": port,
                "nginx_conf": str(d / "none.conf"), "nginx_error_log": str(d / "error.log")}

        code, report, _ = run_script(dict(base, service="good"))
        svc = report["service"]["value"]
        assert report["service"]["status"] == "ok"
        assert svc["state"] == "RUNNING" and svc["running"] is True and svc["crash_loop"] is False
        assert report["port"]["value"]["owned_by_service"] is True
        assert report["port"]["value"]["pid"] == svc["pid"]

        # Killed with SIGKILL (as the OOM killer does): supervisord logs it and restarts the program.
        os.kill(svc["pid"], 9)
        end = time.monotonic() + 10
        while time.monotonic() < end and "exited: good (terminated by SIGKILL" not in (
                d / "supervisord.log").read_text():
            time.sleep(0.1)
        code, report, _ = run_script(dict(base, service="good"))
        svc2 = report["service"]["value"]
        assert svc2["restarts_recent"] == 1 and len(svc2["sigkill_exits_at"]) == 1
        assert abs(svc2["sigkill_exits_at"][0] - time.time()) < 15

        # Still STARTING (startsecs not reached) but already serving: its port is its own, not a conflict.
        code, report, _ = run_script(dict(base, service="slow", backend_port=slow_port))
        svc = report["service"]["value"]
        assert svc["state"] == "STARTING" and svc["running"] is False and svc["pid"]
        assert report["port"]["value"]["owned_by_service"] is True

        env = dict(os.environ, PATH=f"{SUPERVISORCTL.parent}:{os.environ.get('PATH', '')}")
        for python in PYTHONS:
            code, report, _ = run_script(dict(base, service="bad"), python=python, env=env)
            svc = report["service"]["value"]
            assert report["service"]["status"] == "fail"
            assert svc["state"] == "FATAL" and svc["running"] is False and svc["crash_loop"] is True
            assert svc["restarts_recent"] >= 1
            app = report["app_log"]["value"]
            assert app["source"] == f"{d}/bad.err.log"
            assert app["module_not_found"] is True
            assert app["last_exception"]["type"] == "ModuleNotFoundError"
            assert "gatewatch_no_such_module_xyz" in app["last_exception"]["message"]
            # The good program's port is held by a process that is not "bad"'s.
            assert report["port"]["value"]["owned_by_service"] is False
    finally:
        supervisord.terminate()
        try:
            supervisord.wait(10)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()
