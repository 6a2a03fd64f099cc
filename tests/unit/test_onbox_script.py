"""The on-box checks script run for real (as a subprocess, as on a host) against servers these tests start on
loopback: a backend that is healthy, sick, hung, or whose port another process holds; huge logs; no tools."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gatewatch.onbox import CHECK_NAMES, encode_params, script_path

PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python3")
CHECK_KEYS = {"status", "value", "evidence", "error"}

BACKEND = r'''
import http.server, json, socketserver, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if mode == "hang":
            time.sleep(120)
            return
        if self.path == "/health":
            code = 200 if mode == "ok" else 503
            body = {"status": "healthy" if mode == "ok" else "unhealthy",
                    "database": "connected" if mode == "ok" else "disconnected"}
        else:
            code, body = 200, {"path": self.path}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_POST = do_GET
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", port), Handler).serve_forever()
'''

HOLDER = r'''
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
time.sleep(120)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


class Procs:
    """Processes a test starts; all of them are killed at the end (only these, by their own handles)."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []

    def python(self, code: str, *args: str) -> subprocess.Popen:
        script = self.tmp_path / f"prog-{len(self.started)}.py"
        script.write_text(code)
        proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.started.append(proc)
        return proc

    def backend(self, port: int, mode: str, marker: str) -> subprocess.Popen:
        proc = self.python(BACKEND, str(port), mode, marker)
        wait_listening(port)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()  # graceful: an nginx master takes its workers with it (SIGKILL orphans them)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def base_params(tmp_path: Path, port: int, marker: str, **extra) -> dict:
    params = {
        "service_manager": "command", "process_match": marker, "backend_host": "127.0.0.1", "backend_port": port,
        "health_path": "/health", "nginx_port": free_port(), "nginx_conf": str(tmp_path / "no-nginx" / "nginx.conf"),
        "nginx_error_log": str(tmp_path / "error.log"), "log_window_minutes": 15, "endpoint_path": "/api/v1/x?y=1",
        "endpoint_method": "GET", "public_host": "api.example.com", "log_roots": [str(tmp_path)],
    }
    params.update(extra)
    return params


def run_script(params, python: str = sys.executable, env: dict | None = None, raw_arg: str | None = None):
    arg = raw_arg if raw_arg is not None else encode_params(params)
    start = time.monotonic()
    proc = subprocess.run([python, str(script_path()), arg], capture_output=True, text=True, timeout=30, env=env)
    elapsed = time.monotonic() - start
    assert len(proc.stdout) < 24_000, len(proc.stdout)
    return proc.returncode, json.loads(proc.stdout), elapsed


def assert_report_shape(report: dict) -> None:
    assert report["schema"] == 1
    assert {"host", "collected_at", "duration_ms", "truncated", "python"} <= set(report["meta"])
    for name in CHECK_NAMES:
        assert CHECK_KEYS <= set(report[name]), name
        assert report[name]["status"] in ("ok", "fail", "unknown"), name
    assert "error_signatures" in report["nginx"] and "primary_signature" in report["nginx"]


@contextlib.contextmanager
def password_asking_database():
    """A listening "database" that answers a PostgreSQL StartupMessage as md5 auth does: up, with a free slot."""
    def serve(db):
        while True:
            try:
                conn, _ = db.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"R" + struct.pack("!ii", 12, 5) + b"salt")

    with socket.socket() as db:
        db.bind(("127.0.0.1", 0))
        db.listen(4)
        threading.Thread(target=serve, args=(db,), daemon=True).start()
        yield db.getsockname()[1]


def nginx_line(when: datetime, message: str) -> str:
    return (f"{when:%Y/%m/%d %H:%M:%S} [error] 1234#1234: *5 {message}, client: 127.0.0.1, server: _, "
            f'request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:8000/x", host: "api.example.com"\n')


