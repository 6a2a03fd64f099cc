"""Turn a walk into a verdict a human can act on: the leaf's texts filled with the values found on the box.

One renderer serves both walkers: the Python walker and the state machine (whose trail of visited nodes comes back
to the RecordFunction), so a verdict reads the same whichever walked the tree.
"""

from __future__ import annotations

import difflib
import json
from typing import Any
from urllib.parse import urlsplit

from gatewatch.tree.engine import UNKNOWN_LEAF, Walk, answers_from_trail
from gatewatch.tree.evidence import deciding, describe_outside, log_line_text, signature_for
from gatewatch.tree.model import Tree
from gatewatch.tree.signals import dig


class _Context(dict):
    def __missing__(self, key: str) -> str:
        return "unknown"


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _http_check(check: dict[str, Any] | None) -> str:
    if not isinstance(check, dict):
        return "not checked"
    if check.get("timed_out"):
        waited = f"after {check['latency_ms']:.0f} ms" if isinstance(check.get("latency_ms"), int | float) else (
            f"({check['error']})" if check.get("error") else "without an answer")
        return f"{check.get('url', 'the request')} timed out {waited}"
    if check.get("refused"):
        return f"{check.get('url', 'the request')} was refused"
    if check.get("status"):
        body = check.get("json") if check.get("json") is not None else check.get("body_excerpt")
        return f"{check.get('url', 'the request')} answered {check['status']} {_short(body or '', 160)}".strip()
    return f"{check.get('url', 'the request')} failed: {check.get('error') or 'no answer'}"


def _manager_commands(host: dict[str, Any]) -> dict[str, str]:
    service = host.get("service") or "the backend service"
    manager = host.get("service_manager") or "systemd"
    nginx_flags = ""
    if host.get("nginx_prefix"):
        nginx_flags += f" -p {host['nginx_prefix']}"
    if host.get("nginx_conf"):
        nginx_flags += f" -c {host['nginx_conf']}"
    nginx_test = f"sudo {host.get('nginx_bin') or 'nginx'}{nginx_flags} -t"
    if manager == "supervisor":
        conf = f" -c {host['supervisor_config']}" if host.get("supervisor_config") else ""
        proxy = host.get("proxy_service") or "nginx"
        return {
            "restart_cmd": f"supervisorctl{conf} restart {service}",
            "logs_cmd": f"supervisorctl{conf} tail -2000 {service} stderr",
            "nginx_start_cmd": f"supervisorctl{conf} start {proxy}",
            "nginx_reload_cmd": f"supervisorctl{conf} signal HUP {proxy}",
            "nginx_test_cmd": nginx_test,
        }
    if manager == "systemd":
        return {
            "restart_cmd": f"sudo systemctl restart {service}",
            "logs_cmd": f"sudo journalctl -u {service} -n 200 --no-pager",
            "nginx_start_cmd": "sudo systemctl start nginx",
            "nginx_reload_cmd": "sudo systemctl reload nginx",
            "nginx_test_cmd": nginx_test,
        }
    log = host.get("app_log") or "the backend's log"
    return {
        "restart_cmd": f"restart {service} the way it is normally started",
        "logs_cmd": f"tail -n 200 {log}",
        "nginx_start_cmd": "start nginx the way it is normally started",
        "nginx_reload_cmd": f"sudo {host.get('nginx_bin') or 'nginx'}{nginx_flags} -s reload",
        "nginx_test_cmd": nginx_test,
    }


UNASKED = ("is the backend process running and listening", "does nginx's error log name the failure",
           "what was the backend's last exception", "does the route fail straight at the backend")


