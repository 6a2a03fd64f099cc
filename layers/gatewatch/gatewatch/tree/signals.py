"""Signals: the flat, typed view of a facts document that the decision tree asks its questions of.

Both walkers read signals, not raw facts: the Python walker here and the Step Functions Choice states (whose
JSONPath comparisons fail on a missing path or a wrong type). So every signal always exists with its declared
type; when a fact is missing or unreadable the signal takes its default and the reason is kept in ``errors``.
A new signal is one function here, registered with ``@signal``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TYPES = {"bool": bool, "number": (int, float), "string": str}


@dataclass(frozen=True)
class Signal:
    name: str
    type: str  # bool | number | string
    default: Any
    doc: str
    fn: Callable[[dict[str, Any]], Any]


SIGNALS: dict[str, Signal] = {}


def signal(type_: str, default: Any, doc: str):
    def register(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        SIGNALS[fn.__name__] = Signal(fn.__name__, type_, default, doc, fn)
        return fn

    return register


def dig(doc: Any, path: str, default: Any = None) -> Any:
    """``dig(facts, "onbox.nginx.value.running")``: None-safe dotted lookup (integers index lists)."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else None
        else:
            return default
        if cur is None:
            return default
    return cur


def _check(onbox_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda facts: dig(facts, f"onbox.{onbox_name}") or {}


def _value(facts: dict[str, Any], check: str, key: str) -> Any:
    return dig(facts, f"onbox.{check}.value.{key}")


def _tri(value: Any) -> str:
    """True/False/None as yes/no/unknown: a Choice state can test all three."""
    return "unknown" if value is None else ("yes" if value else "no")


# -- the outside view -----------------------------------------------------------------------------------------


@signal("string", "down", "outside status after confirmation: up, degraded or down")
def outside_status(f):
    return dig(f, "outside.status")


@signal("bool", False, "an attempt failed but the confirmation retry passed")
def outside_transient(f):
    return bool(dig(f, "outside.transient"))


@signal("string", "", "the probe's failure reason (the fixed enum), empty when it passed")
def outside_reason(f):
    return dig(f, "outside.probe.reason") or ""


@signal("number", 0, "HTTP status the outside saw (0: no response)")
def http_status(f):
    return dig(f, "outside.probe.http.status") or 0


@signal("bool", False, "the response came from the Cloudflare edge")
def cf_edge(f):
    return bool(dig(f, "outside.probe.cloudflare.edge"))


@signal("number", 0, "Cloudflare's 52x/530 code when the edge says the origin failed (0: none)")
def cf_code(f):
    return dig(f, "outside.probe.cloudflare.code") or 0


@signal("bool", False, "the site answered over TLS and its certificate details are known")
def tls_present(f):
    return bool(dig(f, "outside.probe.tls.not_after"))


@signal("number", 9999, "days until the public certificate expires")
def tls_days_to_expiry(f):
    return dig(f, "outside.probe.tls.days_to_expiry")


@signal("bool", False, "the public certificate expires within the target's warn_days (default 14)")
def tls_expiring(f):
    days = dig(f, "outside.probe.tls.days_to_expiry")
    warn = dig(f, "config.certificate_warn_days") or 14
    return isinstance(days, int | float) and days < warn


@signal("bool", False, "the health endpoint is configured and passed")
def health_ok(f):
    return bool(dig(f, "outside.health.ok"))


@signal("string", "", "the `database` field of the public health endpoint's JSON")
def health_database(f):
    value = dig(f, "outside.health.http.json.database")
    return value if isinstance(value, str) else ""


# -- could we look at the box? -------------------------------------------------------------------------------


@signal("bool", False, "the on-box checks ran and returned a report")
def onbox_available(f):
    return isinstance(f.get("onbox"), dict) and bool(f["onbox"])


@signal("string", "not_configured", "why there is no on-box report: not_configured, unreachable, timeout, ...")
def onbox_error(f):
    if isinstance(f.get("onbox"), dict) and f["onbox"]:
        return ""
    return dig(f, "onbox_error.reason") or "not_configured"


# -- the backend service and its port ------------------------------------------------------------------------


@signal("string", "unknown", "the backend service is running: yes, no or unknown")
def service_running(f):
    return _tri(_value(f, "service", "running"))


@signal("bool", False, "the service keeps restarting (BACKOFF/FATAL, restarts in the last minutes)")
def service_crash_loop(f):
    return bool(_value(f, "service", "crash_loop"))


@signal("bool", False, "something listens on the backend port")
def port_listening(f):
    return bool(_value(f, "port", "listening"))


@signal("bool", False, "the backend port is held by a process that is not the service")
def port_foreign_owner(f):
    return bool(_value(f, "port", "listening")) and _value(f, "port", "owned_by_service") is False


# -- the backend answering locally ---------------------------------------------------------------------------


@signal("number", 0, "status of the local health check straight to the backend (0: no answer)")
def local_health_status(f):
    return _value(f, "local_health", "status") or 0


@signal("bool", False, "the local health check timed out (the backend accepts but does not answer)")
def local_health_timed_out(f):
    return bool(_value(f, "local_health", "timed_out"))


@signal("string", "", "the `database` field of the local health JSON")
def local_health_database(f):
    value = dig(f, "onbox.local_health.value.json.database")
    return value if isinstance(value, str) else ""


@signal("number", 0, "status of the probed endpoint straight to the backend (0: no answer)")
def direct_status(f):
    return dig(f, "onbox.local_endpoint.value.direct.status") or 0


@signal("bool", False, "the probed endpoint timed out straight to the backend")
def direct_timed_out(f):
    return bool(dig(f, "onbox.local_endpoint.value.direct.timed_out"))


@signal("number", 0, "status of the probed endpoint through nginx on the loopback (0: no answer)")
def via_nginx_status(f):
    return dig(f, "onbox.local_endpoint.value.via_nginx.status") or 0


# -- nginx ---------------------------------------------------------------------------------------------------


@signal("string", "unknown", "nginx is running: yes, no or unknown")
def nginx_running(f):
    return _tri(_value(f, "nginx", "running"))


@signal("string", "unknown", "`nginx -t` passes: yes, no or unknown")
def nginx_config_ok(f):
    return _tri(_value(f, "nginx", "config_test_ok"))


@signal("string", "unknown", "nginx's upstreams point at the backend's address and port: yes, no or unknown")
def nginx_matches_backend(f):
    return _tri(_value(f, "nginx", "matches_backend"))


@signal("string", "", "the primary nginx error-log signature of the last minutes (empty: none)")
def nginx_primary_signature(f):
    return dig(f, "onbox.nginx.primary_signature") or ""


@signal("bool", False, "a unix socket that nginx proxies to does not exist")
def nginx_socket_missing(f):
    sockets = _value(f, "nginx", "unix_sockets") or []
    return any(isinstance(s, dict) and s.get("exists") is False for s in sockets)


@signal("bool", False, "nginx runs with a config older than the one on disk")
def nginx_config_newer(f):
    return bool(_value(f, "nginx", "config_newer_than_master"))


@signal("bool", False, "nginx tries [::1] (localhost) but the backend listens on IPv4 only")
def upstream_ipv6_mismatch(f):
    listens_v6 = bool(_value(f, "port", "ipv6"))
    for sig in dig(f, "onbox.nginx.error_signatures") or []:
        if isinstance(sig, dict) and sig.get("signature") == "connection_refused":
            if "[::1]" in str(sig.get("upstream") or "") and not listens_v6:
                return True
    targets = _value(f, "nginx", "targets") or []
    uses_localhost = any(isinstance(t, dict) and t.get("host") == "localhost" for t in targets)
    return uses_localhost and not listens_v6 and bool(_value(f, "port", "ipv4")) and _has_sig(f, "connection_refused")


def _has_sig(f: dict[str, Any], name: str) -> bool:
    return any(isinstance(s, dict) and s.get("signature") == name for s in dig(f, "onbox.nginx.error_signatures") or [])


# -- the app's own log ---------------------------------------------------------------------------------------


@signal("bool", False, "the app log shows a missing module (ModuleNotFoundError/ImportError)")
def app_module_not_found(f):
    return bool(_value(f, "app_log", "module_not_found"))


@signal("bool", False, "the app log shows [Errno 98] Address already in use")
def app_address_in_use(f):
    return bool(_value(f, "app_log", "address_in_use"))


@signal("bool", False, "the app log shows database connection errors")
def app_db_error(f):
    return bool(_value(f, "app_log", "db_error"))


# -- firewall, resources, SELinux, database ------------------------------------------------------------------


@signal("bool", False, "a firewall rule drops or rejects the backend port")
def firewall_blocks_backend(f):
    return bool(_value(f, "firewall", "blocks_backend"))


@signal("bool", False, "a firewall rule drops or rejects ports 80/443")
def firewall_blocks_web(f):
    return bool(_value(f, "firewall", "blocks_web"))


@signal("bool", False, "the kernel's OOM killer killed the backend recently")
def oom_killed_backend(f):
    return bool(_value(f, "resources", "oom_killed_backend"))


@signal("bool", False, "a watched filesystem is full (space or inodes)")
def disk_full(f):
    return bool(_value(f, "resources", "disk_full"))


@signal("bool", False, "the backend or nginx is at its file-descriptor limit")
def fd_exhausted(f):
    return bool(_value(f, "resources", "fd_exhausted")) or _has_sig(f, "too_many_open_files")


@signal("bool", False, "SELinux is enforcing and forbids nginx to connect to the network")
def selinux_blocks_proxy(f):
    mode = str(_value(f, "selinux", "mode") or "").lower()
    return mode == "enforcing" and (
        _value(f, "selinux", "httpd_can_network_connect") is False or (_value(f, "selinux", "denials") or 0) > 0
    )


@signal("string", "unknown", "the configured database answers a TCP connect: yes, no or unknown")
def database_reachable(f):
    return _tri(dig(f, "onbox.database.value.tcp.reachable"))


# -- the host's setup: unix socket backends, stale configs, hangs, databases (issue 11) -----------------------


@signal("bool", False, "the backend listens on a unix socket (host.backend_socket), not a TCP port")
def backend_is_socket(f):
    return bool(dig(f, "config.host.backend_socket")) or _value(f, "port", "kind") == "unix"


@signal("bool", True, "the backend listens on a TCP port (TCP-only questions apply)")
def backend_on_tcp(f):
    return not backend_is_socket(f)


@signal("bool", False, "the backend is on a unix socket and crash-looping, or not running (its socket missing or "
                       "refusing)")
def backend_socket_dead(f):
    if not backend_is_socket(f):
        return False
    if _value(f, "service", "crash_loop"):
        return True  # a gunicorn master re-binds the socket at every restart: its state says nothing then
    if _value(f, "service", "running") is True:
        return False
    sock = _value(f, "port", "socket")
    if isinstance(sock, dict):
        return not sock.get("accepting")
    return not _value(f, "port", "listening")


def upstream_key(url: str) -> str | None:
    """An error log's ``upstream: "http://127.0.0.1:8000/x"`` as ``127.0.0.1:8000`` (``unix:/path`` for sockets)."""
    rest = str(url).split("://", 1)[-1]
    if rest.startswith("unix:"):
        return "unix:" + rest[5:].split(":")[0]
    hostport = rest.split("/")[0]
    if not hostport:
        return None
    return hostport if ":" in hostport.rsplit("]", 1)[-1] else f"{hostport}:80"


def stale_config(f: dict[str, Any]) -> dict[str, Any]:
    """The running nginx's upstreams (its error log) against the config on disk (``nginx -T``): the on-box
    ``nginx.stale_config`` when the checks report it, else worked out from the error signatures and targets."""
    reported = _value(f, "nginx", "stale_config")
    if isinstance(reported, dict) and reported:
        return reported
    running: list[str] = []
    for sig in dig(f, "onbox.nginx.error_signatures") or []:
        key = upstream_key(sig.get("upstream") or "") if isinstance(sig, dict) and sig.get("upstream") else None
        if key and key not in running:
            running.append(key)
    disk = []
    for t in _value(f, "nginx", "targets") or []:
        if isinstance(t, dict):
            disk.append(f"unix:{t['unix']}" if t.get("unix") else f"{t.get('host')}:{t.get('port')}")
    return {"config_newer_than_master": _value(f, "nginx", "config_newer_than_master"), "running_upstreams": running,
            "disk_upstreams": disk, "differs": bool(running and disk) and not set(running) & set(disk)}


@signal("bool", False, "the running nginx is older than its config on disk, dials other upstreams than the disk "
                       "names, and requests through it fail: the difference explains the failure")
def nginx_stale_config_explains(f):
    sc = stale_config(f)
    newer = sc.get("config_newer_than_master")
    if newer is None:
        newer = _value(f, "nginx", "config_newer_than_master")
    if not (newer and sc.get("differs")) or _value(f, "nginx", "running") is not True:
        return False
    via = dig(f, "onbox.local_endpoint.value.via_nginx.status") or 0
    outside = dig(f, "outside.probe.http.status") or 0
    return via == 0 or via >= 500 or outside == 0 or outside >= 500


@signal("bool", False, "the backend accepts but never answers: directly, through nginx on the box (upstream timed "
                       "out), or gunicorn's WORKER TIMEOUT, while the service runs")
def backend_hangs(f):
    if _value(f, "local_health", "timed_out") or dig(f, "onbox.local_endpoint.value.direct.timed_out"):
        return True
    if _value(f, "service", "running") is not True:
        return False
    if _value(f, "app_log", "worker_timeout"):
        return True
    timed_out_upstream = (dig(f, "onbox.nginx.primary_signature") or "") == "upstream_timeout"
    via_timed_out = bool(dig(f, "onbox.local_endpoint.value.via_nginx.timed_out"))
    outside = dig(f, "outside.probe.http.status") or 0
    return timed_out_upstream and (via_timed_out or outside in (504, 524))


@signal("string", "", "the database's own error from the on-box handshake: refused, timeout, auth_failed, "
                      "unknown_database, too_many_connections (empty: none)")
def database_error(f):
    value = dig(f, "onbox.database.value.error")
    return value if isinstance(value, str) else ""


def derive(facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every signal, typed; a signal whose fact is missing or broken takes its default (reason in errors)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, sig in SIGNALS.items():
        try:
            value = sig.fn(facts)
        except Exception as exc:  # noqa: BLE001 - a broken fact must not stop the diagnosis; it is reported
            errors[name] = f"{type(exc).__name__}: {exc}"
            value = None
        if value is None:
            value = sig.default
        expected = TYPES[sig.type]
        if sig.type == "number" and isinstance(value, bool) or not isinstance(value, expected):
            errors.setdefault(name, f"expected {sig.type}, got {value!r}")
            value = sig.default
        values[name] = value
    return values, errors
