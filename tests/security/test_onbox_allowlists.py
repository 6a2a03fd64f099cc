"""Issue 10, findings 5 and 7, on the host: whoever writes the targets config (or a file a non-root user can write)
does not choose what the on-box checks execute or read as root; patterns fullmatch; JSON is bounded.

Each test runs the real zipapp as a subprocess, as SSM does, with real files owned by root or by nobody.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from gatewatch.aws import ssm_documents
from gatewatch.onbox import encode_params, script_path

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
has_nginx = pytest.mark.skipif(not os.path.exists("/usr/sbin/nginx"), reason="needs nginx")


def run(params: dict, raw: str | None = None) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, str(script_path()), raw if raw is not None else encode_params(params)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout)


def base(**extra) -> dict:
    return dict({"service_manager": "command", "process_match": "gwtest-none", "backend_port": 9, "nginx_port": 9,
                 "nginx_error_log": "/var/log/nginx/gatewatch-test-none.log"}, **extra)


def test_nginx_bin_outside_the_fixed_locations_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran-as-root"
    fake = tmp_path / "nginx"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake.chmod(0o755)
    code, doc = run(base(nginx_bin=str(fake)))
    assert code == 2 and doc["field"] == "nginx_bin", doc
    assert not marker.exists()


def test_the_documents_and_the_script_share_one_nginx_allow_list():
    from gatewatch import hostpaths
    from gatewatch.onbox.checks import allowlist

    pattern = ssm_documents.remediation_document()["parameters"]["NginxBin"]["allowedPattern"]
    assert pattern == hostpaths.nginx_bin_pattern()
    assert allowlist.NGINX_BINARIES is hostpaths.NGINX_BINARIES  # the on-box script reads the same list
    for good in ("nginx",) + allowlist.NGINX_BIN_PATHS:
        assert re.fullmatch(pattern[1:-1], good)
    for bad in ("/tmp/nginx", "/usr/sbin/nginx -g x", "nginx2", "/usr/sbin/../../tmp/nginx"):
        assert not re.fullmatch(pattern[1:-1], bad)
    script = "\n".join(ssm_documents.remediation_document()["mainSteps"][0]["inputs"]["runCommand"])
    assert "|".join(allowlist.NGINX_BIN_PATHS) in script


@root_only
@has_nginx
@pytest.mark.parametrize("how", ["file owned by nobody", "directory writable by all", "symlink in nobody's dir",
                                 "include from a world-writable dir"])
def test_a_config_a_non_root_user_can_write_is_never_tested_as_root(tmp_path, how):
    marker = tmp_path / "opened-by-nginx-t.log"
    text = f"error_log {marker};\npid {tmp_path}/nginx.pid;\nevents {{}}\n"
    conf = tmp_path / "nginx.conf"
    if how == "file owned by nobody":
        conf.write_text(text)
        os.chown(conf, NOBODY, NOBODY)
    elif how == "directory writable by all":
        open_dir = tmp_path / "open"
        open_dir.mkdir()
        open_dir.chmod(0o777)
        conf = open_dir / "nginx.conf"
        conf.write_text(text)
    elif how == "symlink in nobody's dir":
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        real = tmp_path / "real.conf"
        real.write_text(text)
        (theirs / "nginx.conf").symlink_to(real)
        os.chown(theirs, NOBODY, NOBODY)
        conf = theirs / "nginx.conf"
    else:
        drop = tmp_path / "drop"
        drop.mkdir()
        drop.chmod(0o1777)
        (drop / "x.conf").write_text("# anyone could have written this\n")
        conf.write_text(text + f"include {drop}/*.conf;\n")
    code, report = run(base(nginx_conf=str(conf)))
    assert code == 0
    nginx = report["nginx"]
    assert nginx["value"]["config_test_ok"] is None, nginx
    assert "nginx -t not run" in nginx["error"]
    assert not marker.exists()


@has_nginx
def test_a_root_owned_config_is_still_tested(tmp_path):
    marker = tmp_path / "opened-by-nginx-t.log"
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"error_log {marker};\npid {tmp_path}/nginx.pid;\nevents {{}}\n")
    code, report = run(base(nginx_conf=str(conf)))
    assert code == 0 and report["nginx"]["value"]["config_test_ok"] is True, report["nginx"]
    assert marker.exists()


def test_log_paths_outside_var_log_and_the_log_roots_are_not_read(tmp_path):
    now = datetime.now().strftime("%Y/%m/%d %H:%M:%S")
    log = tmp_path / "secret.log"
    log.write_text(f"{now} [error] 1#1: *1 connect() failed (111: Connection refused) while connecting to upstream\n")
    app = tmp_path / "app.log"
    app.write_text("OSError: [Errno 98] Address already in use\n")
    code, report = run(base(nginx_error_log=str(log), app_log=str(app), nginx_conf=str(tmp_path / "none.conf")))
    assert code == 0
    assert str(log) not in report["nginx"]["value"]["error_log"]["paths"]
    assert report["nginx"]["error_signatures"] == []
    assert "nginx_error_log not read" in report["nginx"]["error"]
    assert report["app_log"]["value"]["source"] is None and "not under /var/log" in report["app_log"]["error"]
    # Named as a log root, the same directory is read.
    code, report = run(base(nginx_error_log=str(log), app_log=str(app), nginx_conf=str(tmp_path / "none.conf"),
                            log_roots=[str(tmp_path)]))
    assert report["nginx"]["primary_signature"] == "connection_refused"
    assert report["app_log"]["value"]["address_in_use"] is True


@pytest.mark.parametrize("roots", [["/etc"], ["/"], ["/var"], ["/etc/nginx"], ["/usr/local"], ["/root/logs"]])
def test_a_log_root_may_not_be_or_contain_a_system_directory(roots):
    code, doc = run(base(log_roots=roots))
    assert code == 2 and doc["field"] == "log_roots", doc


@pytest.mark.parametrize("field,value", [("service", "nginx\n"), ("process_match", "uvicorn\n"),
                                         ("nginx_conf", "/etc/nginx/nginx.conf\n"), ("health_path", "/health\n"),
                                         ("public_host", "api.example.com\n")])
def test_a_trailing_newline_is_not_a_valid_value(field, value):
    code, doc = run(base(**{field: value}))
    assert code == 2 and doc["field"] == field, doc


def test_a_deeply_nested_argument_is_a_bad_parameter_not_a_crash():
    code, doc = run({}, raw='{"database": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert code == 2 and "nested deeper" in doc["error"], doc


def test_a_deeply_nested_health_body_from_the_backend_is_bounded(tmp_path):
    body = ("[" * 4000 + "]" * 4000).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, report = run(base(backend_port=server.server_address[1]))
    finally:
        server.shutdown()
    health = report["local_health"]
    assert code == 0 and health["status"] == "ok" and not (health["error"] or "").startswith("check raised"), health
    assert socket.gethostname() == report["meta"]["host"]
    assert Path(script_path()).is_file()