def _escaped(text: Any, limit: int = 200) -> str:
    """A response body as one line of printable ASCII: controls and non-ASCII escaped, markup shown as text."""
    flat = " ".join(str(text or "").split())
    flat = "".join(c if 32 <= ord(c) != 127 else f"\\x{ord(c):02x}" for c in flat)
    escaped = flat.encode("ascii", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _response_context(probe: dict[str, Any], health: dict[str, Any]) -> dict[str, str]:
    """What the failing response itself says, for targets seen from the outside only."""
    http = probe.get("http") or {}
    headers = {str(k).lower(): v for k, v in (http.get("headers") or {}).items()}
    ray = headers.get("cf-ray") or (probe.get("cloudflare") or {}).get("ray")
    body = _escaped(http.get("body_excerpt"))
    hh = health.get("http") or {}
    return {
        "response_server": _escaped(headers.get("server"), 80) or "not named",
        "response_ray": _escaped(ray, 80) or "none",
        "response_ray_words": f", Cloudflare ray {_escaped(ray, 80)}" if ray else "",
        "response_ray_step": f" (Cloudflare ray {_escaped(ray, 80)} finds the request in Cloudflare's logs)" if ray
        else "",
        "response_body": f'"{body}"' if body else "an empty body",
        "health_summary": (f"{health.get('url') or 'the health URL'} answered {hh['status']}" if hh.get("status")
                           else "not configured"),
        "unasked": "; ".join(UNASKED),
    }


def _oom_words(kill: Any) -> str:
    if not isinstance(kill, dict):
        return _short(kill, 200)
    who = f"PID {kill['pid']}" if kill.get("pid") else "a process"
    if kill.get("process"):
        who += f" ({kill['process']})"
    when = f" at {kill['at']}" if kill.get("at") else ""
    where = f" in memory cgroup {kill['memcg']}" if kill.get("memcg") else ""
    return _short(f"{who} killed{when}{where}", 200)


def nearest_route(path: str, routes: list[str]) -> str | None:
    """The real route closest to the probed path: same last segment first, then string similarity."""
    if not routes:
        return None
    last = path.rstrip("/").rsplit("/", 1)[-1]
    same_tail = [r for r in routes if r.rstrip("/").rsplit("/", 1)[-1] == last]
    pool = same_tail or routes
    best = difflib.get_close_matches(path, pool, n=1, cutoff=0.0)
    return best[0] if best else None


def build_context(facts: dict[str, Any], signals: dict[str, Any]) -> _Context:
    """Everything a leaf template may quote, each with a readable fallback."""
    c = _Context(signals)
    cfg = facts.get("config") or {}
    host = cfg.get("host") or {}
    probe = dig(facts, "outside.probe") or {}
    url = cfg.get("url") or probe.get("url") or ""
    parts = urlsplit(url)
    c.update(target=facts.get("target") or "target", url=url, url_host=parts.hostname or "the site")
    c["url_path"] = parts.path or "/"
    http = probe.get("http") or {}
    c["http_status"] = http.get("status") or "no response"
    c["probe_error"] = probe.get("error") or probe.get("reason") or "no error recorded"
    c["probe_summary"] = (
        f"{http['status']} {probe.get('reason') or ''}".strip() if http.get("status") else c["probe_error"]
    )
    remote = probe.get("remote") or {}
    c["remote"] = f"{remote.get('ip')}:{remote.get('port')}" if remote.get("ip") else c["url_host"]
    attempts = dig(facts, "outside.attempts") or []
    c["attempt_reasons"] = ", ".join(str(a.get("reason") or a.get("status")) for a in attempts) or "none recorded"
    failed = [a for a in probe.get("assertions") or [] if not a.get("ok")]
    c["failed_assertions"] = "; ".join(
        f"{a.get('name')}: expected {_short(a.get('expected'), 80)}, got {_short(a.get('actual'), 80)}" for a in failed
    ) or "none"
    tls = probe.get("tls") or {}
    c.update(
        not_after=tls.get("not_after") or "unknown",
        tls_subject=tls.get("subject") or "unknown",
        tls_issuer=tls.get("issuer") or "unknown",
        tls_sans=", ".join(tls.get("sans") or []) or "none",
        tls_verify_error=tls.get("verify_error") or (probe.get("error") if probe.get("phase") == "tls" else None)
        or "unknown",
    )
    days = tls.get("days_to_expiry")
    c["days_to_expiry"] = f"{days:.1f}" if isinstance(days, int | float) else "unknown"
    cf = probe.get("cloudflare") or {}
    c.update(cf_code=cf.get("code") or "none", cf_meaning=cf.get("meaning") or "no Cloudflare code")
    c.update(_response_context(probe, dig(facts, "outside.health") or {}))
    c["method"] = cfg.get("method") or probe.get("method") or "GET"
    c["health_database"] = signals.get("health_database") or "unknown"
    err = facts.get("onbox_error") or {}
    c["onbox_error_detail"] = (
        f"{err.get('reason')}: {err.get('detail') or err.get('status') or ''}".strip(": ") if err else "ran"
    )
    # the box
    backend_host = host.get("backend_host") or "127.0.0.1"
    backend_port = host.get("backend_port") or 8000
    c.update(
        service=host.get("service") or "the backend service",
        backend_port=backend_port,
        backend_addr=f"{backend_host}:{backend_port}",
        direct_url=f"http://{backend_host}:{backend_port}{c['url_path']}",
        nginx_error_log=host.get("nginx_error_log") or "/var/log/nginx/error.log",
    )
    if host.get("backend_socket"):  # a unix socket backend: never described as a TCP port
        c.update(backend_addr=f"unix:{host['backend_socket']}", backend_port=f"unix:{host['backend_socket']}",
                 direct_url=f"--unix-socket {host['backend_socket']} http://localhost{c['url_path']}")
    c.update(_manager_commands(host))
    svc = dig(facts, "onbox.service.value") or {}
    c["service_state"] = (
        f"{svc.get('manager') or 'service manager'} state "
        f"{svc.get('state') or ('running' if svc.get('running') else 'not running')}"
        + (f", {svc['restarts_recent']} recent restarts" if svc.get("restarts_recent") else "")
    )
    c["service_pid"] = svc.get("pid") or "PID"
    port = dig(facts, "onbox.port.value") or {}
    c["port_addresses"] = ", ".join(port.get("addresses") or []) or "nothing"
    c["port_pid"] = port.get("pid") or "PID"
    c["port_owner"] = (
        f"PID {port.get('pid')} ({port.get('process') or 'unknown process'})" if port.get("pid") else "another process"
    )
    c["local_health"] = _http_check(dig(facts, "onbox.local_health.value"))
    c["local_health_database"] = signals.get("local_health_database") or "unknown"
    c["direct_endpoint"] = _http_check(dig(facts, "onbox.local_endpoint.value.direct"))
    c["via_nginx_endpoint"] = _http_check(dig(facts, "onbox.local_endpoint.value.via_nginx"))
    nginx = dig(facts, "onbox.nginx.value") or {}
    c["nginx_state"] = (
        f"running, master PID {nginx.get('master_pid')}" if nginx.get("running") else "no nginx master process"
    )
    c["nginx_test_output"] = _short((nginx.get("config_test_output") or "not run").strip(), 400)
    targets = []
    for t in nginx.get("targets") or []:
        if isinstance(t, dict):
            targets.append(f"unix:{t['unix']}" if t.get("unix") else f"{t.get('host')}:{t.get('port')}")
    c["nginx_targets"] = ", ".join(targets) or "unknown"
    c["proxy_buffer_size"] = nginx.get("proxy_buffer_size") or "default 4k/8k"
    c.update(signature_context(facts, None))
    exc = dig(facts, "onbox.app_log.value.last_exception") or {}
    c["last_exception"] = (
        _short(exc.get("line") or f"{exc.get('type')}: {exc.get('message')}", 300) if exc else "no exception logged"
    )
    c["last_exception_type"] = exc.get("type") or "see its log"
    fw = dig(facts, "onbox.firewall.value.blocking_rules") or []
    c["firewall_rule"] = "; ".join(_short(r.get("rule") if isinstance(r, dict) else r, 200) for r in fw) or "none"
    res = dig(facts, "onbox.resources.value") or {}
    full = [d for d in res.get("disks") or [] if isinstance(d, dict) and (d.get("used_pct") or 0) >= 98]
    c["disk_state"] = "; ".join(f"{d.get('path')} is {d.get('used_pct')}% used" for d in full) or "no full disk"
    fds = res.get("fds") or {}
    c["fd_state"] = "; ".join(
        f"{name} has {v.get('open')} of {v.get('limit')} file descriptors open"
        for name, v in fds.items()
        if isinstance(v, dict)
    ) or "file descriptor use unknown"
    kills = res.get("oom_kills") or []
    c["oom_kill"] = _oom_words(kills[-1]) if kills else "none recorded"
    mem = res.get("mem_available_mb")
    c["mem_available"] = f"{mem} MB" if mem is not None else "unknown"
    se = dig(facts, "onbox.selinux.value") or {}
    c["selinux_state"] = (
        f"mode {se.get('mode') or 'unknown'}, httpd_can_network_connect "
        f"{'unknown' if se.get('httpd_can_network_connect') is None else se['httpd_can_network_connect']}"
        if se.get("present") or se.get("mode") else "not present"
    )
    tcp = dig(facts, "onbox.database.value.tcp") or {}
    c["database_tcp"] = (
        f"TCP {tcp.get('host')}:{tcp.get('port')} {'reachable' if tcp.get('reachable') else 'unreachable'}"
        if tcp
        else "database address not checked"
    )
    c.update(_setup_context(facts))
    routes = dig(facts, "outside.openapi_paths") or dig(facts, "onbox.openapi.value.paths") or []
    near = nearest_route(c["url_path"], [r for r in routes if isinstance(r, str)])
    c["nearest_route"] = near or "unknown"
    c["nearest_route_title"] = f" (did you mean {near}?)" if near else ""
    c["nearest_route_sentence"] = f" The backend's OpenAPI document has {near}, the nearest real route." if near else ""
    c["nearest_route_step"] = f" The nearest real route is {near}." if near else ""
    return c


def signature_context(facts: dict[str, Any], category: str | None) -> dict[str, Any]:
    """The template keys about the nginx error-log line that carries ``category``'s signature."""
    sig = signature_for(facts, category)
    return {
        "signature": sig.get("signature") or "no error-log signature",
        "signature_line": _short(sig.get("core") or "no matching nginx error-log lines", 400),
        "signature_quote": log_line_text(sig),
        "signature_count": sig.get("count") or 0,
        "signature_upstream": sig.get("upstream") or "unknown",
    }


DB_NAMES = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}


