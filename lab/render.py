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
    DB_NAME,
    DB_PASSWORD,
    DB_PORT,
    DB_USER,
    EDGE_HOST,
    EDGE_PORT,
    HEALTH_PATH,
    LOGIN_PATH,
    MARIADB_PORT,
    NGINX_PORT,
    SERVICE,
    SITE_HOST,
    LabPaths,
)
from lab.topology import Topology
from lab.topology import get as get_topology

PROXY_TIMEOUT_S = 3  # short, so hung and firewalled backends show within seconds


@dataclass(frozen=True)
class NginxSite:
    """The knobs the faults turn. The baseline is ``NginxSite()``."""

    upstream: str | None = None  # "host:port" or "unix:/path"; None: where the topology's backend listens
    proxy_pass: str = "http://backend_app"  # noqa: S105 - not a password; or e.g. "http://localhost:8000" (no upstream block used)
    next_upstream: bool = True
    extra_server_lines: tuple[str, ...] = ()


def backend_upstream(paths: LabPaths, topo: Topology) -> str:
    """Where the topology's backend listens, as an nginx ``server`` address."""
    return f"unix:{paths.backend_socket}" if topo.unix else f"127.0.0.1:{BACKEND_PORT}"


def _site_block(paths: LabPaths, topo: Topology, site: NginxSite) -> str:
    """The upstream and the server block: in nginx.conf (single layout) or in the site's own file."""
    upstream = site.upstream or backend_upstream(paths, topo)
    health_pass = site.proxy_pass + "/health"
    extra = "".join(f"        {line}\n" for line in site.extra_server_lines)
    next_upstream = "" if site.next_upstream else "        proxy_next_upstream off;\n"
    return f"""    upstream backend_app {{
        server {upstream};
    }}

    server {{
        listen 127.0.0.1:{NGINX_PORT} default_server;
        server_name {SITE_HOST};
        error_log {paths.nginx_error_log} warn;

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
"""


def nginx_conf(paths: LabPaths, site: NginxSite = NginxSite(), topo: Topology | None = None) -> str:  # noqa: B008
    """nginx.conf; in the sites and confd layouts it includes the site's file instead of holding the server."""
    topo = topo or get_topology(None)
    p = paths.nginx_prefix
    if topo.nginx_layout == "single":
        body = _site_block(paths, topo, site)
    elif topo.nginx_layout == "sites":
        body = f"    include {paths.nginx_site_enabled.parent}/*;\n"
    else:
        body = f"    include {paths.nginx_confd_site.parent}/*.conf;\n"
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

{body}}}
"""


def nginx_files(paths: LabPaths, topo: Topology, site: NginxSite = NginxSite()) -> dict[Path, str]:  # noqa: B008
    """Every nginx file of the topology's layout: path -> text (the sites-enabled symlink is made by the lab)."""
    files = {paths.nginx_conf: nginx_conf(paths, site, topo)}
    if topo.nginx_layout == "sites":
        files[paths.nginx_site] = "# the lab's site (sites-available; enabled by a symlink)\n" + \
            _site_block(paths, topo, site)
    elif topo.nginx_layout == "confd":
        files[paths.nginx_confd_site] = "# the lab's site (conf.d)\n" + _site_block(paths, topo, site)
    return files


def site_file(paths: LabPaths, topo: Topology) -> Path:
    """The file that holds the site's upstream (what someone edits when the backend moves)."""
    return {"single": paths.nginx_conf, "sites": paths.nginx_site, "confd": paths.nginx_confd_site}[topo.nginx_layout]


DB_MAX_CONNECTIONS = 20  # low, so the database_connection_limit fault fills it with a handful of sessions


REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: `lab` is not in the wheel, so its programs find it here


def backend_env(paths: LabPaths, topo: Topology) -> dict[str, str]:
    return {"GATEWATCH_LAB_DIR": str(paths.root), "GATEWATCH_LAB_TOPOLOGY": topo.name, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO_ROOT)}


def _database_program(paths: LabPaths, topo: Topology, db_bin: Path) -> str:
    lg = paths.logs
    if topo.database == "mariadb":
        args = " ".join((
            "--no-defaults", f"--datadir={paths.mariadb_data}", f"--socket={paths.mariadb_socket}",
            f"--port={MARIADB_PORT}", "--bind-address=127.0.0.1", "--user=mysql",
            f"--pid-file={paths.mariadb_socket.parent}/mysqld.pid", "--skip-name-resolve",
            f"--max-connections={DB_MAX_CONNECTIONS}", f"--init-file={paths.root}/mariadb-init.sql", "--skip-log-bin",
        ))
        return f"""[program:mariadb]
command={db_bin} {args}
priority=10
autorestart=true
startsecs=3
stopwaitsecs=20
redirect_stderr=true
stdout_logfile={lg}/mariadb.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=1
"""
    pg_limit = f"-c max_connections={DB_MAX_CONNECTIONS}"
    return f"""[program:postgres]
command={db_bin} -D {paths.pg_data} -k {paths.pg_socket_dir} -h 127.0.0.1 -p {DB_PORT} {pg_limit}
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
"""


