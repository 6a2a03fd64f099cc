"""Named facts cases with the verdict each must get: shared by the Python-walker tests and the state-machine
parity test, so both walkers are held to the same answers."""

from __future__ import annotations

from tests.factsbuilder import (
    down502,
    facts,
    healthy_onbox,
    http_check,
    outside,
    probe,
    signature,
    with_changes,
)

TLS_OK = {"version": "TLSv1.3", "cipher": None, "subject": "CN=backend.example.com", "issuer": "CN=R3",
          "sans": ["backend.example.com"], "not_before": "2026-09-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
          "days_to_expiry": 37.0, "self_signed": False, "verified": True, "verify_error": None,
          "hostname_match": True}
BASE = healthy_onbox()


def _cases() -> dict[str, tuple[dict, str, str]]:
    c: dict[str, tuple[dict, str, str]] = {}
    # ---- outside only ----
    c["healthy"] = (facts(outside(probe(401, tls=TLS_OK)), host=False), "healthy", "healthy")
    c["transient"] = (facts(outside(probe(401), retried=probe(502, "http_5xx_origin")), host=False),
                      "transient", "transient")
    c["tls_expiring_soon"] = (facts(outside(probe(401, tls=TLS_OK | {"days_to_expiry": 5.0})), host=False),
                              "tls_expiring", "tls_certificate_expiring")
    c["dns_failure"] = (facts(outside(probe(None, "dns_error", error="name does not resolve")), host=False),
                        "dns_failure", "dns_failure")
    expired = TLS_OK | {"days_to_expiry": -3.0, "verified": False, "verify_error": "certificate has expired"}
    c["tls_expired"] = (facts(outside(probe(None, "tls_error", tls=expired)), host=False),
                        "tls_invalid", "tls_certificate_invalid")
    c["edge_unreachable"] = (facts(outside(probe(None, "connect_timeout")), host=False),
                             "edge_unreachable", "edge_unreachable")
    for code in (521, 522, 523):
        c[f"cloudflare_{code}"] = (facts(outside(probe(code, "http_5xx_edge", cf_code=code)), host=False),
                                   "edge_to_origin_blocked", "edge_to_origin_blocked")
    c["cloudflare_524"] = (facts(outside(probe(524, "http_5xx_edge", cf_code=524)), host=False),
                           "origin_timeout", "backend_hung")
    for code in (525, 526):
        c[f"cloudflare_{code}"] = (facts(outside(probe(code, "http_5xx_edge", cf_code=code)), host=False),
                                   "origin_tls_error", "origin_tls_error")
    route_404 = outside(probe(404, "http_status"), health_ok=True)
    route_404["openapi_paths"] = ["/api/v1/auth/demo-login", "/api/v1/health", "/health"]
    c["route_not_found_outside"] = (facts(route_404, host=False), "route_not_found", "route_not_found")
    c["assertion_on_200"] = (facts(outside(probe(200, "assertion_failed")), host=False),
                             "assertion_failed", "assertion_failed")
    # a 5xx page with a healthy /health and no host: the response itself says what to do next (issue 12)
    page500 = probe(500, "http_5xx_origin")
    page500["http"]["headers"] = {"server": "nginx/1.22.1", "cf-ray": "8a1b2c3d4e5f-LHR"}
    page500["http"]["body_excerpt"] = "<h1>Internal Server Error</h1>\n\u00e9\x07"
    c["outside_500_health_ok"] = (facts(outside(page500, health_ok=True), host=False),
                                  "outside_endpoint_error", "endpoint_error")
    c["outside_500_health_down"] = (facts(outside(probe(500, "http_5xx_origin"), health_ok=False), host=False),
                                    "unknown_outside", "unknown")
    later = facts(outside(probe(401, tls=TLS_OK | {"days_to_expiry": 20.0})), host=False)
    later["config"]["certificate_warn_days"] = 30
    c["tls_expiring_per_target_warn_days"] = (later, "tls_expiring", "tls_certificate_expiring")
    c["host_unreachable"] = (facts(down502(), onbox_error={"reason": "unreachable", "status": "NotRegistered",
                                                           "detail": "instance not registered with SSM"}),
                             "host_unreachable", "host_unreachable")
    # ---- with the box ----
    refused = {"primary_signature": "connection_refused", "error_signatures": [signature("connection_refused")]}
    c["backend_down"] = (facts(down502(), with_changes(
        BASE, service={"value.running": False, "value.state": "inactive"},
        port={"value.listening": False, "value.addresses": [], "value.pid": None},
        local_health={"value": http_check(None, refused=True)}, nginx=refused)), "backend_down", "backend_down")
    c["oom_killed"] = (facts(down502(), with_changes(
        BASE, service={"value.running": False, "value.state": "failed"}, port={"value.listening": False},
        resources={"value.oom_killed_backend": True, "value.oom_kills": ["Killed process 4242 (uvicorn)"]},
        nginx=refused)), "out_of_memory", "out_of_memory")
    c["disk_full_dead"] = (facts(down502(), with_changes(
        BASE, service={"value.running": False}, port={"value.listening": False},
        resources={"value.disk_full": True, "value.disks": [{"path": "/", "used_pct": 100, "inodes_used_pct": 3}]},
        nginx=refused)), "disk_full", "disk_full")
    c["disk_full_unhealthy"] = (facts(down502(), with_changes(
        BASE, local_health={"value": http_check(500)},
        resources={"value.disk_full": True, "value.disks": [{"path": "/", "used_pct": 100, "inodes_used_pct": 3}]})),
        "disk_full", "disk_full")
    c["fd_exhausted"] = (facts(outside(probe(504, "http_5xx_origin")), with_changes(
        BASE, local_health={"value": http_check(None, timed_out=True)},
        resources={"value.fd_exhausted": True, "value.fds": {"backend": {"open": 1024, "limit": 1024}}},
        nginx={"primary_signature": "upstream_timeout", "error_signatures": [signature("upstream_timeout")]})),
        "fd_exhausted", "fd_exhausted")
    c["selinux"] = (facts(down502(), with_changes(
        BASE, selinux={"value.present": True, "value.mode": "enforcing", "value.httpd_can_network_connect": False},
        nginx={"primary_signature": "permission_denied", "error_signatures": [signature("permission_denied")]})),
        "proxy_selinux_denied", "proxy_permission_denied")
    c["header_too_big"] = (facts(down502(), with_changes(
        BASE, nginx={"primary_signature": "header_too_big", "error_signatures": [signature("header_too_big")]})),
        "proxy_header_too_big", "proxy_header_too_big")
    c["localhost_ipv6"] = (facts(down502(), with_changes(
        BASE, nginx={"value.targets": [{"host": "localhost", "port": 8000, "unix": None}],
                     "value.matches_backend": False, "primary_signature": "connection_refused",
                     "error_signatures": [signature("connection_refused", upstream="http://[::1]:8000/x")]})),
        "proxy_localhost_ipv6", "proxy_upstream_mismatch")
    c["localhost_ipv6_blip"] = (facts(outside(probe(401), retried=probe(502, "http_5xx_origin")), with_changes(
        BASE, nginx={"value.targets": [{"host": "localhost", "port": 8000, "unix": None}],
                     "value.matches_backend": False, "primary_signature": "connection_refused",
                     "error_signatures": [signature("connection_refused", upstream="http://[::1]:8000/x")]})),
        "proxy_localhost_ipv6", "proxy_upstream_mismatch")
    c["keepalive_resets_blip"] = (facts(outside(probe(401), retried=probe(502, "http_5xx_origin")), with_changes(
        BASE, nginx={"primary_signature": "connection_reset", "error_signatures": [signature("connection_reset")]})),
        "proxy_keepalive_reset", "proxy_keepalive_reset")
    c["keepalive_resets"] = (facts(down502(), with_changes(
        BASE, nginx={"primary_signature": "upstream_closed", "error_signatures": [signature("upstream_closed")]})),
        "proxy_keepalive_reset", "proxy_keepalive_reset")
    c["nginx_down"] = (facts(outside(probe(521, "http_5xx_edge", cf_code=521)), with_changes(
        BASE, nginx={"value.running": False, "value.master_pid": None})), "proxy_down", "proxy_down")
    c["nginx_config_invalid"] = (facts(outside(probe(None, "connect_refused")), with_changes(
        BASE, nginx={"value.running": False, "value.config_test_ok": False,
                     "value.config_test_output": 'unknown directive "proxy_passs"'})),
        "proxy_config_invalid", "proxy_config_invalid")
    c["upstream_wrong_port"] = (facts(down502(), with_changes(
        BASE, nginx={"value.targets": [{"host": "127.0.0.1", "port": 8001, "unix": None}],
                     "value.matches_backend": False, **refused})), "proxy_upstream_mismatch", "proxy_upstream_mismatch")
    c["crash_loop"] = (facts(down502(), with_changes(
        BASE, service={"value.running": False, "value.crash_loop": True, "value.state": "BACKOFF"},
        port={"value.listening": False},
        app_log={"value.module_not_found": True, "value.last_exception": {
            "type": "ModuleNotFoundError", "message": "No module named 'jose'", "line": "ModuleNotFoundError: ..."}},
        nginx=refused)), "backend_crash_loop_module", "backend_crash_loop")
    c["port_conflict"] = (facts(outside(probe(404, "http_status")), with_changes(
        BASE, service={"value.running": False, "value.crash_loop": True, "value.state": "FATAL"},
        port={"value.owned_by_service": False, "value.pid": 999, "value.process": "python3 -m http.server"},
        local_health={"value": http_check(404)})), "port_conflict", "port_conflict")
    c["backend_hung"] = (facts(outside(probe(504, "http_5xx_origin")), with_changes(
        BASE, local_health={"value": http_check(None, timed_out=True)},
        nginx={"primary_signature": "upstream_timeout", "error_signatures": [signature("upstream_timeout")]})),
        "backend_hung", "backend_hung")
    c["database_down"] = (facts(outside(probe(500, "http_5xx_origin")), with_changes(
        BASE, local_health={"value": http_check(503, json_body={"status": "unhealthy", "database": "disconnected"})},
        database={"value.tcp": {"host": "127.0.0.1", "port": 5432, "reachable": False, "error": "refused"}})),
        "database_unavailable", "database_unavailable")
    c["endpoint_500"] = (facts(outside(probe(500, "http_5xx_origin")), with_changes(
        BASE, local_endpoint={"value.direct": http_check(500)})), "endpoint_error", "endpoint_error")
    c["route_not_found_onbox"] = (facts(outside(probe(404, "http_status")), BASE), "route_not_found",
                                  "route_not_found")
    c["firewall_backend"] = (facts(outside(probe(504, "http_5xx_origin")), with_changes(
        BASE, firewall={"value.blocks_backend": True, "value.blocking_rules": [
            {"rule": "-A INPUT -p tcp --dport 8000 -j DROP", "port": 8000, "action": "DROP"}]},
        local_health={"value": http_check(None, timed_out=True)},
        nginx={"primary_signature": "connect_timeout", "error_signatures": [signature("connect_timeout")]})),
        "firewall_backend", "firewall_blocked")
    c["stale_nginx_config"] = (facts(down502(), with_changes(
        BASE, nginx={"value.targets": [{"host": "127.0.0.1", "port": 8001, "unix": None}],
                     "value.matches_backend": False, "value.config_newer_than_master": True, **refused})),
        "proxy_upstream_stale", "proxy_upstream_mismatch")
    c["socket_missing"] = (facts(down502(), with_changes(
        BASE, nginx={"value.targets": [{"host": None, "port": None, "unix": "/run/app.sock"}],
                     "value.unix_sockets": [{"path": "/run/app.sock", "exists": False}],
                     "primary_signature": "socket_missing", "error_signatures": [signature("socket_missing")]})),
        "proxy_socket_missing", "proxy_upstream_mismatch")
    c.update(_setups(refused))
    return c