def _setup_context(facts: dict[str, Any]) -> dict[str, Any]:
    """What the issue-11 leaves quote: the stale config's two sides, the socket's state, a hang's evidence and the
    database's own words (each only about the target's own setup: its socket or port, its kind of database)."""
    from gatewatch.tree.signals import stale_config

    out: dict[str, Any] = {}
    sc = stale_config(facts)
    out["running_upstreams"] = ", ".join(sc.get("running_upstreams") or []) or "unknown"
    out["disk_upstreams"] = ", ".join(sc.get("disk_upstreams") or []) or "unknown"
    files = [f for f in dig(facts, "onbox.nginx.value.config_files") or [] if isinstance(f, str)]
    out["stale_config_file"] = files[-1] if len(files) == 1 else (", ".join(files[:3]) or "the nginx config")
    sock = dig(facts, "onbox.port.value.socket") or {}
    if sock:
        state = "missing" if not sock.get("exists") else (
            "accepting connections" if sock.get("accepting") else
            "present but refusing connections (left behind by a dead server)" if sock.get("refused") else
            "present, not accepting")
        out["backend_socket_state"] = f"{sock.get('path')}: {state}"
    else:
        out["backend_socket_state"] = "not checked"
    app = dig(facts, "onbox.app_log.value") or {}
    out["worker_timeouts"] = (f"gunicorn: {app.get('worker_timeouts')} WORKER TIMEOUT(s), {app.get('workers_booted')} "
                              "worker(s) booted" if app.get("worker_timeout") else "no worker timeouts logged")
    hang = []
    if dig(facts, "onbox.local_health.value.timed_out"):
        hang.append(_http_check(dig(facts, "onbox.local_health.value")))
    if dig(facts, "onbox.local_endpoint.value.via_nginx.timed_out"):
        hang.append("through nginx on the box " + _http_check(dig(facts, "onbox.local_endpoint.value.via_nginx")))
    if app.get("worker_timeout"):
        hang.append(out["worker_timeouts"])
    status = dig(facts, "outside.probe.http.status")
    if not hang and status in (504, 524):
        hang.append(f"the outside sees {status} (the upstream timed out)")
    out["hang_evidence"] = "; ".join(hang) or "no answer within the timeouts"
    db = dig(facts, "onbox.database.value") or {}
    host = dig(facts, "config.host.database") or {}
    kind = db.get("kind") or host.get("kind") or ("mysql" if host.get("port") in (3306, 33060) else "postgresql")
    name = DB_NAMES.get(kind, "the database")
    message = db.get("message") or app.get("db_error_line")
    out["database_message"] = _short(message, 300) if message else "no database error recorded"
    error = db.get("error")
    out["database_error_title"] = {
        "too_many_connections": ": it has no connections left",
        "auth_failed": ": authentication failed",
        "unknown_database": ": the database does not exist",
        "refused": ": connections refused",
        "timeout": ": connections time out",
    }.get(error or "", "")
    out["database_said"] = (f"{name} says: {_short(message, 300)}" + (" (its max_connections is reached)."
                                                                        if error == "too_many_connections" else ".")
                            if message else "")
    db_host, db_port = db.get("host") or host.get("host") or "127.0.0.1", db.get("port") or host.get("port") or "?"
    tool, sessions = ((f"mysqladmin -h {db_host} -P {db_port} status", "SHOW PROCESSLIST") if kind == "mysql" else
                      (f"pg_isready -h {db_host} -p {db_port}", "pg_stat_activity"))
    out["database_next_step"] = (f"Check {name} at {db_host}:{db_port} (`{tool}`) and its sessions ({sessions}) "
                                 "against max_connections; then the backend's connection settings and pool size.")
    return out


