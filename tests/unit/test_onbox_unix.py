"""A backend on a unix socket (issue 11): the port, local health, local endpoint and nginx checks all talk to the
socket (HTTP over AF_UNIX), a real nginx proxies to ``unix:PATH``, and the faults a socket brings are told apart:
healthy, stale socket file (nobody listens), hung (accepts, never answers), missing. Then a config edited on disk
and not reloaded: the running nginx's upstream (its error log) against the disk (nginx -T)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.nginxconf import nginx_conf, stop
from tests.unit.test_onbox_script import PY38, free_port, run_script, wait_listening

NGINX = "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(NGINX), reason="needs root and nginx")

UNIX_BACKEND = r'''
import http.server, json, os, socketserver, sys, time
path, mode = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if mode == "hang":
            time.sleep(120)
            return
        data = json.dumps({"status": "healthy", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
    def address_string(self):
        return "unix"
class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
Server(path, Handler).serve_forever()
'''



def wait_socket(path: Path, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not path.exists():
        time.sleep(0.05)
    assert path.exists(), f"no socket at {path}"


def start_backend(tmp_path: Path, sock: Path, mode: str, marker: str) -> subprocess.Popen:
    script = tmp_path / f"unix-backend-{mode}.py"
    script.write_text(UNIX_BACKEND)
    proc = subprocess.Popen([sys.executable, str(script), str(sock), mode, marker], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_socket(sock)
    return proc


def params_for(tmp_path: Path, sock: Path, marker: str, nginx_port: int, **extra) -> dict:
    return dict({"service_manager": "command", "process_match": marker, "backend_socket": str(sock),
                 "nginx_port": nginx_port, "nginx_conf": str(tmp_path / "nginx" / "nginx.conf"),
                 "nginx_prefix": str(tmp_path / "nginx"), "nginx_error_log": str(tmp_path / "nginx" / "error.log"),
                 "log_roots": [str(tmp_path)], "endpoint_path": "/api/x", "public_host": "api.example.com"}, **extra)


def write_site(tmp_path: Path, port: int, target: str) -> None:
    d = tmp_path / "nginx"
    site = f"""
    server {{
        listen 127.0.0.1:{port};
        server_name api.example.com;
        location / {{ proxy_pass {target}; proxy_read_timeout 2s; proxy_connect_timeout 2s; }}
    }}