SOCK = "/run/app/gunicorn.sock"


def _on_socket(doc: dict, manager: str = "supervisor") -> dict:
    """The same facts for a backend on a unix socket (host.backend_socket) under another manager."""
    doc["config"]["host"] = {"service": "bandarupay-backend", "service_manager": manager, "backend_socket": SOCK,
                             "database": {"host": "127.0.0.1", "port": 3306, "kind": "mysql"}}
    return doc


def _setups(refused: dict) -> dict[str, tuple[dict, str, str]]:
    """Issue 11: unix sockets, gunicorn, no service manager, stale reloads, database errors by name."""
    c: dict[str, tuple[dict, str, str]] = {}
    sock_port = {"value": {"kind": "unix", "listening": True, "addresses": [f"unix:{SOCK}"], "pid": 4242,
                           "process": "gunicorn", "owned_by_service": True,
                           "socket": {"path": SOCK, "exists": True, "is_socket": True, "accepting": True,
                                      "refused": False, "error": None}}}
    sock_nginx = {"value.targets": [{"host": None, "port": None, "unix": SOCK}], "value.matches_backend": True,
                  "value.unix_sockets": [{"path": SOCK, "exists": True}]}
    stale = dict(sock_port["value"], listening=False, socket=dict(sock_port["value"]["socket"], accepting=False,
                                                                  refused=True))
    c["stale_socket"] = (_on_socket(facts(down502(), with_changes(
        BASE, service={"value.running": False, "value.state": "STOPPED"}, port={"value": stale},
        local_health={"value": http_check(None, refused=True)},
        nginx={**sock_nginx, "primary_signature": "connection_refused",
               "error_signatures": [signature("connection_refused", f"http://unix:{SOCK}:/api/v1/auth/demo-login")]}))),
        "backend_down", "backend_down")
    gone = dict(stale, socket=dict(stale["socket"], exists=False, is_socket=False, refused=False))
    c["socket_backend_stopped"] = (_on_socket(facts(down502(), with_changes(
        BASE, service={"value.running": False, "value.state": "STOPPED"}, port={"value": gone},
        nginx={**sock_nginx, "value.unix_sockets": [{"path": SOCK, "exists": False}],
               "primary_signature": "socket_missing", "error_signatures": [signature("socket_missing")]}))),
        "backend_down", "backend_down")
    c["gunicorn_crash_loop_socket_rebound"] = (_on_socket(facts(down502(), with_changes(
        BASE, service={"value.running": True, "value.crash_loop": True, "value.state": "RUNNING",
                       "value.restarts_recent": 2},
        port=sock_port, local_health={"value": http_check(None, refused=True)},
        app_log={"value.module_not_found": True, "value.last_exception": {
            "type": "ModuleNotFoundError", "message": "No module named 'jose'", "line": "ModuleNotFoundError: ..."}},
        nginx={**sock_nginx, "value.unix_sockets": [{"path": SOCK, "exists": False}],
               "primary_signature": "socket_missing", "error_signatures": [signature("socket_missing")]}))),
        "backend_crash_loop_module", "backend_crash_loop")
    worker_timeout = {"value.worker_timeout": True, "value.worker_timeouts": 3, "value.workers_booted": 4}
    c["gunicorn_hung_socket"] = (_on_socket(facts(outside(probe(504, "http_5xx_origin")), with_changes(
        BASE, port=sock_port, nginx={**sock_nginx, "primary_signature": "upstream_timeout",
                                     "error_signatures": [signature("upstream_timeout")]},
        app_log=worker_timeout,
        local_health={"value": http_check(None, timed_out=True)}))), "backend_hung", "backend_hung")
    c["gunicorn_hung_via_nginx_only"] = (_on_socket(facts(outside(probe(504, "http_5xx_origin")), with_changes(
        BASE, port=sock_port, nginx={**sock_nginx, "primary_signature": "upstream_timeout",
                                     "error_signatures": [signature("upstream_timeout")]},
        local_endpoint={"value.via_nginx": http_check(None, timed_out=True)}))), "backend_hung", "backend_hung")
    c["crash_loop_without_manager"] = (facts(down502(), with_changes(
        BASE, service={"value.manager": "command", "value.running": True, "value.crash_loop": True,
                       "value.state": "running (process match)", "value.uptime_s": 0.6},
        port={"value.listening": False}, local_health={"value": http_check(None, refused=True)},
        app_log={"value.module_not_found": True, "value.last_exception": {
            "type": "ModuleNotFoundError", "message": "No module named 'jose'", "line": "ModuleNotFoundError: ..."}},
        nginx=refused)), "backend_crash_loop_module", "backend_crash_loop")
    c["start_failed_once"] = (facts(down502(), with_changes(
        BASE, service={"value.manager": "command", "value.running": False, "value.state": "no matching process"},
        port={"value.listening": False}, local_health={"value": http_check(None, refused=True)},
        app_log={"value.module_not_found": True, "value.last_exception": {
            "type": "ModuleNotFoundError", "message": "No module named 'jose'", "line": "ModuleNotFoundError: ..."}},
        nginx=refused)), "backend_down_start_failed", "backend_down")
    moved = {"config_newer_than_master": True, "running_upstreams": ["127.0.0.1:8000"],
             "disk_upstreams": ["127.0.0.1:8001"], "differs": True}
    c["stale_config_direct"] = (facts(down502(), with_changes(
        BASE, port={"value.listening": False}, local_health={"value": http_check(None, refused=True)},
        local_endpoint={"value.via_nginx": http_check(502)},
        nginx={"value.targets": [{"host": "127.0.0.1", "port": 8001, "unix": None}], "value.matches_backend": False,
               "value.config_newer_than_master": True, "value.stale_config": moved, **refused})),
        "proxy_upstream_stale", "proxy_upstream_mismatch")
    c["stale_config_invalid"] = (facts(down502(), with_changes(
        BASE, local_endpoint={"value.via_nginx": http_check(502)},
        nginx={"value.config_test_ok": False, "value.config_test_output": "unknown directive \"proxy_passs\"",
               "value.config_newer_than_master": True, "value.stale_config": moved, **refused})),
        "proxy_upstream_stale_invalid", "proxy_upstream_mismatch")
    c["reloaded_config_is_not_stale"] = (facts(down502(), with_changes(
        BASE, nginx={"value.targets": [{"host": "127.0.0.1", "port": 8001, "unix": None}],
                     "value.matches_backend": False, "value.config_newer_than_master": False,
                     "value.stale_config": dict(moved, config_newer_than_master=False), **refused})),
        "proxy_upstream_mismatch", "proxy_upstream_mismatch")
    limit = {"value.kind": "mysql", "value.error": "too_many_connections", "value.message": "Too many connections",
             "value.tcp": {"host": "127.0.0.1", "port": 3306, "reachable": True, "error": None}}
    c["database_too_many_connections"] = (_on_socket(facts(outside(probe(500, "http_5xx_origin")), with_changes(
        BASE, port=sock_port, nginx=sock_nginx, database=limit,
        local_health={"value": http_check(503, json_body={"status": "unhealthy", "database": "disconnected"})}))),
        "database_unavailable", "database_unavailable")
    c["database_refuses_sessions_health_silent"] = (facts(outside(probe(500, "http_5xx_origin")), with_changes(
        BASE, database={**limit, "value.kind": "postgresql", "value.message": "sorry, too many clients already"},
        local_endpoint={"value.direct": http_check(None, timed_out=False)})),
        "database_unavailable", "database_unavailable")
    return c


def _recorded() -> dict[str, tuple[dict, str, str]]:
    """Facts the lab recorded for real on each topology (``make record-facts``): tests/events/facts/<topology>/
    <fault>.json, each with its fault's expected category."""
    import json
    from pathlib import Path

    from lab.faults import FAULTS

    cases = {}
    for path in sorted((Path(__file__).parent / "events" / "facts").glob("*/*.json")):
        fault = FAULTS.get(path.stem)
        expect = fault.expect if fault else ("healthy" if path.stem in ("baseline", "healthy") else None)
        if expect is not None:
            cases[f"lab_{path.parent.name}_{path.stem}"] = (json.loads(path.read_text()), None, expect)
    return cases


CASES = _cases()
RECORDED = _recorded()