def mariadb_init_sql() -> str:
    """Run by mariadbd at every start (--init-file): idempotent."""
    return (f"CREATE DATABASE IF NOT EXISTS {DB_NAME};\n"
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';\n"
            f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';\n")


def supervisord_conf(paths: LabPaths, bin_dir: Path, db_bin: Path, nginx_bin: str, python: str,
                     topo: Topology | None = None) -> str:
    """supervisord for the origin: the database, the backend (supervisor topologies only), nginx, a stranger (not
    started) for port faults, and a database hog (not started) for the connection-limit fault."""
    topo = topo or get_topology(None)
    lg = paths.logs
    env = ",".join(f'{k}="{v}"' for k, v in backend_env(paths, topo).items())
    backend = "" if not topo.supervised else f"""[program:{SERVICE}]
command={python} -m lab.backend.serve
environment={env}
directory={paths.root}
priority=20
autorestart=true
startsecs=2
startretries=2
stopwaitsecs=5
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={paths.app_log}
stdout_logfile_maxbytes=0

"""
    return f"""; gatewatch lab supervisord (rendered by lab.render). Runs inside the lab's network namespace.
; topology {topo.name}: {topo.description}
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

{_database_program(paths, topo, db_bin)}
{backend}[program:nginx]
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

[program:dbhog]
; holds every database connection it can get: started only by the database_connection_limit fault
command={python} -m lab.dbhog
environment={env}
autostart=false
autorestart=false
startsecs=1
stopwaitsecs=5
redirect_stderr=true
stdout_logfile={lg}/dbhog.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=0
"""


def backend_launcher(paths: LabPaths, topo: Topology, python: str) -> str:
    """The backend without a service manager, as people run it: a shell restart loop, or one background process."""
    exports = "".join(f"export {k}='{v}'\n" for k, v in backend_env(paths, topo).items())
    run = f"{python} -m lab.backend.serve >> {paths.app_log} 2>&1"
    body = f"exec {run}\n" if topo.manager == "plain" else f"while true; do\n    {run}\n    sleep 1\ndone\n"
    return (f"#!/bin/sh\n# gatewatch lab: the backend without a service manager ({topo.manager}; rendered by "
            f"lab.render)\n{exports}cd {paths.root}\n{body}")


def targets_doc(paths: LabPaths, netns: str, url_path: str = LOGIN_PATH, edge_port: int = EDGE_PORT,
                topo: Topology | None = None) -> dict[str, Any]:
    """The gatewatch targets file for the lab: one target, probed through the edge, checked inside the namespace."""
    topo = topo or get_topology(None)
    base = f"http://{EDGE_HOST}:{edge_port}"
    host: dict[str, Any] = {"local": True, "netns": netns, "service": SERVICE}
    if topo.supervised:
        host.update(service_manager="supervisor", proxy_service="nginx", supervisor_config=str(paths.supervisord_conf))
    else:
        host.update(service_manager="command", process_match=str(paths.app_dir))  # in the server's command line
    if topo.unix:
        host["backend_socket"] = str(paths.backend_socket)
    else:
        host["backend_port"] = BACKEND_PORT
    host.update(health_path="/health", nginx_port=NGINX_PORT, nginx_prefix=str(paths.nginx_prefix),
                nginx_conf=str(paths.nginx_conf), nginx_error_log=str(paths.nginx_error_log),
                app_log=str(paths.app_log), log_roots=[str(paths.root)])
    if topo.database == "mariadb":
        host["database"] = {"host": "127.0.0.1", "port": MARIADB_PORT, "kind": "mysql"}
    else:
        host["database"] = {"host": "127.0.0.1", "port": DB_PORT, "kind": "postgresql"}
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
                "host": host,
                # The lab is for trying things: no cooldown, so faults can be injected and fixed back to back.
                "remediation": {"mode": "auto", "cooldown_minutes": 0, "max_per_day": 100},
            }
        ],
    }


def targets_yaml(paths: LabPaths, netns: str, url_path: str = LOGIN_PATH, edge_port: int = EDGE_PORT,
                 topo: Topology | None = None) -> str:
    header = "# gatewatch targets for the lab (written by `gatewatch lab up`; `gatewatch config check` validates it)\n"
    return header + yaml.safe_dump(targets_doc(paths, netns, url_path, edge_port, topo), sort_keys=False)


def default_python() -> str:
    return sys.executable