def _quote_value(context: _Context, key: str) -> Any:
    return context[key]


def render(tree: Tree, run: Walk, facts: dict[str, Any], signals: dict[str, Any]) -> dict[str, Any]:
    """The verdict document (docs/data-model.md) for a finished walk.

    ``evidence`` lists every fact the walk looked at, in tree order, each key once; ``deciding`` is the short
    list a notification leads with (gatewatch.tree.evidence).
    """
    context = build_context(facts, signals)
    leaf = tree.leaves.get(run.leaf) if run.leaf != UNKNOWN_LEAF else None
    if leaf is not None:
        context.update(signature_context(facts, leaf.category))
    path = []
    evidence = []
    seen: set[str] = set()
    answers = run.answers if len(run.answers) == len(run.trail) else answers_from_trail(tree, run.trail, run.leaf)
    for node_id, answer in zip(run.trail, answers, strict=False):
        node = tree.nodes[node_id]
        path.append({"node": node_id, "question": node.question, "answer": "yes" if answer else "no"})
        for key, value in ((node.signal, signals.get(node.signal)),
                           *((k, _quote_value(context, k)) for k in node.quote)):
            if key in seen:
                continue
            seen.add(key)
            evidence.append({"fact": key, "value": value, "quote": None, "node": node_id})
    decided = deciding(tree, path, leaf, context, describe_outside(dig(facts, "outside") or {}))
    if leaf is None:
        return {
            "category": "unknown",
            "title": f"{context['target']}: the diagnosis could not finish",
            "explanation": f"The decision tree failed closed: {run.error or 'no leaf reached'}.",
            "confidence": "low",
            "leaf": UNKNOWN_LEAF,
            "path": path,
            "evidence": evidence,
            "deciding": decided,
            "next_steps": ["Run `gatewatch check` on the host and read the report."],
            "never_automate": [],
            "remediation": None,
            "error": run.error,
        }
    sample = context["signature_line"]
    if sample and sample != "no matching nginx error-log lines":
        for item in evidence:
            if item["fact"] == "signature_line":
                item["quote"] = sample
    return {
        "category": leaf.category,
        "title": leaf.title.format_map(context),
        "explanation": " ".join(leaf.explanation.format_map(context).split()),
        "confidence": leaf.confidence,
        "leaf": leaf.id,
        "path": path,
        "evidence": evidence,
        "deciding": decided,
        "next_steps": [step.format_map(context) for step in leaf.next_steps],
        "never_automate": [],
        "remediation": leaf.remediation,
    }
