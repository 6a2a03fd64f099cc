"""A test nginx's whole config (prefix ``d/``, temp files under ``d/t``, workers as root so they reach pytest's
private tmp dirs), and stopping a process a test started by its own handle."""

from __future__ import annotations

import subprocess
from pathlib import Path


def nginx_conf(d: Path, http_body: str, error_log: str | None = None) -> str:
    return f"""
user root;
worker_processes 1;
error_log {error_log or f"{d}/error.log"};
pid {d}/nginx.pid;
events {{ worker_connections 32; }}
http {{
    access_log off;
    client_body_temp_path {d}/t/body;
    proxy_temp_path {d}/t/proxy;
    fastcgi_temp_path {d}/t/fastcgi;
    uwsgi_temp_path {d}/t/uwsgi;
    scgi_temp_path {d}/t/scgi;
{http_body}
}}
"""


def stop(proc: subprocess.Popen) -> None:
    """Terminate (graceful: an nginx master takes its workers along), then kill after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
