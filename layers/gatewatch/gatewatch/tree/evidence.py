"""The evidence that decided a verdict, in the order a person reasons: outside, host, the deciding log line.

A verdict's full ``evidence`` list follows the tree (every node visited, every "no" too); a human at 3 a.m. needs
the few facts on which the walk turned *yes* and the on-box facts the verdict's own text names, each once, with a
missing value left out rather than printed as a placeholder. ``deciding`` builds that list from the walk, the
leaf and the template context; ``signature_for`` picks the nginx error-log line that carries the verdict's own
signature and lies nearest to the failure (not merely the earliest line of a burst).
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from gatewatch.tree.signals import dig

# The nginx error-log signatures (gatewatch.onbox) that each verdict category is about. A category not listed
# quotes the primary signature the on-box checks chose.
CATEGORY_SIGNATURES: dict[str, tuple[str, ...]] = {
    "backend_down": ("connection_refused", "no_live_upstreams"),
    "backend_not_listening": ("connection_refused", "no_live_upstreams"),
    "backend_crash_loop": ("connection_refused", "upstream_closed", "connection_reset", "no_live_upstreams"),
    "port_conflict": ("connection_refused", "no_live_upstreams"),
    "out_of_memory": ("connection_refused", "upstream_closed", "connection_reset", "no_live_upstreams"),
    "backend_hung": ("upstream_timeout",),
    "proxy_upstream_mismatch": ("connection_refused", "socket_missing", "no_route_to_host", "connect_timeout",
                                "resolve_failed", "cannot_assign_address"),
    "proxy_header_too_big": ("header_too_big",),
    "proxy_permission_denied": ("permission_denied",),
    "firewall_blocked": ("connection_refused", "no_route_to_host", "connect_timeout"),
    "fd_exhausted": ("too_many_open_files", "resource_unavailable"),
    "disk_full": ("no_space",),
    "proxy_keepalive_reset": ("connection_reset", "upstream_closed"),
    "transient": ("connection_reset", "upstream_closed", "connection_refused"),
}

# Context keys (gatewatch.tree.verdict.build_context) that are facts, with the label a person reads.
OUTSIDE_LABELS = {
    "attempt_reasons": "Attempts",
    "http_status": "HTTP status",
    "probe_error": "Outside error",
    "failed_assertions": "Failed checks",
    "cf_code": "Cloudflare code",
    "cf_meaning": "Cloudflare says",
    "tls_verify_error": "TLS error",
    "not_after": "Certificate valid until",
    "days_to_expiry": "Days until the certificate expires",
    "health_database": "Public health says the database is",
    "remote": "Address",
    "response_server": "Server header",
    "response_ray": "Cloudflare ray",
    "response_body": "Response body",
    "health_summary": "Health endpoint",
    "unasked": "Not asked (no host configured)",
}
HOST_LABELS = {
    "onbox_error_detail": "On-box checks",
    "nginx_state": "nginx",
    "nginx_test_output": "nginx -t",
    "firewall_rule": "Firewall rule",
    "selinux_state": "SELinux",
    "nginx_targets": "nginx proxies to",
    "backend_addr": "Backend address",
    "port_addresses": "Backend listens on",
    "port_owner": "Port held by",
    "service_state": "Service",
    "last_exception": "Last exception",
    "oom_kill": "OOM kill",
    "disk_state": "Disk",
    "fd_state": "File descriptors",
    "local_health": "Local health check",
    "local_health_status": "Local health status",
    "local_health_database": "Local health says the database is",
    "database_tcp": "Database",
    "direct_endpoint": "Endpoint straight at the backend",
    "via_nginx_endpoint": "Endpoint through nginx on the box",
    "mem_available": "Memory available",
    "signature_count": "Matching error-log lines",
    "signature_upstream": "Upstream in the log",
    "proxy_buffer_size": "proxy_buffer_size",
    "nearest_route": "Nearest real route",
}
LOG_KEY = "signature_line"
# Values that mean "nothing known": such a fact is left out instead of printed.
EMPTY_VALUES = {
    "", "unknown", "none", "nothing", "not checked", "no error recorded", "none recorded", "no Cloudflare code",
    "no matching nginx error-log lines", "no error-log signature", "no exception logged", "no full disk",
    "file descriptor use unknown", "database address not checked", "another process", "PID", "ran",
    "default 4k/8k", "0",
}


def _present(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    text = str(value).strip()
    return text not in EMPTY_VALUES and "None" not in text.split() and " ? " not in f" {text} "


def parse_log_time(line: str) -> datetime | None:
    """nginx's ``YYYY/MM/DD HH:MM:SS`` at the start of an error-log line (the host's local time)."""
    try:
        return datetime.strptime(line[:19], "%Y/%m/%d %H:%M:%S")
    except (ValueError, TypeError):
        return None


def _checks_finished(facts: dict[str, Any]) -> datetime | None:
    meta = dig(facts, "onbox.meta") or {}
    started = meta.get("collected_at")
    if not started:
        return None
    try:
        moment = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return None
    duration = meta.get("duration_ms")
    if isinstance(duration, int | float):
        moment += timedelta(milliseconds=duration)
    # nginx logs in the host's local time; the report gives its offset when it knows it (else UTC, as on servers)
    offset = meta.get("utc_offset_s")
    if isinstance(offset, int | float):
        moment += timedelta(seconds=offset)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _age_words(seconds: float) -> str:
    if seconds < -1:
        return "logged while the checks ran"
    seconds = max(seconds, 0)
    if seconds < 90:
        return f"{seconds:.0f} s before the checks finished"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min before the checks finished"
    return f"{seconds / 3600:.1f} h before the checks finished"


def signature_for(facts: dict[str, Any], category: str | None) -> dict[str, Any]:
    """The error-log signature entry that carries the verdict's signature, nearest to the failure.

    Among the entries whose signature belongs to ``category`` the one last seen latest wins; its latest line
    (``last_sample`` when the on-box report has it, else ``sample``) is quoted with its time and age. Without a
    matching entry the primary signature the on-box checks chose is used. Empty when the log has nothing.
    """
    entries = [s for s in dig(facts, "onbox.nginx.error_signatures") or [] if isinstance(s, dict)]
    wanted = CATEGORY_SIGNATURES.get(category or "")
    chosen: dict[str, Any] | None = None
    if wanted:
        matching = [s for s in entries if s.get("signature") in wanted]
        if matching:
            chosen = max(matching, key=lambda s: (str(s.get("last") or s.get("first") or ""),
                                                  -wanted.index(s["signature"])))
    if chosen is None:
        primary = dig(facts, "onbox.nginx.primary_signature")
        chosen = next((s for s in entries if s.get("signature") == primary), None)
    if chosen is None:
        return {}
    line = chosen.get("last_sample") or chosen.get("sample") or ""
    out = dict(chosen)
    out["line"] = line
    out["core"] = (chosen.get("last_message") if chosen.get("last_sample") else chosen.get("message")) \
        or core_message(line)
    when = parse_log_time(line)
    finished = _checks_finished(facts)
    if when is not None:
        out["logged_at"] = when.strftime("%Y-%m-%d %H:%M:%S")
        if finished is not None:
            out["age_s"] = round((finished - when).total_seconds(), 1)
    return out


_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: (?:\*\d+ )?")


def core_message(line: str) -> str:
    """nginx's own words: the line without its time/pid prefix and the request fields after ``, client:``."""
    text = _LOG_PREFIX.sub("", str(line or "").strip())
    return text.split(", client: ", 1)[0].strip()