def test_healthy_backend(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    backend = procs.backend(port, "ok", marker)
    with password_asking_database() as db_port:
        code, report, _ = run_script(base_params(tmp_path, port, marker,
                                                 database={"host": "127.0.0.1", "port": db_port}))
    assert code == 0
    assert_report_shape(report)
    svc = report["service"]
    assert svc["status"] == "ok" and svc["value"]["running"] is True and svc["value"]["pid"] == backend.pid
    port_v = report["port"]["value"]
    assert report["port"]["status"] == "ok"
    assert port_v["listening"] and port_v["addresses"] == [f"127.0.0.1:{port}"] and port_v["ipv4"]
    assert not port_v["ipv6"]
    assert port_v["pid"] == backend.pid and port_v["owned_by_service"] is True
    health = report["local_health"]
    assert health["status"] == "ok" and health["value"]["status"] == 200
    assert health["value"]["json"] == {"status": "healthy", "database": "connected"}
    direct = report["local_endpoint"]["value"]["direct"]
    assert direct["status"] == 200 and direct["json"] == {"path": "/api/v1/x?y=1"}
    assert report["local_endpoint"]["value"]["via_nginx"]["refused"] is True
    assert report["local_endpoint"]["status"] == "fail"
    assert report["nginx"]["value"]["running"] is False and report["nginx"]["status"] == "fail"
    db = report["database"]
    assert db["status"] == "ok" and db["value"]["from_health"] == "connected"
    assert db["value"]["tcp"]["reachable"] is True
    res = report["resources"]["value"]
    assert res["mem_total_mb"] > 0 and res["cores"] >= 1 and res["disks"][0]["path"] == "/"
    assert res["fds"]["backend"]["pid"] == backend.pid and res["fds"]["backend"]["open"] > 0


def test_database_disconnected_and_unreachable(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    procs.backend(port, "dbdown", marker)
    code, report, _ = run_script(base_params(tmp_path, port, marker,
                                             database={"host": "127.0.0.1", "port": free_port()}))
    assert code == 0
    assert report["local_health"]["status"] == "fail" and report["local_health"]["value"]["status"] == 503
    db = report["database"]
    assert db["status"] == "fail"
    assert db["value"]["from_health"] == "disconnected"
    assert db["value"]["tcp"]["reachable"] is False and "refused" in db["value"]["tcp"]["error"].lower()


def test_hung_backend_times_out_and_the_run_stays_under_ten_seconds(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    procs.backend(port, "hang", marker)
    code, report, elapsed = run_script(base_params(tmp_path, port, marker))
    assert code == 0
    health = report["local_health"]["value"]
    assert health["timed_out"] is True and health["status"] is None and health["refused"] is False
    assert report["local_health"]["status"] == "fail"
    assert report["local_endpoint"]["value"]["direct"]["timed_out"] is True
    assert report["service"]["status"] == "ok" and report["port"]["status"] == "ok"
    assert elapsed < 10.0
    assert report["meta"]["duration_ms"] < 10_000


def test_port_held_by_another_process_is_not_owned_by_the_service(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    service = procs.backend(free_port(), "ok", marker)  # the service runs, but on another port
    holder = procs.python(HOLDER, str(port))
    wait_listening(port)
    code, report, _ = run_script(base_params(tmp_path, port, marker))
    assert code == 0
    assert report["service"]["value"]["pid"] == service.pid
    port_v = report["port"]["value"]
    assert port_v["listening"] is True and port_v["pid"] == holder.pid
    assert port_v["owned_by_service"] is False
    assert report["port"]["status"] == "fail"
    assert any("not by the service" in e for e in report["port"]["evidence"])


def test_service_not_running_and_nothing_listening(tmp_path):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    code, report, _ = run_script(base_params(tmp_path, port, marker))
    assert code == 0
    assert report["service"]["status"] == "fail" and report["service"]["value"]["running"] is False
    assert report["port"]["status"] == "fail" and report["port"]["value"]["listening"] is False
    assert report["local_health"]["value"]["refused"] is True


def test_error_log_window_and_primary_signature(tmp_path):
    now = datetime.now().replace(microsecond=0)
    log = tmp_path / "error.log"
    log.write_text(
        nginx_line(now - timedelta(minutes=40), "upstream timed out (110: Connection timed out) while reading "
                   "response header from upstream")
        + nginx_line(now - timedelta(minutes=2), "connect() failed (111: Connection refused) while connecting to "
                     "upstream")
        + nginx_line(now - timedelta(minutes=2), "no live upstreams while connecting to upstream")
        + nginx_line(now - timedelta(minutes=1), "no live upstreams while connecting to upstream")
    )
    code, report, _ = run_script(base_params(tmp_path, free_port(), "gwtest-nothing", nginx_error_log=str(log)))
    assert code == 0
    nginx = report["nginx"]
    assert nginx["primary_signature"] == "connection_refused"
    assert [(s["signature"], s["count"]) for s in nginx["error_signatures"]] == [
        ("connection_refused", 1), ("no_live_upstreams", 2)]
    assert nginx["value"]["error_log"]["lines_in_window"] == 3


def test_huge_logs_stay_bounded_and_fast(tmp_path):
    now = datetime.now().replace(microsecond=0)
    log, app_log = tmp_path / "error.log", tmp_path / "app.log"
    size = 100 * 1024 * 1024
    lines = "".join(nginx_line(now - timedelta(seconds=30), m) for m in (
        "connect() failed (111: Connection refused) while connecting to upstream",
        "upstream prematurely closed connection while reading response header from upstream",
        "recv() failed (104: Connection reset by peer) while reading response header from upstream",
        'open() "/srv/' + "x" * 3000 + '" failed (2: No such file or directory)'))
    block = (lines * (4 * 1024 * 1024 // len(lines))).encode()
    for path, tail in ((log, block), (app_log, ("Traceback (most recent call last):\n" + "  File 'x'\n" * 50
                                                + "OSError: [Errno 98] Address already in use\n") * 2000)):
        with open(path, "wb") as f:
            f.truncate(size - len(tail))  # sparse: 100 MB on paper, written in milliseconds
            f.seek(size - len(tail))
            f.write(tail if isinstance(tail, bytes) else tail.encode())
        assert path.stat().st_size == size
    code, report, elapsed = run_script(base_params(tmp_path, free_port(), "gwtest-nothing", nginx_error_log=str(log),
                                                   app_log=str(app_log)))
    assert code == 0
    assert_report_shape(report)
    sigs = {s["signature"]: s["count"] for s in report["nginx"]["error_signatures"]}
    assert set(sigs) == {"connection_refused", "upstream_closed", "connection_reset", "other"}
    assert sigs["connection_refused"] > 100
    assert report["nginx"]["primary_signature"] == "connection_refused"
    assert report["app_log"]["value"]["address_in_use"] is True
    assert report["app_log"]["value"]["last_exception"]["type"] == "OSError"
    assert elapsed < 10.0


def test_missing_tools_fall_back_to_proc(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    backend = procs.backend(port, "ok", marker)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    code, report, _ = run_script(base_params(tmp_path, port, marker), python=python, env={"PATH": str(empty)})
    assert code == 0
    assert_report_shape(report)
    port_v = report["port"]["value"]
    assert port_v["source"] == "/proc/net/tcp"
    assert port_v["listening"] and port_v["pid"] == backend.pid and port_v["owned_by_service"] is True
    assert report["firewall"]["status"] == "unknown" and "not found" in report["firewall"]["error"]
    assert report["nginx"]["value"]["config_test_ok"] is None
    assert "nginx not found" in report["nginx"]["error"]


@pytest.mark.skipif(not PY38.exists(), reason=f"python 3.8 interpreter not installed at {PY38}")
def test_runs_on_python_3_8(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    backend = procs.backend(port, "ok", marker)
    code, report, _ = run_script(base_params(tmp_path, port, marker), python=str(PY38))
    assert code == 0
    assert_report_shape(report)
    assert report["meta"]["python"].startswith("3.8.")
    assert report["service"]["value"]["pid"] == backend.pid
    assert report["port"]["value"]["owned_by_service"] is True
    assert report["local_health"]["value"]["status"] == 200
    unknown_by_crash = [n for n in CHECK_NAMES if (report[n]["error"] or "").startswith("check raised")]
    assert unknown_by_crash == []


def test_plain_json_argument_is_accepted(tmp_path):
    params = base_params(tmp_path, free_port(), "gwtest-nothing")
    code, report, _ = run_script(None, raw_arg=json.dumps(params))
    assert code == 0
    assert_report_shape(report)


@pytest.mark.parametrize("arg, field", [
    ('{"backend_port": "80; rm -rf /"}', "backend_port"),
    ('{"backend_port": 70000}', "backend_port"),
    ('{"service": "-x"}', "service"),
    ('{"nginx_error_log": "/var/log/../../etc/shadow"}', "nginx_error_log"),
    ('{"process_match": "a;b"}', "process_match"),
    ('{"backend_host": "example.com"}', "backend_host"),
    ('{"surprise": 1}', "surprise"),
    ('{"service_manager": "supervisor"}', "service"),
    ("b64:!!!", "(argument)"),
    ("[1, 2]", "(argument)"),
])
def test_bad_params_give_an_error_document_and_exit_2(arg, field):
    code, doc, _ = run_script(None, raw_arg=arg)
    assert code == 2
    assert doc["field"] == field
    assert field in doc["error"] or field == "(argument)"
    assert "service" not in doc


def test_no_argument_is_an_error_document():
    proc = subprocess.run([sys.executable, str(script_path())], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["field"] == "(argument)"


V6_HOLDER = r'''
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::1", int(sys.argv[1])))
s.listen(8)
time.sleep(120)
'''


def test_backend_on_ipv6_loopback_only_does_not_accept_127_0_0_1(tmp_path, procs):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    holder = procs.python(V6_HOLDER, str(port), marker)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("::1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    code, report, _ = run_script(base_params(tmp_path, port, marker))
    port_v = report["port"]["value"]
    assert port_v["addresses"] == [f"[::1]:{port}"]
    assert port_v["ipv6"] is True and port_v["ipv4"] is False
    assert port_v["accepts_backend_host"] is False and port_v["owned_by_service"] is True
    assert port_v["pid"] == holder.pid
    assert report["port"]["status"] == "fail"
    assert report["local_health"]["value"]["refused"] is True


FD_HOG = r'''
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
files = []
try:
    while True:
        files.append(open("/dev/null"))
except OSError:
    pass
files.pop().close()
print("full", flush=True)
time.sleep(120)
'''


def test_backend_out_of_file_descriptors(tmp_path, procs):
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    hog = procs.python(FD_HOG, str(port), marker)
    wait_listening(port)
    code, report, _ = run_script(base_params(tmp_path, port, marker))
    res = report["resources"]
    assert res["value"]["fds"]["backend"]["pid"] == hog.pid
    assert res["value"]["fds"]["backend"]["limit"] == 64
    assert res["value"]["fds"]["backend"]["open"] >= 61
    assert res["value"]["fd_exhausted"] is True and res["status"] == "fail"
    assert any("file descriptors" in e for e in res["evidence"])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare (util-linux)")
def test_full_disk_in_a_private_mount_namespace(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    params = base_params(tmp_path, free_port(), "gwtest-none", extra_paths=[str(full)])
    # The tmpfs exists only inside the private mount namespace of this one command: the host never sees it.
    fill = ('mount -t tmpfs -o size=1m none "$1" && (head -c 2000000 /dev/zero > "$1/fill" || true) && '
            'exec "$2" "$3" "$4"')
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", fill, "sh", str(full),
                           sys.executable, str(script_path()), encode_params(params)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)["resources"]
    disk = [d for d in res["value"]["disks"] if d["path"] == str(full)]
    assert disk and disk[0]["used_pct"] >= 98 and disk[0]["full"] is True
    assert res["value"]["disk_full"] is True and res["status"] == "fail"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to drop to nobody")
def test_without_permission_checks_say_unknown_with_the_reason(tmp_path, procs):
    probe = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-r", str(script_path())])
    if probe.returncode != 0:
        pytest.skip("the checkout is not readable by nobody")
    port, marker = free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    procs.backend(port, "ok", marker)  # runs as root: nobody may not look inside it
    params = dict(base_params(tmp_path, port, marker), nginx_error_log="/root/gatewatch-no-access/error.log")
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", str(script_path()),
                           encode_params(params)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert_report_shape(report)
    assert report["firewall"]["status"] == "unknown" and "root" in report["firewall"]["error"]
    assert report["port"]["value"]["listening"] is True and report["port"]["value"]["owned_by_service"] is None
    assert "Permission denied" in report["resources"]["error"]
    assert report["nginx"]["value"]["error_log"]["readable"] is False
    assert report["local_health"]["status"] == "ok"
    assert not [n for n in CHECK_NAMES if (report[n]["error"] or "").startswith("check raised")]


# systemd is not PID 1 on these machines, so systemctl/journalctl cannot answer. These stand-ins print what a
# unit in Restart=always crash-looping prints (the restart counter grows on every call), so the parsing and the
# crash-loop logic of the systemd path still run for real in the script.
FAKE_SYSTEMCTL = """#!/bin/sh
n=$(cat "{counter}" 2>/dev/null || echo 3); n=$((n+1)); echo $n > "{counter}"
[ "$1" = show ] || exit 1
echo ActiveState=activating
echo SubState=auto-restart
echo Result=exit-code
echo NRestarts=$n
echo MainPID=0
echo ExecMainStartTimestamp=
"""
FAKE_JOURNALCTL = """#!/bin/sh
echo 'Traceback (most recent call last):'
echo '  File "/srv/app/main.py", line 1, in <module>'
echo "ModuleNotFoundError: No module named 'fastapi'"
"""


def test_systemd_unit_in_a_restart_loop(tmp_path, procs):
    port = free_port()
    procs.python(HOLDER, str(port))  # a leftover process keeps the port: why the unit cannot start
    wait_listening(port)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL.format(counter=tmp_path / "n")), ("journalctl", FAKE_JOURNALCTL)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    params = base_params(tmp_path, port, "gwtest-none", service_manager="systemd", service="app.service",
                         process_match=None)
    code, report, _ = run_script(params, env=dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}"))
    svc = report["service"]
    assert svc["status"] == "fail"
    assert svc["value"]["state"] == "activating/auto-restart" and svc["value"]["running"] is False
    assert svc["value"]["crash_loop"] is True and svc["value"]["restarts_recent"] == 1
    assert svc["value"]["restarts_total"] == 4
    app = report["app_log"]["value"]
    assert app["source"] == "journalctl -u app.service" and app["module_not_found"] is True
    assert app["last_exception"]["message"] == "No module named 'fastapi'"
    # Waiting to restart (no process at all) while something else holds the port: a port conflict.
    assert report["port"]["value"]["owned_by_service"] is False
