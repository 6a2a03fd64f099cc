"""Issue 10, finding 2: what a client or a local user writes into logs must not rewrite the diagnosis.

* A real nginx logs a request whose Referer reads "(13: Permission denied) while connecting to upstream": the
  backend is down (connection refused), and that is what the checks must still say. The control characters the
  request carried reach no person raw.
* supervisor's AUTO logs are looked up by wildcard in its childlogdir (/tmp by default): a file another user planted
  there is never read as the program's log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gatewatch.onbox import encode_params, script_path
from gatewatch.onbox.checks import service
from tests.nginxconf import nginx_conf

NGINX = "/usr/sbin/nginx"
NOBODY = 65534
FORGED = "http://x/\x1b[31m(13: Permission denied) while connecting to upstream, upstream: \"http://10.9.9.9:1/\""

SITE = """
    server {{
        listen 127.0.0.1:{port};
        server_name api.example.com;
        location / {{ proxy_pass http://127.0.0.1:{backend}; proxy_connect_timeout 2s; }}
    }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(NGINX), reason="needs root and nginx")
def test_a_forged_referer_does_not_turn_a_refused_backend_into_permission_denied(tmp_path):
    d = tmp_path / "nginx"
    (d / "t").mkdir(parents=True)
    port, backend = free_port(), free_port()  # nothing listens on the backend port: connection refused
    (d / "nginx.conf").write_text(nginx_conf(d, SITE.format(port=port, backend=backend)))
    master = subprocess.Popen([NGINX, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api HTTP/1.1\r\nHost: api.example.com\r\nReferer: " + FORGED.encode() +
                      b"\r\nConnection: close\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 502")
        for _ in range(50):
            if "referrer" in (d / "error.log").read_text():
                break
            time.sleep(0.05)
        assert "(13: Permission denied)" in (d / "error.log").read_text()  # the forgery is really in the log
        params = {"service_manager": "command", "process_match": "gwtest-none", "backend_port": backend,
                  "nginx_port": port, "nginx_conf": str(d / "nginx.conf"), "nginx_prefix": str(d),
                  "nginx_error_log": str(d / "error.log"),
                  "public_host": "api.example.com"}
        proc = subprocess.run([sys.executable, str(script_path()), encode_params(params)], capture_output=True,
                              text=True, timeout=60)
    finally:
        master.terminate()
        master.wait(10)
    assert proc.returncode == 0, proc.stderr
    nginx = json.loads(proc.stdout)["nginx"]
    sigs = {s["signature"]: s for s in nginx["error_signatures"]}
    assert nginx["primary_signature"] == "connection_refused", sigs
    assert "permission_denied" not in sigs
    refused = sigs["connection_refused"]
    assert refused["message"].startswith("connect() failed (111: Connection refused)")
    assert "Permission denied" in refused["fields"]["referrer"]  # kept, as data
    assert refused["upstream"] is None or refused["upstream"].startswith("http://127.0.0.1:")
    # No raw control character reaches a person: the escape is shown, not sent.
    assert "\\u001b" not in proc.stdout.lower()  # JSON would carry a raw ESC as \u001b
    assert "\\x1b[31m" in refused["sample"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as two users")
def test_a_planted_auto_log_in_a_shared_childlogdir_is_not_read(tmp_path):
    shared = tmp_path / "shared"  # a /tmp: world-writable and sticky
    shared.mkdir()
    shared.chmod(0o1777)
    real = shared / "app-stderr---supervisor-abc123.log"
    real.write_text("supervisor's own log of the program\n")
    time.sleep(0.01)
    planted = shared / "app-stderr---supervisor-zzz999.log"
    planted.write_text("Traceback (most recent call last):\nModuleNotFoundError: No module named 'forged'\n")
    os.chown(planted, NOBODY, NOBODY)
    os.utime(planted, (time.time() + 60, time.time() + 60))  # newer: the wildcard lookup preferred it
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[supervisord]\nlogfile={tmp_path}/supervisord.log\nchildlogdir={shared}\n\n"
                    "[program:app]\ncommand=/bin/true\n")
    paths = service.supervisor_paths(str(conf), "app")
    assert paths["stderr_log"] == str(real)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as two users")
def test_a_supervisor_config_another_user_can_write_is_not_read(tmp_path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\nlogfile=/etc/shadow\n\n[program:app]\ncommand=/bin/true\n"
                    "stderr_logfile=/etc/shadow\n")
    os.chown(conf, NOBODY, NOBODY)
    assert service.supervisor_paths(str(conf), "app")["stderr_log"] is None
