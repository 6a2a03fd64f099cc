"""Build facts documents (docs/data-model.md) for tree tests: a healthy baseline, then one change per case.

The lab records real facts for every fault it can reproduce (tests/events/facts/); these builders cover the cases
the lab cannot make real here (OOM kills, full disks, SELinux, Cloudflare codes, certificates on public names).
"""

from __future__ import annotations

import copy
from typing import Any


def probe(status: int | None = 401, reason: str | None = None, *, ok: bool | None = None, cf_code: int | None = None,
          tls: dict | None = None, error: str | None = None, json_body: Any = None) -> dict[str, Any]:
    ok = (reason is None) if ok is None else ok
    return {
        "url": "https://backend.example.com/api/v1/auth/demo-login",
        "method": "POST",
        "started_at": "2026-11-25T13:00:00.000Z",
        "status": "up" if ok else "down",
        "ok": ok,
        "degraded": False,
        "reason": reason,
        "phase": None if ok else "ttfb",
        "error": error,
        "timings_ms": {"dns": 1.0, "connect": 1.0, "tls": 5.0, "ttfb": 20.0, "transfer": 0.1, "total": 28.0},
        "remote": {"ip": "127.0.0.1", "family": "ipv4", "port": 443},
        "tls": tls,
        "http": None if status is None else {"status": status, "reason": "", "version": "HTTP/1.1",
                                              "headers": {"server": "cloudflare" if cf_code else "nginx"},
                                              "body_excerpt": "", "body_bytes": 0, "body_truncated": False,
                                              "json": json_body},
        "cloudflare": {"edge": bool(cf_code), "ray": None, "colo": None, "code": cf_code,
                       "meaning": f"Cloudflare {cf_code}" if cf_code else None},
        "redirects": [],
        "assertions": [],
    }


def outside(main: dict[str, Any], *, retried: dict[str, Any] | None = None, health_ok: bool | None = None,
            health_db: str = "connected") -> dict[str, Any]:
    attempts = [main] if retried is None else [retried, main]
    health = None
    if health_ok is not None:
        health = probe(200 if health_ok else 503, None if health_ok else "http_5xx_origin",
                       json_body={"status": "healthy" if health_ok else "unhealthy", "database": health_db})
    return {
        "target": "api", "at": "2026-11-25T13:00:00.000Z",
        "status": main["status"], "confirmed": not main["ok"], "transient": bool(retried) and main["ok"],
        "attempts": attempts, "probe": main, "health": health,
    }


def check(value: dict[str, Any], status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"status": status, "value": value, "evidence": [], "error": None, **extra}


def http_check(status: int | None = 200, *, timed_out: bool = False, refused: bool = False,
               json_body: Any = None, url: str = "http://127.0.0.1:8000/health") -> dict[str, Any]:
    return {"url": url, "status": status, "latency_ms": 3.0, "timed_out": timed_out, "refused": refused,
            "error": None, "json": json_body, "body_excerpt": ""}


def healthy_onbox() -> dict[str, Any]:
    return {
        "schema": 1,
        "meta": {"host": "web-1", "collected_at": "2026-11-25T13:00:01.000Z", "duration_ms": 900.0,
                 "truncated": False, "python": "3.11"},
        "service": check({"manager": "systemd", "name": "bandarupay-backend", "running": True, "state": "active",
                          "pid": 4242, "restarts_recent": 0, "crash_loop": False}),
        "port": check({"listening": True, "addresses": ["127.0.0.1:8000"], "ipv4": True, "ipv6": False,
                       "pid": 4242, "process": "uvicorn", "owned_by_service": True}),
        "local_health": check(http_check(200, json_body={"status": "healthy", "database": "connected"})),
        "local_endpoint": check({"direct": http_check(401, url="http://127.0.0.1:8000/api/v1/auth/demo-login"),
                                 "via_nginx": http_check(401, url="http://127.0.0.1:80/api/v1/auth/demo-login")}),
        "nginx": check({"running": True, "master_pid": 100, "config_test_ok": True,
                        "config_test_output": "nginx: configuration file /etc/nginx/nginx.conf test is successful",
                        "upstreams": [{"name": "backend_app", "servers": ["127.0.0.1:8000"]}],
                        "proxy_pass": ["http://backend_app"], "targets": [{"host": "127.0.0.1", "port": 8000,
                                                                          "unix": None}],
                        "matches_backend": True, "unix_sockets": [], "proxy_buffer_size": None,
                        "config_newer_than_master": False},
                       error_signatures=[], primary_signature=None),
        "app_log": check({"source": "journal", "last_exception": None, "address_in_use": False,
                          "module_not_found": False, "db_error": False}),
        "firewall": check({"tool": "iptables", "blocking_rules": [], "blocks_backend": False, "blocks_web": False}),
        "resources": check({"mem_available_mb": 900, "mem_total_mb": 2000, "swap_used_pct": 0, "oom_kills": [],
                            "oom_killed_backend": False, "disks": [{"path": "/", "used_pct": 40,
                                                                    "inodes_used_pct": 10}],
                            "disk_full": False, "fds": {"backend": {"open": 30, "limit": 1024},
                                                        "nginx": {"open": 20, "limit": 1024}},
                            "fd_exhausted": False, "load1": 0.2, "cores": 2}),
        "selinux": check({"present": False, "mode": None, "httpd_can_network_connect": None, "denials": 0}),
        "database": check({"from_health": "connected", "tcp": {"host": "127.0.0.1", "port": 5432,
                                                               "reachable": True, "error": None}}),
    }


def signature(name: str, upstream: str = "http://127.0.0.1:8000/api/v1/auth/demo-login",
              sample: str | None = None) -> dict[str, Any]:
    return {"signature": name, "count": 3, "first": "2026/11/25 13:00:00", "last": "2026/11/25 13:00:02",
            "sample": sample or f"2026/11/25 13:00:00 [error] 7#7: *1 {name} ... upstream: \"{upstream}\"",
            "upstream": upstream}


def facts(out: dict[str, Any], onbox: dict[str, Any] | None = None, onbox_error: dict | None = None,
          host: bool = True) -> dict[str, Any]:
    if onbox is None and onbox_error is None and not host:
        onbox_error = {"reason": "not_configured", "status": None, "detail": "no host"}
    return {
        "schema": 1, "target": "api", "incident_id": None, "collected_at": "2026-11-25T13:00:02.000Z",
        "outside": out, "onbox": onbox, "onbox_error": onbox_error,
        "config": {"url": "https://backend.example.com/api/v1/auth/demo-login", "method": "POST",
                   "host": {"service": "bandarupay-backend", "service_manager": "systemd", "backend_host":
                            "127.0.0.1", "backend_port": 8000} if host else None},
    }


def with_changes(onbox: dict[str, Any], **changes: dict[str, Any]) -> dict[str, Any]:
    """``with_changes(b, nginx={"value.running": False, "primary_signature": "x"})``: dotted keys per check."""
    doc = copy.deepcopy(onbox)
    for check_name, updates in changes.items():
        for dotted, value in updates.items():
            cur = doc[check_name]
            parts = dotted.split(".")
            for p in parts[:-1]:
                cur = cur[p]
            cur[parts[-1]] = value
    return doc


def down502() -> dict[str, Any]:
    return outside(probe(502, "http_5xx_origin"))