def log_line_text(sig: dict[str, Any]) -> str:
    """``"<line>" (logged 14:18:00, 3 s before the checks finished)``, or '' without a line."""
    line = " ".join(str(sig.get("line") or "").split())
    if not line:
        return ""
    if len(line) > 400:
        line = line[:397] + "..."
    when = []
    if sig.get("logged_at"):
        when.append(f"logged {sig['logged_at']}")
    if isinstance(sig.get("age_s"), int | float):
        when.append(_age_words(sig["age_s"]))
    return f'"{line}"' + (f" ({', '.join(when)})" if when else "")


def _template_keys(*templates: str) -> list[str]:
    keys: list[str] = []
    for template in templates:
        for _, name, _, _ in string.Formatter().parse(template or ""):
            if name and name not in keys:
                keys.append(name)
    return keys


def deciding(tree: Any, path: list[dict[str, Any]], leaf: Any, context: dict[str, Any],
             outside_line: str) -> list[dict[str, Any]]:
    """The facts that decided, each once: ``[{"fact", "label", "text", "node"}]`` in reasoning order.

    Order: what the outside saw (``outside_line`` first), then the host, then the deciding log line. A fact is
    taken from a node the walk answered *yes* (its quoted keys, or its question when it quotes nothing) or from
    the leaf's own texts; a value that says nothing (unknown, none, a placeholder) is left out.
    """
    outside: list[dict[str, Any]] = []
    host: list[dict[str, Any]] = []
    log: list[dict[str, Any]] = []
    seen_keys: set[str] = set()
    seen_texts: set[str] = set()

    def add(key: str, text: str, node: str | None, label: str | None = None) -> None:
        text = " ".join(str(text).split())
        if key in seen_keys or text in seen_texts or not _present(text):
            return
        if outside and key in OUTSIDE_LABELS and f" {text} " in f" {outside[0]['text']} ":
            return  # already said in what the outside sees
        seen_keys.add(key)
        seen_texts.add(text)
        item = {"fact": key, "label": label or OUTSIDE_LABELS.get(key) or HOST_LABELS.get(key) or key,
                "text": text, "node": node}
        if key == LOG_KEY:
            log.append(item)
        elif key in OUTSIDE_LABELS or key == "outside":
            outside.append(item)
        else:
            host.append(item)

    if outside_line:
        add("outside", outside_line, None, "What the outside sees")
    for step in path:
        if step.get("answer") != "yes":
            continue
        node = tree.nodes.get(step["node"])
        if node is None:
            continue
        keys = [k for k in node.quote if k in OUTSIDE_LABELS or k in HOST_LABELS or k == LOG_KEY]
        if not keys:
            add(f"node:{node.id}", f"{node.question.rstrip('?')}: yes", node.id, "Check")
        for key in keys:
            add(key, context.get(key, ""), node.id)
    if leaf is not None:
        for key in _template_keys(leaf.title, leaf.explanation):
            if key in OUTSIDE_LABELS or key in HOST_LABELS or key == LOG_KEY:
                add(key, context.get(key, ""), None)
    for item in log:
        item["label"] = "nginx error log"
        item["text"] = context.get("signature_quote") or item["text"]
    return outside + host + log


