"""Render an OnboxReport for a human: one line per check (status, the values that matter, first evidence)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatewatch.onbox import CHECK_NAMES

MARKS = {"ok": "ok  ", "fail": "FAIL", "unknown": "??  "}


def _http(h: dict[str, Any] | None) -> str:
    if not h:
        return "-"
    if h.get("status") is not None:
        return f"{h['status']} in {h.get('latency_ms') or 0:.0f} ms" + (" (timed out)" if h.get("timed_out") else "")
    if h.get("timed_out"):
        return "timed out"
    if h.get("refused"):
        return "refused"
    return h.get("error") or "no answer"


def _service(v: dict[str, Any], c: dict[str, Any]) -> str:
    parts = [f"{v.get('manager')} {v.get('name') or v.get('process_match') or ''}".strip(), str(v.get("state"))]
    if v.get("pid"):
        parts.append(f"pid {v['pid']}")
    if v.get("uptime_s") is not None:
        parts.append(f"up {v['uptime_s']:.0f}s")
    if v.get("restarts_recent"):
        parts.append(f"{v['restarts_recent']} restart(s)")
    if v.get("app_server"):
        parts.append(f"{v['app_server']}" + (f" with {v['workers']} worker(s)" if v.get("workers") else ""))
    if v.get("crash_loop"):
        parts.append("CRASH LOOP")
    return ", ".join(parts)


def _port(v: dict[str, Any], c: dict[str, Any]) -> str:
    if not v.get("listening"):
        return "not listening"
    owner = {True: "owned by the service", False: "NOT the service", None: "owner unknown"}[v.get("owned_by_service")]
    return f"{' '.join(v.get('addresses', []))} pid {v.get('pid')} ({v.get('process')}), {owner}"


def _endpoint(v: dict[str, Any], c: dict[str, Any]) -> str:
    return f"direct {_http(v.get('direct'))}; via nginx {_http(v.get('via_nginx'))}"


def _nginx(v: dict[str, Any], c: dict[str, Any]) -> str:
    parts = [f"running pid {v['master_pid']}" if v.get("running") else "NOT running"]
    test = v.get("config_test_ok")
    parts.append({True: "config ok", False: "CONFIG INVALID", None: "config untested"}[test])
    if v.get("matches_backend") is False:
        parts.append("UPSTREAM MISMATCH")
    if v.get("config_newer_than_master"):
        parts.append("config changed since load")
    if c.get("primary_signature"):
        counts = {s["signature"]: s["count"] for s in c.get("error_signatures", [])}
        parts.append(f"error log: {c['primary_signature']} x{counts.get(c['primary_signature'], '?')}")
    return ", ".join(parts)


def _app_log(v: dict[str, Any], c: dict[str, Any]) -> str:
    exc = v.get("last_exception")
    flags = [k for k in ("address_in_use", "module_not_found", "db_error") if v.get(k)]
    text = f"{exc['type']}: {exc['message']}" if exc else "no exception"
    return f"{v.get('source')}: {text}" + (f" [{', '.join(flags)}]" if flags else "")


def _firewall(v: dict[str, Any], c: dict[str, Any]) -> str:
    return f"{v.get('tool')}: {len(v.get('blocking_rules') or [])} blocking rule(s)" + (
        " (backend port)" if v.get("blocks_backend") else "") + (" (web ports)" if v.get("blocks_web") else "")


def _resources(v: dict[str, Any], c: dict[str, Any]) -> str:
    parts = [f"mem {v.get('mem_available_mb')} MB free", f"load {v.get('load1')}/{v.get('cores')} cores"]
    for flag in ("disk_full", "fd_exhausted", "oom_killed_backend"):
        if v.get(flag):
            parts.append(flag.upper())
    return ", ".join(parts)


def _selinux(v: dict[str, Any], c: dict[str, Any]) -> str:
    if not v.get("present"):
        return "not present"
    boolean = v.get("httpd_can_network_connect")
    return f"{v.get('mode')}, httpd_can_network_connect={boolean}, {v.get('denials')} denial(s)"


def _database(v: dict[str, Any], c: dict[str, Any]) -> str:
    tcp = v.get("tcp")
    where = "-" if not tcp else f"{tcp['host']}:{tcp['port']} " + ("reachable" if tcp.get("reachable") else
                                                                   f"unreachable ({tcp.get('error')})")
    said = f"; {v.get('kind')} says {v['error']}: {v.get('message')}" if v.get("error") else ""
    return f"health says {v.get('from_health')}; tcp {where}{said}"


SUMMARIES: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "service": _service, "port": _port, "local_health": lambda v, c: _http(v), "local_endpoint": _endpoint,
    "nginx": _nginx, "app_log": _app_log, "firewall": _firewall, "resources": _resources, "selinux": _selinux,
    "database": _database,
}


def render(report: dict[str, Any]) -> str:
    """The report as text; a check's error (why it is unknown) follows its line."""
    if "error" in report and "meta" in report and not any(k in report for k in CHECK_NAMES):
        return f"on-box checks could not run: {report['error']}"
    meta = report.get("meta", {})
    lines = [f"on-box checks on {meta.get('host')} at {meta.get('collected_at')} "
             f"({meta.get('duration_ms', 0):.0f} ms, python {meta.get('python')})"
             + (" [output truncated]" if meta.get("truncated") else "")]
    for name in CHECK_NAMES:
        check = report.get(name)
        if not isinstance(check, dict):
            continue
        value = check.get("value") or {}
        try:
            summary = SUMMARIES[name](value, check) if value and check.get("status") != "unknown" else ""
        except (KeyError, TypeError, ValueError):
            summary = ""
        lines.append(f"{MARKS.get(check.get('status'), '??  ')} {name:<15} {summary}".rstrip())
        if check.get("error"):
            lines.append(f"{'':21}error: {check['error']}")
        evidence = check.get("evidence") or []
        if evidence:
            lines.append(f"{'':21}- {evidence[0]}")
    return "\n".join(lines)


def overall_exit(report: dict[str, Any]) -> int:
    """0 when every check is ok or unknown, 1 when any check fails."""
    return 1 if any(isinstance(report.get(n), dict) and report[n].get("status") == "fail" for n in CHECK_NAMES) else 0
