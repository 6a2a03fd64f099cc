"""nginx layouts (issue 11): Debian's sites-available/sites-enabled with symlinks, conf.d, several server blocks,
per-site error logs. The site nginx picks for the target's Host and port is the one whose error log and proxy_pass
count; another site's log (here holding an unrelated permission error) and proxy_pass do not."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime

import pytest

from tests.nginxconf import nginx_conf
from tests.unit.test_onbox_script import free_port, run_script, wait_listening

NGINX = "/usr/sbin/nginx"

DEFAULT_SITE = """
server {{
    listen 127.0.0.1:{port} default_server;
    server_name _;
    error_log {d}/logs/default-error.log;
    location / {{ proxy_pass http://127.0.0.1:{backend}; }}
}}
"""
API_SITE = """
server {{
    listen 127.0.0.1:{port};
    server_name api.example.com www.example.com;
    error_log {d}/logs/api-error.log;
    location / {{ proxy_pass http://api_backend; proxy_connect_timeout 2s; }}
}}
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(NGINX), reason="needs root and nginx")
def test_the_matching_sites_error_log_and_proxy_pass_count(tmp_path):
    d = tmp_path / "nginx"
    for sub in ("t", "logs", "conf.d", "sites-available", "sites-enabled"):
        (d / sub).mkdir(parents=True)
    port, backend, wrong = free_port(), free_port(), free_port()
    (d / "nginx.conf").write_text(nginx_conf(d, f"    include {d}/conf.d/*.conf;\n    include {d}/sites-enabled/*;",
                                             error_log=f"{d}/logs/error.log"))
    (d / "conf.d" / "upstreams.conf").write_text(f"upstream api_backend {{ server 127.0.0.1:{wrong}; }}\n")
    (d / "sites-available" / "default").write_text(DEFAULT_SITE.format(d=d, port=port, backend=backend))
    (d / "sites-available" / "api").write_text(API_SITE.format(d=d, port=port))
    for name in ("default", "api"):
        (d / "sites-enabled" / name).symlink_to(d / "sites-available" / name)
    now = datetime.now().strftime("%Y/%m/%d %H:%M:%S")
    (d / "logs" / "default-error.log").write_text(
        f"{now} [crit] 9#9: *1 connect() to 127.0.0.1:1 failed (13: Permission denied) while connecting to "
        "upstream, client: 127.0.0.1, server: _\n")
    master = subprocess.Popen([NGINX, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        params = {"service_manager": "command", "process_match": "gwtest-none", "backend_port": backend,
                  "nginx_port": port, "nginx_conf": str(d / "nginx.conf"), "nginx_prefix": str(d),
                  "nginx_error_log": str(d / "logs" / "error.log"), "log_roots": [str(tmp_path)],
                  "public_host": "api.example.com", "endpoint_path": "/x"}
        code, report, _ = run_script(params)  # its own request through nginx is refused: the api site logs it
    finally:
        master.terminate()
        master.wait(10)
    nginx = report["nginx"]
    site = nginx["value"]["server_block"]
    assert site["file"] == str(d / "sites-enabled" / "api") and "api.example.com" in site["server_name"]
    assert nginx["value"]["error_log"]["paths"][0] == str(d / "logs" / "api-error.log")
    assert str(d / "logs" / "default-error.log") not in nginx["value"]["error_log"]["paths"]
    assert nginx["primary_signature"] == "connection_refused"
    assert "permission_denied" not in {s["signature"] for s in nginx["error_signatures"]}
    # The api site proxies to the wrong port; the default site's proxy_pass to the backend does not count.
    assert nginx["value"]["targets"] == [{"host": "127.0.0.1", "port": wrong, "unix": None}]
    assert nginx["value"]["matches_backend"] is False
    assert str(d / "sites-enabled" / "api") in nginx["value"]["config_files"]
