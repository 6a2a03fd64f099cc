"""The lab's configuration files, rendered from data: supervisord.conf, nginx.conf and the gatewatch targets file.

Faults that break a configuration render a variant (``NginxSite``) instead of editing text in place, and heal by
rendering the baseline again, so a healed lab is byte-for-byte the lab that came up.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.layout import (
    BACKEND_PORT,
    DB_PORT,
    EDGE_HOST,
    EDGE_PORT,
    HEALTH_PATH,
    LOGIN_PATH,
    NGINX_PORT,
    SERVICE,
    SITE_HOST,
    LabPaths,
)

PROXY_TIMEOUT_S = 3  # short, so hung and firewalled backends show within seconds


@dataclass(frozen=True)
class NginxSite:
    """The knobs the faults turn. The baseline is ``NginxSite()``."""

    upstream: str = f"127.0.0.1:{BACKEND_PORT}"  # "host:port" or "unix:/path"
    proxy_pass: str = "http://backend_app"  # noqa: S105 - not a password; or e.g. "http://localhost:8000" (no upstream block used)
    next_upstream: bool = True
    extra_server_lines: tuple[str, ...] = ()


def nginx_conf(paths: LabPaths, site: NginxSite = NginxSite()) -> str:  # noqa: B008 - frozen dataclass
    p = paths.nginx_prefix
    health_pass = site.proxy_pass + "/health"
    extra = "".join(f"        {line}\n" for line in site.extra_server_lines)
    next_upstream = "" if site.next_upstream else "        proxy_next_upstream off;\n"
    return f"""# gatewatch lab nginx (rendered by lab.render; faults render variants, heal renders this baseline)
user nobody nogroup;
worker_processes 1;
pid {paths.run}/nginx.pid;
error_log {paths.nginx_error_log} warn;

events {{
    worker_connections 256;
}}

http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/temp/client_body;
    proxy_temp_path {p}/temp/proxy;
    fastcgi_temp_path {p}/temp/fastcgi;
    uwsgi_temp_path {p}/temp/uwsgi;
    scgi_temp_path {p}/temp/scgi;

    upstream backend_app {{
        server {site.upstream};
    }}

    server {{
        listen 127.0.0.1:{NGINX_PORT} default_server;
        server_name {SITE_HOST};

        proxy_connect_timeout {PROXY_TIMEOUT_S}s;
        proxy_read_timeout {PROXY_TIMEOUT_S}s;
        proxy_send_timeout {PROXY_TIMEOUT_S}s;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
{next_upstream}{extra}
        location = {HEALTH_PATH} {{
            proxy_pass {health_pass};
        }}

        location / {{
            proxy_pass {site.proxy_pass};
        }}
    }}
}}
"""


def supervisord_conf(paths: LabPaths, bin_dir: Path, postgres_bin: Path, nginx_bin: str, python: str) -> str:
    """supervisord for the origin: postgres, the backend, nginx, and a stranger (not started) for port faults."""
    lg = paths.logs
    env = f'GATEWATCH_LAB_DIR="{paths.root}",PYTHONUNBUFFERED="1"'
    return f"""; gatewatch lab supervisord (rendered by lab.render). Runs inside the lab's network namespace.
[unix_http_server]
file={paths.supervisor_sock}
chmod=0700

[supervisord]
logfile={lg}/supervisord.log
logfile_maxbytes=1MB
logfile_backups=1
pidfile={paths.supervisord_pid}
childlogdir={lg}
identifier=gatewatch-lab

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{paths.supervisor_sock}

[program:postgres]
command={postgres_bin} -D {paths.pg_data} -k {paths.pg_socket_dir} -h 127.0.0.1 -p {DB_PORT}
user=postgres
priority=10
autorestart=true
startsecs=2
stopsignal=INT
stopwaitsecs=10
redirect_stderr=true
stdout_logfile={lg}/postgres.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=1

[program:{SERVICE}]
command={python} -m lab.backend.serve
environment={env}
directory={paths.root}
priority=20
autorestart=true
startsecs=2
startretries=2
stopwaitsecs=3
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={paths.app_log}
stdout_logfile_maxbytes=0

[program:nginx]
command={nginx_bin} -p {paths.nginx_prefix} -c conf/nginx.conf -e {paths.nginx_error_log} -g "daemon off;"
priority=30
autorestart=true
startsecs=1
startretries=1
stopwaitsecs=5
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={lg}/nginx.out.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=1

[program:stranger]
; another program that grabs the backend's port: started only by the port_conflict fault
command={python} -m http.server --bind 127.0.0.1 {BACKEND_PORT} --directory {paths.stranger_dir}
autostart=false
autorestart=false
startsecs=1
redirect_stderr=true
stdout_logfile={lg}/stranger.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=0
"""


def targets_doc(paths: LabPaths, netns: str, url_path: str = LOGIN_PATH, edge_port: int = EDGE_PORT) -> dict[str, Any]:
    """The gatewatch targets file for the lab: one target, probed through the edge, checked inside the namespace."""
    base = f"http://{EDGE_HOST}:{edge_port}"
    return {
        "settings": {"concurrency": 4, "db_path": str(paths.root / "gatewatch.sqlite")},
        "targets": [
            {
                "name": "lab-api",
                "url": base + url_path,
                "method": "POST",
                "headers": {"Host": SITE_HOST, "Content-Type": "application/json"},
                "body": '{"username": "probe", "password": "wrong"}',
                "timeout_s": 8,
                "expect": {"status": [200, 401], "body_contains": "detail"},
                "health": {
                    "url": base + HEALTH_PATH,
                    "expect_json": {"status": "healthy", "database": "connected"},
                },
                "confirm": {"retries": 1, "delay_s": 0.5},
                "alerting": {"failure_threshold": 1, "success_threshold": 1},
                "host": {
                    "local": True,
                    "netns": netns,
                    "service": SERVICE,
                    "service_manager": "supervisor",
                    "proxy_service": "nginx",
                    "supervisor_config": str(paths.supervisord_conf),
                    "backend_port": BACKEND_PORT,
                    "health_path": "/health",
                    "nginx_port": NGINX_PORT,
                    "nginx_prefix": str(paths.nginx_prefix),
                    "nginx_conf": str(paths.nginx_conf),
                    "nginx_error_log": str(paths.nginx_error_log),
                    "app_log": str(paths.app_log),
                    "log_roots": [str(paths.root)],
                    "database": {"host": "127.0.0.1", "port": DB_PORT},
                },
                # The lab is for trying things: no cooldown, so faults can be injected and fixed back to back.
                "remediation": {"mode": "auto", "cooldown_minutes": 0, "max_per_day": 100},
            }
        ],
    }


def targets_yaml(paths: LabPaths, netns: str, url_path: str = LOGIN_PATH, edge_port: int = EDGE_PORT) -> str:
    header = "# gatewatch targets for the lab (written by `gatewatch lab up`; `gatewatch config check` validates it)\n"
    return header + yaml.safe_dump(targets_doc(paths, netns, url_path, edge_port), sort_keys=False)


def default_python() -> str:
    return sys.executable