def describe_outside(outside: dict[str, Any]) -> str:
    """One sentence for what the outside saw; a missing value is left out, never printed as a placeholder."""
    probe = outside.get("probe") or {}
    http = probe.get("http") or {}
    timings = probe.get("timings_ms") or {}
    url = probe.get("url")
    bits = [f"{probe.get('method') or 'GET'} {url}" if url else "The probe"]
    if http.get("status"):
        bits.append(f"answered {http['status']}" + (f" {http['reason']}" if http.get("reason") else ""))
    elif probe.get("reason"):
        bits.append(f"failed ({probe['reason']}" + (f" in phase {probe['phase']})" if probe.get("phase") else ")"))
    if probe.get("error") and not http.get("status"):
        bits.append(f"- {probe['error']}")
    if isinstance(timings.get("total"), int | float):
        bits.append(f"after {timings['total']:.0f} ms")
    cf = probe.get("cloudflare") or {}
    if cf.get("code"):
        bits.append(f"with Cloudflare {cf['code']}" + (f" ({cf['meaning']})" if cf.get("meaning") else ""))
    attempts = outside.get("attempts") or []
    if len(attempts) > 1:
        failed = sum(1 for a in attempts if not a.get("ok"))
        bits.append(f"({failed} of {len(attempts)} attempts failed)")
    if outside.get("transient"):
        bits.append("- the retry passed")
    return " ".join(bits)