"""
    (d / "nginx.conf").write_text(nginx_conf(d, site))


@needs_nginx
def test_unix_socket_backend_healthy_stale_hung_and_missing(tmp_path):
    marker = f"gwtest-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sock = run_dir / "app.sock"
    backend = start_backend(tmp_path, sock, "ok", marker)
    d = tmp_path / "nginx"
    (d / "t").mkdir(parents=True)
    port = free_port()
    write_site(tmp_path, port, f"http://unix:{sock}:")
    nginx = subprocess.Popen([NGINX, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        if PY38.exists():  # the oldest python the host may have: the socket checks there too
            code, old = run_script(params_for(tmp_path, sock, marker, port), python=str(PY38))[:2]
            assert code == 0 and old["meta"]["python"].startswith("3.8.")
            assert old["local_health"]["status"] == "ok" and old["port"]["value"]["listening"] is True
        code, report, _ = run_script(params_for(tmp_path, sock, marker, port))
        assert code == 0
        pv = report["port"]["value"]
        assert pv["kind"] == "unix" and pv["listening"] is True and pv["socket"]["accepting"] is True, pv
        assert pv["owned_by_service"] is True and pv["pid"] == backend.pid
        assert report["local_health"]["status"] == "ok" and report["local_health"]["value"]["connected_to"] == \
            f"unix:{sock}"
        ep = report["local_endpoint"]["value"]
        assert ep["direct"]["status"] == 200 and ep["via_nginx"]["status"] == 200, ep
        nv = report["nginx"]["value"]
        assert nv["matches_backend"] is True and nv["unix_sockets"] == [{"path": str(sock), "exists": True}]

        # Dead backend, socket file left behind: nobody listens on it.
        stop(backend)
        assert sock.exists()
        code, report, _ = run_script(params_for(tmp_path, sock, marker, port))
        pv = report["port"]["value"]
        assert pv["listening"] is False and pv["socket"]["exists"] and pv["socket"]["refused"], pv
        assert report["port"]["status"] == "fail" and "stale socket file" in " ".join(report["port"]["evidence"])
        assert report["local_health"]["value"]["refused"] is True
        assert report["local_endpoint"]["value"]["via_nginx"]["status"] == 502
        assert report["service"]["value"]["running"] is False

        # Hung: accepts, never answers.
        sock.unlink()
        backend = start_backend(tmp_path, sock, "hang", marker)
        code, report, _ = run_script(params_for(tmp_path, sock, marker, port))
        assert report["port"]["value"]["listening"] is True
        assert report["local_health"]["value"]["timed_out"] is True
        via = report["local_endpoint"]["value"]["via_nginx"]
        assert via["status"] == 504 or via["timed_out"], via
        stop(backend)

        # Missing: no file at all.
        sock.unlink()
        code, report, _ = run_script(params_for(tmp_path, sock, marker, port))
        assert report["port"]["value"]["socket"]["exists"] is False
        assert report["local_health"]["value"]["missing"] is True
        assert report["nginx"]["status"] == "fail"  # nginx proxies to a socket that does not exist
    finally:
        stop(backend)
        stop(nginx)


@needs_nginx
def test_nginx_proxying_to_a_tcp_port_does_not_match_a_socket_backend(tmp_path):
    marker = f"gwtest-{uuid.uuid4().hex[:8]}"
    sock = tmp_path / "app.sock"
    backend = start_backend(tmp_path, sock, "ok", marker)
    d = tmp_path / "nginx"
    (d / "t").mkdir(parents=True)
    port = free_port()
    write_site(tmp_path, port, f"http://127.0.0.1:{free_port()}")
    try:
        code, report, _ = run_script(params_for(tmp_path, sock, marker, port))
        assert report["nginx"]["value"]["matches_backend"] is False
    finally:
        stop(backend)


@needs_nginx
def test_a_config_edited_and_not_reloaded_is_seen_from_both_sides(tmp_path):
    """nginx still proxies to the old port (its error log says so); the file on disk names the new one."""
    old_port, new_port = free_port(), free_port()
    d = tmp_path / "nginx"
    (d / "t").mkdir(parents=True)
    port = free_port()
    write_site(tmp_path, port, f"http://127.0.0.1:{old_port}")
    nginx = subprocess.Popen([NGINX, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        time.sleep(1.1)  # the edit must be later than the workers' start by more than a second
        write_site(tmp_path, port, f"http://127.0.0.1:{new_port}")  # moved, never reloaded
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "Host: api.example.com", f"http://127.0.0.1:{port}/x"],
                       timeout=10)
        params = {"service_manager": "command", "process_match": "gwtest-none", "backend_port": new_port,
                  "nginx_port": port, "nginx_conf": str(d / "nginx.conf"), "nginx_prefix": str(d),
                  "nginx_error_log": str(d / "error.log"), "log_roots": [str(tmp_path)],
                  "public_host": "api.example.com"}
        code, report, _ = run_script(params)
    finally:
        stop(nginx)
    stale = report["nginx"]["value"]["stale_config"]
    assert stale["config_newer_than_master"] is True
    assert stale["running_upstreams"] == [f"127.0.0.1:{old_port}"]
    assert stale["disk_upstreams"] == [f"127.0.0.1:{new_port}"]
    assert stale["differs"] is True
    assert any(f"running nginx proxies to 127.0.0.1:{old_port}" in e for e in report["nginx"]["evidence"])
