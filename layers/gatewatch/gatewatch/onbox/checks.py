#!/usr/bin/env python3
"""gatewatch on-box checks: what an on-call engineer looks at on a host that answers 502, as one JSON document.

This file is deliberately ONE stdlib-only script for the host's own python3 (3.8 or newer), so the same text can
run as a local subprocess or inside an SSM Command document. It takes ONE argument, a JSON object or ``b64:`` +
base64 of it, and prints one JSON document (the OnboxReport of docs/data-model.md), always valid and always under
SSM's 24,000-character stdout limit.

Read-only: it runs only inspection commands (systemctl show, supervisorctl status/tail, ss, nginx -t/-T,
iptables -S, nft list ruleset, journalctl, dmesg) and reads files from the end with a byte bound. Every command
and network call has its own timeout; the checks run concurrently in threads under one global budget, and a
check that overruns is reported as ``unknown`` with error "timed out". Missing tools fall back to /proc;
missing permission is ``unknown`` with the reason.

Exit codes: 0 a report was printed (the checks' own statuses are data), 2 bad parameters (an error document
naming the field), 3 the script itself failed (still a valid JSON document).
"""

# The script must run on python 3.8: socket.timeout is not yet TimeoutError there (UP041), and one
# %-formatting style keeps the text free of newer f-string forms (UP031).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import base64
import configparser
import datetime as _dt
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SCHEMA = 1
VERSION = "1"
MAX_OUTPUT_CHARS = 23_500  # SSM keeps 24,000; leave room for a trailing newline and safety
GLOBAL_BUDGET_S = 8.0  # every check finishes (or is abandoned) by then; the whole run stays under 10 s
LOG_TAIL_BYTES = 2 * 1024 * 1024
APP_LOG_TAIL_BYTES = 512 * 1024
APP_LOG_LINES = 400
HTTP_MAX_BYTES = 256 * 1024
HEALTH_TIMEOUT_S = 3.0
ENDPOINT_TIMEOUT_S = 4.0
DB_CONNECT_TIMEOUT_S = 2.0
CMD_TIMEOUT_S = 3.0
EVIDENCE_ITEMS = 8
EVIDENCE_CHARS = 300

EXIT_REPORT, EXIT_BAD_PARAMS, EXIT_INTERNAL = 0, 2, 3

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"

# ---------------------------------------------------------------------------------------------------------------
# Parameters: validated again here, because this script may be handed anything by whoever runs it.

SERVICE_RE = re.compile(r"^[A-Za-z0-9_.@:][A-Za-z0-9_.@:-]{0,127}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]{0,4095}$")
BIN_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PROCESS_MATCH_RE = re.compile(r"^[A-Za-z0-9 _./:=@-]{1,200}$")
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,2047}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MANAGERS = ("systemd", "supervisor", "command")


class ParamError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__("%s: %s" % (field, message))
        self.field = field
        self.message = message


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ip_or_localhost(v: str) -> bool:
    if v == "localhost":
        return True
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, v)
            return True
        except (OSError, ValueError):
            pass
    return False


def _safe_path(v) -> bool:
    return isinstance(v, str) and bool(PATH_RE.match(v)) and "/../" not in v + "/"


def _opt(kind):
    def check(v):
        return v is None or kind(v)

    return check


# name -> (default, predicate, message shown when the predicate fails)
PARAM_SPEC = {
    "service": (None, _opt(lambda v: isinstance(v, str) and bool(SERVICE_RE.match(v))),
                "must be a service name of letters, digits and . _ @ : - not starting with '-'"),
    "service_manager": ("systemd", lambda v: v in MANAGERS, "must be one of systemd, supervisor, command"),
    "supervisor_config": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "process_match": (None, _opt(lambda v: isinstance(v, str) and bool(PROCESS_MATCH_RE.match(v))),
                      "must be plain text of letters, digits, space and _ . / : = @ -"),
    "backend_host": ("127.0.0.1", lambda v: isinstance(v, str) and _ip_or_localhost(v),
                     "must be an IP address or localhost"),
    "backend_port": (8000, lambda v: _is_int(v) and 1 <= v <= 65535, "must be an integer from 1 to 65535"),
    "health_path": ("/health", lambda v: isinstance(v, str) and bool(URL_PATH_RE.match(v)),
                    "must be a URL path starting with '/'"),
    "nginx_port": (80, lambda v: _is_int(v) and 1 <= v <= 65535, "must be an integer from 1 to 65535"),
    "nginx_bin": ("nginx", lambda v: isinstance(v, str) and (bool(BIN_RE.match(v)) or _safe_path(v)),
                  "must be a program name or an absolute path of safe characters"),
    "nginx_conf": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "nginx_prefix": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "nginx_error_log": ("/var/log/nginx/error.log", _safe_path, "must be an absolute path of safe characters"),
    "app_log": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "log_window_minutes": (15, lambda v: _is_int(v) and 1 <= v <= 1440, "must be an integer from 1 to 1440"),
    "extra_paths": ([], lambda v: isinstance(v, list) and len(v) <= 20 and all(_safe_path(p) for p in v),
                    "must be a list of at most 20 absolute paths of safe characters"),
    "database": (None, _opt(lambda v: isinstance(v, dict) and set(v) <= {"host", "port"}
                            and isinstance(v.get("host", "127.0.0.1"), str)
                            and bool(HOSTNAME_RE.match(v.get("host", "127.0.0.1")))
                            and _is_int(v.get("port", 5432)) and 1 <= v.get("port", 5432) <= 65535),
                 "must be an object {host: name or IP, port: 1-65535}"),
    "endpoint_path": ("/", lambda v: isinstance(v, str) and bool(URL_PATH_RE.match(v)),
                      "must be a URL path (and query) starting with '/'"),
    "endpoint_method": ("GET", lambda v: v in METHODS, "must be one of " + ", ".join(METHODS)),
    "endpoint_body": (None, _opt(lambda v: isinstance(v, str) and len(v) <= 65536),
                      "must be a string of at most 65536 characters"),
    "public_host": (None, _opt(lambda v: isinstance(v, str) and bool(HOSTNAME_RE.match(v))),
                    "must be a host name such as api.example.com"),
    "expect_status": (None, _opt(lambda v: isinstance(v, list) and 0 < len(v) <= 50
                                 and all(_is_int(s) and 100 <= s <= 599 for s in v)),
                      "must be a list of HTTP status codes from 100 to 599"),
}


def decode_argument(arg: str) -> dict:
    """The single argument: a JSON object, or ``b64:`` + base64 of one (so a shell never sees quotes)."""
    text = arg
    if arg.startswith("b64:"):
        try:
            text = base64.b64decode(arg[4:].encode("ascii"), validate=True).decode("utf-8")
        except (ValueError, UnicodeError) as exc:
            raise ParamError("(argument)", "not valid base64 after 'b64:' (%s)" % exc) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParamError("(argument)", "not valid JSON (%s)" % exc) from None
    if not isinstance(data, dict):
        raise ParamError("(argument)", "must be a JSON object")
    return data


def validate_params(raw: dict) -> dict:
    unknown = sorted(set(raw) - set(PARAM_SPEC))
    if unknown:
        raise ParamError(unknown[0], "unknown parameter (known: %s)" % ", ".join(sorted(PARAM_SPEC)))
    params = {}
    for name, (default, pred, message) in PARAM_SPEC.items():
        value = raw.get(name, default)
        if not pred(value):
            raise ParamError(name, "%s (got %s)" % (message, _short(json.dumps(value), 80)))
        params[name] = value
    if params["service_manager"] == "supervisor" and not params["service"]:
        raise ParamError("service", "service_manager supervisor needs service: the supervisor program name")
    if params["database"] is not None:
        params["database"] = {"host": params["database"].get("host", "127.0.0.1"),
                              "port": params["database"].get("port", 5432)}
    return params


# ---------------------------------------------------------------------------------------------------------------
# Small helpers: bounded commands, bounded file reads, /proc.

_CHILDREN = set()
_CHILDREN_LOCK = threading.Lock()


def _short(text, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


# Python tools that may live in the same virtualenv as the interpreter running this script, not on PATH.
BESIDE_PYTHON = ("supervisorctl",)


def which(name: str):
    """A tool on PATH (or, for supervisorctl, next to this interpreter); None when the host lacks it."""
    if name.startswith("/"):
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name)
    if found or name not in BESIDE_PYTHON:
        return found
    beside = os.path.join(os.path.dirname(sys.executable or ""), name)
    return beside if sys.executable and os.access(beside, os.X_OK) else None


class CommandResult:
    def __init__(self, argv, rc, out, err, error=None, timed_out=False):
        self.argv, self.rc, self.out, self.err, self.error, self.timed_out = argv, rc, out, err, error, timed_out

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def text(self) -> str:
        return (self.out + ("\n" if self.out and self.err else "") + self.err).strip()


def run_cmd(ctx, argv, timeout=CMD_TIMEOUT_S, max_chars=200_000, env=None) -> CommandResult:
    """Run a fixed argv (never a shell) in its own process group; killed when its timeout or the budget ends."""
    tool = which(argv[0])
    if tool is None:
        return CommandResult(argv, None, "", "", error="%s not found" % argv[0])
    budget = min(timeout, ctx.remaining() - 0.2) if ctx else timeout
    if budget <= 0:
        return CommandResult(argv, None, "", "", error="no time left", timed_out=True)
    run_env = dict(os.environ, LC_ALL="C", LANG="C")
    if env:
        run_env.update(env)
    try:
        proc = subprocess.Popen([tool] + list(argv[1:]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=run_env)
    except OSError as exc:
        return CommandResult(argv, None, "", "", error="%s: %s" % (argv[0], exc.strerror or exc))
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc)
    try:
        out, err = proc.communicate(timeout=budget)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
    out_s = out[:max_chars].decode("utf-8", "replace")
    err_s = err[:max_chars].decode("utf-8", "replace")
    if timed_out:
        return CommandResult(argv, None, out_s, err_s, error="%s timed out after %.1fs" % (argv[0], budget),
                             timed_out=True)
    return CommandResult(argv, proc.returncode, out_s, err_s)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def kill_leftover_children() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for proc in procs:
        if proc.poll() is None:
            _kill_group(proc)


def read_file(path: str, limit: int = 65536) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def read_tail(path: str, limit: int):
    """The last ``limit`` bytes of a file (however large), starting at a line boundary; and the file size."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
    return data.decode("utf-8", "replace"), size


def _errtext(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return "%s%s" % (exc.strerror, (": " + exc.filename) if exc.filename else "")
    return "%s: %s" % (type(exc).__name__, exc)


class Shared:
    """Facts several checks need (process table, listeners), computed once under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}

    def get(self, key, fn):
        with self._lock:
            if key not in self._values:
                try:
                    self._values[key] = (fn(), None)
                except Exception as exc:  # noqa: BLE001 - recorded and reported by the caller
                    self._values[key] = (None, exc)
            value, exc = self._values[key]
        if exc is not None:
            raise exc
        return value


def boot_time() -> float:
    for line in read_file("/proc/stat", 1 << 20).splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def read_processes() -> dict:
    """pid -> {pid, ppid, comm, state, cmdline, start (epoch s)} from /proc; processes we cannot read are skipped."""
    clk = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    btime = boot_time()
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            stat = read_file("/proc/%d/stat" % pid, 4096)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read(4096)
        except OSError:
            continue
        right = stat.rfind(")")
        rest = stat[right + 2:].split()
        if len(rest) < 20:
            continue
        procs[pid] = {
            "pid": pid,
            "ppid": int(rest[1]),
            "comm": stat[stat.find("(") + 1: right],
            "state": rest[0],
            "cmdline": cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
            "start": btime + int(rest[19]) / float(clk),
        }
    return procs


def descendants(procs: dict, root: int) -> set:
    children = {}
    for p in procs.values():
        children.setdefault(p["ppid"], []).append(p["pid"])
    seen, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def own_lineage(procs: dict) -> set:
    """This process and its ancestors: never mistaken for the backend by a process match."""
    pids, pid = set(), os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = procs.get(pid, {}).get("ppid", 0)
    return pids


def _fmt_addr(ip: str, port: int) -> str:
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def _hex_to_ip(h: str) -> str:
    raw = bytes.fromhex(h)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    raw = b"".join(raw[i: i + 4][::-1] for i in range(0, 16, 4))
    ip = socket.inet_ntop(socket.AF_INET6, raw)
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def proc_listeners() -> list:
    """TCP listeners from /proc/net/tcp and tcp6 of this network namespace: [{ip, port, inode}]."""
    found = []
    errors = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = read_file(path, 8 << 20).splitlines()[1:]
        except OSError as exc:
            errors.append(_errtext(exc))
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            hip, hport = cols[1].split(":")
            found.append({"ip": _hex_to_ip(hip), "port": int(hport, 16), "inode": int(cols[9])})
    if errors and not found and len(errors) == 2:
        raise OSError("cannot read /proc/net/tcp*: " + "; ".join(errors))
    return found


def socket_owners(inodes: set) -> dict:
    """inode -> [pid] by reading /proc/*/fd links (only processes we may inspect)."""
    owners = {}
    wanted = {"socket:[%d]" % i: i for i in inodes}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % name
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link in wanted:
                owners.setdefault(wanted[link], []).append(int(name))
    return owners


SS_USERS_RE = re.compile(r'\("([^"]*)",pid=(\d+)')


def ss_listeners(ctx):
    """Listeners from ``ss -ltnp``; None when ss is missing or fails (the caller falls back to /proc)."""
    res = run_cmd(ctx, ["ss", "-H", "-ltnp"], timeout=2.0)
    if not res.ok:
        return None
    found = []
    for line in res.out.splitlines():
        cols = line.split()
        if len(cols) < 4 or cols[0] != "LISTEN":
            continue
        host, _, port = cols[3].rpartition(":")
        host = host.strip("[]").split("%")[0]
        host = {"*": "::"}.get(host, host)
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        try:
            port_n = int(port)
        except ValueError:
            continue
        pids = [int(p) for _, p in SS_USERS_RE.findall(line)]
        found.append({"ip": host, "port": port_n, "pids": pids, "raw": line.strip()})
    return found


def resolve_local(name: str) -> list:
    """Addresses a name resolves to on this host (for ``localhost``: /etc/hosts); an IP resolves to itself."""
    if _ip_or_localhost(name) and name != "localhost":
        return [name]
    out = []
    try:
        for info in socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM):
            ip = info[4][0]
            if ip not in out:
                out.append(ip)
    except OSError:
        pass
    return out


def covered(ip: str, listen_ips: list) -> bool:
    """Does a listener on one of ``listen_ips`` accept connections to ``ip``?"""
    v6 = ":" in ip
    for lip in listen_ips:
        if lip == ip or (lip == "0.0.0.0" and not v6) or (lip == "::" and (v6 or _dual_stack())):
            return True
    return False


def _dual_stack() -> bool:
    try:
        return read_file("/proc/sys/net/ipv6/bindv6only", 16).strip() == "0"
    except OSError:
        return True


def pid_limits_fds(pid: int):
    """(open fds, soft limit) of a process; raises OSError without permission."""
    open_fds = len(os.listdir("/proc/%d/fd" % pid))
    limit = None
    for line in read_file("/proc/%d/limits" % pid).splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            limit = None if soft == "unlimited" else int(soft)
    return open_fds, limit


def now_local() -> _dt.datetime:
    return _dt.datetime.now()


def utc_iso(ts: float) -> str:
    moment = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)  # noqa: UP017 - the script runs on python 3.8
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


# ---------------------------------------------------------------------------------------------------------------
# HTTP: a tiny client with a total deadline and a size bound (http.client's timeout is per socket operation).

def http_check(host: str, port: int, path: str, method: str = "GET", host_header=None, body=None,
               timeout: float = 3.0, ctx=None, tls: bool = False) -> dict:
    """One request with a total deadline. ``tls``: HTTPS without verification (the local hop; SNI = Host)."""
    shown = "[%s]" % host if ":" in host else host
    url = "%s://%s:%d%s" % ("https" if tls else "http", shown, port, path)
    out = {"url": url, "status": None, "latency_ms": None, "timed_out": False, "refused": False, "error": None,
           "json": None, "body_excerpt": "", "connected_to": None}
    start = time.monotonic()
    end = start + (min(timeout, max(0.1, ctx.remaining() - 0.3)) if ctx else timeout)
    try:
        sock = socket.create_connection((host, port), timeout=max(0.05, end - time.monotonic()))
    except ConnectionRefusedError:
        out.update(refused=True, error="connection refused")
        return out
    except socket.timeout:
        out.update(timed_out=True, error="connect timed out after %.1fs" % (end - start))
        return out
    except OSError as exc:
        out["error"] = "connect failed: %s" % _errtext(exc)
        return out
    data = b""
    try:
        peer = sock.getpeername()
        out["connected_to"] = _fmt_addr(peer[0], peer[1])
        if tls:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # we test the local hop, not the certificate (the probe does)
            sock.settimeout(max(0.05, end - time.monotonic()))
            server_name = (host_header or "").split(":")[0] or None
            sock = context.wrap_socket(sock, server_hostname=server_name if server_name and
                                       not _ip_or_localhost(server_name) else None)
        payload = body.encode("utf-8") if body is not None else b""
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % (host_header or "%s:%d" % (shown, port)),
                 "User-Agent: gatewatch-onbox/%s" % VERSION, "Accept: */*", "Connection: close"]
        if body is not None:
            ctype = "application/json" if body.strip()[:1] in ("{", "[") else "application/octet-stream"
            lines += ["Content-Type: %s" % ctype, "Content-Length: %d" % len(payload)]
        sock.settimeout(max(0.05, end - time.monotonic()))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        ttfb = None
        while len(data) < HTTP_MAX_BYTES:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if ttfb is None:
                ttfb = time.monotonic()
            if not chunk:
                break
            data += chunk
            if _response_complete(data, method):
                break
    except socket.timeout:
        out.update(timed_out=True, error="no complete response within %.1fs" % (end - start))
    except ssl_errors() as exc:
        out["error"] = "TLS failed: %s" % _short(exc, 200)
    except ConnectionResetError:
        out["error"] = "connection reset by peer"
    except OSError as exc:
        out["error"] = "request failed: %s" % _errtext(exc)
    finally:
        sock.close()
    elapsed = (time.monotonic() - start) * 1000.0
    head, sep, raw_body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    m = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", status_line)
    if m:
        out["status"] = int(m.group(1))
        out["latency_ms"] = round(elapsed, 1)
        headers = _headers(head)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raw_body = _dechunk(raw_body)
        text = raw_body.decode("utf-8", "replace")
        out["body_excerpt"] = _short(text, 300)
        out["server"] = headers.get("server")
        ctype = headers.get("content-type", "")
        if not out["timed_out"] and len(raw_body) <= 8192 and ("json" in ctype or text.strip()[:1] in ("{", "[")):
            try:
                out["json"] = json.loads(text)
            except ValueError:
                pass
    elif data and not out["error"]:
        out["error"] = "not an HTTP response: %s" % _short(status_line, 80)
    elif not data and not out["error"]:
        out["error"] = "connection closed without a response"
    return out


def ssl_errors():
    try:
        import ssl

        return (ssl.SSLError, ssl.CertificateError)
    except ImportError:  # a python built without ssl: nothing of that kind can be raised
        return ()


def _headers(head: bytes) -> dict:
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1", "replace").partition(":")
        headers[k.strip().lower()] = v.strip()
    return headers


def _response_complete(data: bytes, method: str) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    if method == "HEAD":
        return True
    headers = _headers(head)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return body.endswith(b"0\r\n\r\n")
    length = headers.get("content-length")
    if length and length.isdigit():
        return len(body) >= int(length)
    return False


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return out + size_line + sep + rest
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


def http_summary(h: dict) -> str:
    if h["status"] is not None:
        return "%s -> %s in %.0f ms%s" % (h["url"], h["status"], h["latency_ms"] or 0,
                                          " (then timed out)" if h["timed_out"] else "")
    return "%s -> %s" % (h["url"], h["error"])


# ---------------------------------------------------------------------------------------------------------------
# nginx error log: real wording across versions and builds, mapped to a fixed vocabulary.

SIGNATURES = (
    "connection_refused", "connect_timeout", "upstream_timeout", "upstream_closed", "connection_reset",
    "header_too_big", "permission_denied", "socket_missing", "no_live_upstreams", "too_many_open_files",
    "no_space", "cannot_assign_address", "resolve_failed", "upstream_ssl_error", "invalid_upstream_response",
    "no_route_to_host", "resource_unavailable", "bind_conflict", "other",
)
# Consequences, never causes: the primary signature is the earliest one NOT in this set (when there is one).
SECONDARY_SIGNATURES = ("no_live_upstreams", "other")

# First match wins; order matters (a bind() failure mentions 98, a unix socket failure mentions errno 2).
SIGNATURE_RULES = [
    ("bind_conflict", re.compile(r"bind\(\) to \S+ failed \(98:|\(98: Address (already )?in use\)", re.I)),
    ("too_many_open_files", re.compile(r"\(24: |Too many open files", re.I)),
    ("no_space", re.compile(r"\(28: |No space left on device", re.I)),
    ("cannot_assign_address", re.compile(r"\(99: |Cannot assign requested address", re.I)),
    ("no_live_upstreams", re.compile(r"no live upstreams", re.I)),
    ("socket_missing", re.compile(r"connect\(\) to unix:\S+ failed \(2: |\(2: No such file or directory\) while "
                                  r"connecting to upstream", re.I)),
    ("permission_denied", re.compile(r"\(13: |Permission denied\) while connecting to upstream", re.I)),
    ("connection_refused", re.compile(r"\(111: |Connection refused", re.I)),
    ("no_route_to_host", re.compile(r"\(113: |No route to host|\(101: Network is unreachable", re.I)),
    ("connect_timeout", re.compile(r"timed out \(110: [^)]*\) while connecting to upstream|upstream timed out "
                                   r".*while connecting to upstream", re.I)),
    ("upstream_timeout", re.compile(r"upstream timed out|\(110: ", re.I)),
    ("connection_reset", re.compile(r"\(104: |Connection reset by peer", re.I)),
    ("upstream_closed", re.compile(r"upstream prematurely closed|upstream closed prematurely", re.I)),
    ("header_too_big", re.compile(r"upstream sent too big header", re.I)),
    ("invalid_upstream_response", re.compile(r"upstream sent (invalid|no valid|duplicate|unexpected|"
                                             r"more data than)|invalid (status|header) .*upstream", re.I)),
    ("upstream_ssl_error", re.compile(r"(SSL_do_handshake\(\) failed|SSL_read\(\) failed|SSL_write\(\) failed)"
                                      r".*(to upstream|upstream:)|upstream SSL certificate", re.I)),
    ("resolve_failed", re.compile(r"could not be resolved|host not found in upstream|no resolver defined", re.I)),
    ("resource_unavailable", re.compile(r"\(11: |Resource temporarily unavailable", re.I)),
]

NGINX_LINE_RE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*\d+ )?(.*)$")
UPSTREAM_FIELD_RE = re.compile(r'upstream: "([^"]*)"')
ERROR_LEVELS = ("error", "crit", "alert", "emerg")
BURST_GAP_S = 120


def classify_line(message: str) -> str:
    for name, rule in SIGNATURE_RULES:
        if rule.search(message):
            return name
    return "other"


def parse_nginx_time(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y/%m/%d %H:%M:%S")


def classify_error_log(lines, window_minutes: int, now=None) -> dict:
    """Classify the error-log lines of the last ``window_minutes`` (local time, as nginx writes).

    The primary signature is the earliest cause in the latest burst (lines less than BURST_GAP_S apart):
    a backend restart an hour ago does not explain a header_too_big now, and no_live_upstreams is only the
    consequence of the failures that marked every server down.
    """
    now = now or now_local()
    since = now - _dt.timedelta(minutes=window_minutes)
    events = []
    for line in lines:
        m = NGINX_LINE_RE.match(line.strip())
        if not m:
            continue
        try:
            when = parse_nginx_time(m.group(1))
        except ValueError:
            continue
        if when < since or when > now + _dt.timedelta(minutes=5):
            continue
        level, message = m.group(2), m.group(5)
        sig = classify_line(message)
        if level not in ERROR_LEVELS and (level != "warn" or sig == "other"):
            continue
        up = UPSTREAM_FIELD_RE.search(message)
        events.append((when, sig, line.strip(), up.group(1) if up else None))
    events.sort(key=lambda e: e[0])  # several logs merged: by time, file order kept within a second
    burst_start = None
    if events:
        burst_index = len(events) - 1
        while burst_index > 0 and (events[burst_index][0] - events[burst_index - 1][0]).total_seconds() <= \
                BURST_GAP_S:
            burst_index -= 1
        burst_start = events[burst_index][0]
    else:
        burst_index = 0
    sigs = {}
    order = []
    for i, (when, sig, line, up) in enumerate(events):
        entry = sigs.get(sig)
        if entry is None:
            entry = sigs[sig] = {"signature": sig, "count": 0, "first": when.strftime("%Y/%m/%d %H:%M:%S"),
                                 "last": None, "sample": _short(line, 400), "upstream": up, "_burst_first": None}
            order.append(sig)
        entry["count"] += 1
        entry["last"] = when.strftime("%Y/%m/%d %H:%M:%S")
        if entry["upstream"] is None and up:
            entry["upstream"] = up
        if i >= burst_index and entry["_burst_first"] is None:
            entry["_burst_first"] = i
    in_burst = sorted((e["_burst_first"], e["signature"]) for e in sigs.values() if e["_burst_first"] is not None)
    primary = None
    for _, sig in in_burst:
        if sig not in SECONDARY_SIGNATURES:
            primary = sig
            break
    if primary is None and in_burst:
        primary = in_burst[0][1] if in_burst[0][1] != "other" or len(in_burst) == 1 else in_burst[1][1]
        if "no_live_upstreams" in [s for _, s in in_burst]:
            primary = "no_live_upstreams"
    listed = []
    for sig in order:
        entry = dict(sigs[sig])
        entry["in_latest_burst"] = entry.pop("_burst_first") is not None
        listed.append(entry)
    return {"signatures": listed, "primary": primary, "lines_in_window": len(events),
            "burst_start": burst_start.strftime("%Y/%m/%d %H:%M:%S") if burst_start else None}


# ---------------------------------------------------------------------------------------------------------------
# nginx configuration: upstreams, proxy_pass targets, buffer sizes, from ``nginx -T`` (or the files themselves).

CONF_FILE_MARK_RE = re.compile(r"^# configuration file (.+?):\s*$", re.M)
UPSTREAM_BLOCK_RE = re.compile(r"\bupstream\s+([A-Za-z0-9_.-]+)\s*\{([^}]*)\}")
UPSTREAM_SERVER_RE = re.compile(r"(?:^|[;{\s])server\s+([^\s;]+)")
PASS_RE = re.compile(r"\b(proxy_pass|grpc_pass|uwsgi_pass|fastcgi_pass)\s+([^\s;]+)\s*;")
BUFFER_RE = re.compile(r"\bproxy_buffer_size\s+([^\s;]+)\s*;")
LISTEN_RE = re.compile(r"\blisten\s+([^;]+);")
INCLUDE_RE = re.compile(r"\binclude\s+([^\s;]+)\s*;")
ERROR_LOG_RE = re.compile(r"\berror_log\s+([^\s;]+)")
MAX_ERROR_LOGS = 4


def _strip_comments(text: str) -> str:
    return re.sub(r"(?m)(^|\s)#.*$", r"\1", text)


def parse_nginx_config(text: str) -> dict:
    files = CONF_FILE_MARK_RE.findall(text)
    body = _strip_comments(text)
    upstreams = [{"name": n, "servers": UPSTREAM_SERVER_RE.findall(b)} for n, b in UPSTREAM_BLOCK_RE.findall(body)]
    passes = [v for _, v in PASS_RE.findall(body)]
    buffers = BUFFER_RE.findall(body)
    listens = [" ".join(v.split()) for v in LISTEN_RE.findall(body)]
    error_logs = [v for v in ERROR_LOG_RE.findall(body) if not v.startswith(("stderr", "syslog:", "memory:"))]
    return {"files": files, "upstreams": upstreams, "proxy_pass": passes,
            "proxy_buffer_size": buffers[-1] if buffers else None, "listen": listens, "error_logs": error_logs}


def _split_hostport(text: str, default_port: int):
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else default_port


def pass_targets(url: str, upstreams: list) -> list:
    """Where one proxy_pass sends requests: [{host, port, unix}] (an upstream name expands to its servers)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "http", url
    default_port = 443 if scheme in ("https", "grpcs") else 80
    if rest.startswith("unix:"):
        return [{"host": None, "port": None, "unix": rest[5:].split(":")[0]}]
    hostport = rest.split("/")[0]
    if "$" in hostport:
        return [{"host": None, "port": None, "unix": None, "variable": hostport}]
    for up in upstreams:
        if up["name"] == hostport:
            out = []
            for server in up["servers"]:
                if server.startswith("unix:"):
                    out.append({"host": None, "port": None, "unix": server[5:]})
                else:
                    host, port = _split_hostport(server, 80)
                    out.append({"host": host, "port": port, "unix": None})
            return out
    host, port = _split_hostport(hostport, default_port)
    return [{"host": host, "port": port, "unix": None}]


def read_config_files(main_conf: str, prefix, limit_files: int = 64, limit_bytes: int = 1 << 20) -> str:
    """Fallback when ``nginx -T`` cannot run: the main file and its includes, marked like ``nginx -T`` does."""
    base = os.path.dirname(main_conf)
    todo, seen, parts, total = [main_conf], set(), [], 0
    while todo and len(seen) < limit_files and total < limit_bytes:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            text = read_file(path, limit_bytes)
        except OSError:
            continue
        total += len(text)
        parts.append("# configuration file %s:\n%s" % (path, text))
        for pattern in INCLUDE_RE.findall(_strip_comments(text)):
            if not pattern.startswith("/"):
                pattern = os.path.join(prefix or base, pattern) if prefix else os.path.join(base, pattern)
            todo.extend(sorted(glob.glob(pattern)))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The checks. Each is one function registered by name; each returns a result dict and never needs to raise
# (the runner turns an exception into status unknown).

CHECKS = []


def check(name: str):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def result(status: str, value: dict, evidence=None, error=None, **extra) -> dict:
    out = {"status": status, "value": value, "evidence": [_short(e, EVIDENCE_CHARS) for e in (evidence or [])]
           [:EVIDENCE_ITEMS], "error": error}
    out.update(extra)
    return out


class Context:
    def __init__(self, params: dict, budget_s: float = GLOBAL_BUDGET_S):
        self.p = params
        self.started = time.monotonic()
        self.deadline = self.started + budget_s
        self.shared = Shared()
        self.results = {}
        self.done = {name: threading.Event() for name, _ in CHECKS}
        self.partial = {}

    def publish(self, name: str, value: dict, evidence: list) -> None:
        """What a long check has found so far: reported (as unknown, "timed out") if it overruns the budget."""
        self.partial[name] = (value, evidence)

    def partial_copy(self, name: str):
        """A snapshot of a still-running check's partial value (it may be changing under us)."""
        for _ in range(3):
            try:
                value, evidence = self.partial.get(name, ({}, []))
                return json.loads(json.dumps(value, default=str)), [str(e) for e in list(evidence)]
            except (RuntimeError, ValueError, TypeError):
                time.sleep(0.01)
        return {}, []

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait_for(self, name: str, reserve_s: float = 1.0):
        """Another check's result, waiting at most until ``reserve_s`` before the budget ends (None if not done)."""
        event = self.done.get(name)
        if event is not None:
            event.wait(max(0.0, self.remaining() - reserve_s))
        return self.results.get(name)

    def processes(self) -> dict:
        return self.shared.get("procs", read_processes)


SUPERVISOR_STATUS_RE = re.compile(r"^(\S+)\s+(RUNNING|STOPPED|STARTING|BACKOFF|STOPPING|EXITED|FATAL|UNKNOWN)\b\s*"
                                  r"(.*)$")
UPTIME_RE = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
SUPERVISORD_LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ (.*)$")
YOUNG_PROCESS_S = 10
CRASH_LOOP_RESTARTS = 2


def _supervisor_config(conf: str):
    """Parse a supervisord config with its includes; None when unreadable."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        if not parser.read(conf):
            return None
    except configparser.Error:
        return None
    here = os.path.dirname(conf)
    if parser.has_section("include") and parser.has_option("include", "files"):
        for pattern in parser.get("include", "files").split():
            pattern = pattern.replace("%(here)s", here)
            if not pattern.startswith("/"):
                pattern = os.path.join(here, pattern)
            try:
                parser.read(sorted(glob.glob(pattern)))
            except configparser.Error:
                pass
    return parser


def _supervisor_expand(value: str, here: str, program: str) -> str:
    value = value.replace("%(here)s", here).replace("%(program_name)s", program)
    value = re.sub(r"%\(process_num\)0?\d*d", "0", value)
    return re.sub(r"%\(ENV_(\w+)\)s", lambda m: os.environ.get(m.group(1), ""), value)


def supervisor_paths(conf: str, program: str) -> dict:
    """Where supervisord writes its own log and the program's stderr (or merged stdout) log."""
    out = {"supervisord_log": None, "stderr_log": None, "command": None}
    parser = _supervisor_config(conf) if conf else None
    if parser is None:
        return out
    here = os.path.dirname(conf)
    if parser.has_option("supervisord", "logfile"):
        out["supervisord_log"] = _supervisor_expand(parser.get("supervisord", "logfile"), here, program)
    section = "program:%s" % program.split(":")[-1]
    if parser.has_section(section):
        out["command"] = parser.get(section, "command", fallback=None)
        redirect = parser.get(section, "redirect_stderr", fallback="false").lower() in ("true", "1", "yes")
        key = "stdout_logfile" if redirect else "stderr_logfile"
        value = parser.get(section, key, fallback="AUTO")
        if value.upper() == "AUTO":
            childlogdir = parser.get("supervisord", "childlogdir", fallback="/tmp")  # noqa: S108 - supervisor's
            childlogdir = _supervisor_expand(childlogdir, here, program)
            kind = "stdout" if redirect else "stderr"
            matches = glob.glob(os.path.join(childlogdir, "%s-%s---supervisor-*.log" % (program, kind)))
            value = max(matches, key=lambda p: os.path.getmtime(p)) if matches else None
        elif value.upper() == "NONE":
            value = None
        out["stderr_log"] = _supervisor_expand(value, here, program) if value else None
    return out


def supervisor_exits(log_path: str, program: str, window_minutes: int):
    """(count, [epoch of each SIGKILL death]) of ``program``'s unexpected exits in supervisord's log, in the window."""
    text, _ = read_tail(log_path, LOG_TAIL_BYTES)
    since = now_local() - _dt.timedelta(minutes=window_minutes)
    needle = "exited: %s (" % program.split(":")[-1]
    count, killed = 0, []
    for line in text.splitlines():
        m = SUPERVISORD_LOG_RE.match(line)
        if not m or needle not in m.group(2) or "not expected" not in m.group(2):
            continue
        try:
            when = _dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
        if when >= since:
            count += 1
            if "SIGKILL" in m.group(2):
                killed.append(time.mktime(when.timetuple()))  # supervisord writes local time
    return count, killed


def _service_supervisor(ctx, p, value, evidence):
    conf = p["supervisor_config"]
    argv = ["supervisorctl"] + (["-c", conf] if conf else []) + ["status", p["service"]]
    res = run_cmd(ctx, argv, timeout=3.0)
    if res.error:
        return UNKNOWN, res.error
    line = ""
    for candidate in res.out.splitlines():
        m = SUPERVISOR_STATUS_RE.match(candidate.strip())
        if m and m.group(1).split(":")[-1] == p["service"].split(":")[-1]:
            line = candidate.strip()
            break
    evidence.append("supervisorctl status: %s" % (line or _short(res.text(), 200)))
    m = SUPERVISOR_STATUS_RE.match(line) if line else None
    if not m:
        return UNKNOWN, "supervisorctl gave no status for %s: %s" % (p["service"], _short(res.text(), 200))
    state, detail = m.group(2), m.group(3)
    value["state"] = state
    value["running"] = state == "RUNNING"
    pid_m = re.search(r"pid (\d+)", detail)
    value["pid"] = int(pid_m.group(1)) if pid_m else None
    if state == "STARTING" and value["pid"] is None:
        # status shows no pid while starting, but the process exists: ownership of the port depends on it.
        res_pid = run_cmd(ctx, argv[:-2] + ["pid", p["service"]], timeout=2.0)
        if res_pid.out.strip().isdigit() and int(res_pid.out.strip()) > 0:
            value["pid"] = int(res_pid.out.strip())
    up = UPTIME_RE.search(detail)
    if up:
        days = int(up.group(1) or 0)
        value["uptime_s"] = days * 86400 + int(up.group(2)) * 3600 + int(up.group(3)) * 60 + int(up.group(4))
    value["detail"] = _short(detail, 200)
    paths = supervisor_paths(conf, p["service"]) if conf else {"supervisord_log": None}
    value["supervisord_log"] = paths.get("supervisord_log")
    if paths.get("supervisord_log"):
        try:
            value["restarts_recent"], value["sigkill_exits_at"] = supervisor_exits(
                paths["supervisord_log"], p["service"], p["log_window_minutes"])
            value["sigkill_exits_at"] = value["sigkill_exits_at"][-5:]
            evidence.append("supervisord log: %d unexpected exit(s) of %s in the last %d min"
                            % (value["restarts_recent"], p["service"], p["log_window_minutes"]))
        except OSError as exc:
            evidence.append("supervisord log unreadable: %s" % _errtext(exc))
    restarts = value.get("restarts_recent") or 0
    young = value.get("uptime_s") is not None and value["uptime_s"] < YOUNG_PROCESS_S
    value["crash_loop"] = state in ("BACKOFF", "FATAL") or (state in ("STARTING", "EXITED") and restarts >= 1) \
        or (young and restarts >= 1) or (restarts >= CRASH_LOOP_RESTARTS and (value.get("uptime_s") or 0) < 60)
    return None, None


def _systemd_show(ctx, name):
    res = run_cmd(ctx, ["systemctl", "show", name, "--no-pager",
                        "-p", "ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStartTimestamp"], timeout=3.0)
    if res.error or not res.ok:
        return None, res.error or _short(res.text(), 200)
    props = dict(line.split("=", 1) for line in res.out.splitlines() if "=" in line)
    return props, None


def _service_systemd(ctx, p, value, evidence):
    props, err = _systemd_show(ctx, p["service"])
    if props is None:
        return UNKNOWN, "systemctl show failed: %s" % err
    evidence.append("systemctl show %s: %s" % (p["service"], " ".join("%s=%s" % kv for kv in sorted(props.items()))))
    state = "%s/%s" % (props.get("ActiveState"), props.get("SubState"))
    value["state"] = state
    value["running"] = props.get("ActiveState") == "active" and props.get("SubState") in ("running", "exited")
    pid = props.get("MainPID", "0")
    value["pid"] = int(pid) if pid.isdigit() and pid != "0" else None
    restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else None
    value["restarts_total"] = restarts
    value["result"] = props.get("Result")
    grew = False
    if not value["running"] or props.get("SubState") in ("auto-restart", "activating"):
        # One more look shortly after: a restart counter that moves is a loop in progress.
        time.sleep(min(1.5, max(0.0, ctx.remaining() - 2.0)))
        again, _ = _systemd_show(ctx, p["service"])
        if again and again.get("NRestarts", "").isdigit() and restarts is not None:
            grew = int(again["NRestarts"]) > restarts
            value["restarts_recent"] = int(again["NRestarts"]) - restarts
    value["crash_loop"] = props.get("SubState") == "auto-restart" or grew or \
        (props.get("ActiveState") == "failed" and (restarts or 0) >= 3)
    return None, None


def _match_process(ctx, pattern):
    procs = ctx.processes()
    mine = own_lineage(procs)
    matches = [pr for pid, pr in procs.items() if pattern in pr["cmdline"] and pid not in mine]
    if not matches:
        return None, []
    pids = {pr["pid"] for pr in matches}
    roots = [pr for pr in matches if pr["ppid"] not in pids]
    root = min(roots or matches, key=lambda pr: (pr["start"], pr["pid"]))
    return root, matches


@check("service")
def check_service(ctx):
    p = ctx.p
    manager = p["service_manager"]
    value = {"manager": manager, "name": p["service"], "running": None, "state": None, "pid": None,
             "restarts_recent": None, "crash_loop": False, "uptime_s": None}
    evidence = []
    ctx.publish("service", value, evidence)
    if not p["service"] and not p["process_match"]:
        return result(UNKNOWN, value, error="no service or process_match configured")
    status, error = UNKNOWN, None
    if manager == "supervisor":
        status, error = _service_supervisor(ctx, p, value, evidence)
    elif manager == "systemd" and p["service"]:
        status, error = _service_systemd(ctx, p, value, evidence)
    if p["process_match"] and (manager == "command" or not p["service"] or value["running"] is None
                               or (value["running"] and value["pid"] is None)):
        root, matches = _match_process(ctx, p["process_match"])
        value["process_match"] = p["process_match"]
        if root:
            value.update(running=True, pid=root["pid"], state=value["state"] or "running (process match)")
            value["matched_pids"] = sorted(pr["pid"] for pr in matches)[:10]
            evidence.append("process %d matches %r: %s" % (root["pid"], p["process_match"],
                                                           _short(root["cmdline"], 160)))
            status = None
        elif manager == "command" or value["running"] is None:
            value.update(running=False, state=value["state"] or "no matching process")
            evidence.append("no process matches %r" % p["process_match"])
            status = None
    if value["pid"] and value.get("uptime_s") is None:
        proc = ctx.processes().get(value["pid"])
        if proc:
            value["uptime_s"] = round(time.time() - proc["start"], 1)
    if value["pid"]:
        tree = descendants(ctx.processes(), value["pid"])
        value["tree_pids"] = sorted(tree)[:50]
        proc = ctx.processes().get(value["pid"])
        value["process"] = proc["comm"] if proc else None
    if status == UNKNOWN:
        return result(UNKNOWN, value, evidence, error)
    healthy = value["running"] and not value["crash_loop"]
    return result(OK if healthy else FAIL, value, evidence, error)


def _listeners(ctx):
    def compute():
        raw = ss_listeners(ctx)
        source = "ss"
        if raw is None:
            source = "/proc/net/tcp"
            raw = [{"ip": x["ip"], "port": x["port"], "pids": [], "inode": x["inode"]} for x in proc_listeners()]
        return source, raw

    return ctx.shared.get("listeners", compute)


@check("port")
def check_port(ctx):
    p = ctx.p
    port = p["backend_port"]
    value = {"listening": False, "addresses": [], "ipv4": False, "ipv6": False, "pid": None, "process": None,
             "owned_by_service": None, "source": None}
    evidence = []
    try:
        source, listeners = _listeners(ctx)
    except OSError as exc:
        return result(UNKNOWN, value, error="cannot list listeners: %s" % _errtext(exc))
    value["source"] = source
    mine = [x for x in listeners if x["port"] == port]
    if not any(x["pids"] for x in mine) and mine:
        try:
            inodes = {x["inode"] for x in proc_listeners() if x["port"] == port}
            owners = socket_owners(inodes)
            pids = sorted({pid for v in owners.values() for pid in v})
            for x in mine:
                x["pids"] = pids
        except OSError as exc:
            evidence.append("socket owners unreadable: %s" % _errtext(exc))
    ips = []
    for x in mine:
        if x["ip"] not in ips:
            ips.append(x["ip"])
        evidence.append(x.get("raw") or "LISTEN %s (%s)" % (_fmt_addr(x["ip"], port), source))
    value["addresses"] = [_fmt_addr(ip, port) for ip in ips]
    value["listening"] = bool(ips)
    value["ipv4"] = any(":" not in ip for ip in ips)
    value["ipv6"] = any(":" in ip for ip in ips)
    if "::" in ips and _dual_stack():
        value["ipv4"] = True
    backend_ips = resolve_local(p["backend_host"])
    value["backend_resolves_to"] = backend_ips
    value["accepts_backend_host"] = bool(ips) and any(covered(ip, ips) for ip in backend_ips)
    pids = sorted({pid for x in mine for pid in x["pids"]})
    procs = ctx.processes()
    if pids:
        value["pids"] = pids[:10]
        holder = min(pids, key=lambda pid: (procs.get(pid, {}).get("start", 0), pid))
        value["pid"] = holder
        proc = procs.get(holder)
        value["process"] = _short(proc["cmdline"] or proc["comm"], 160) if proc else None
    if not ips:
        evidence.append("nothing listens on TCP port %d (%s)" % (port, source))
        return result(FAIL, value, evidence)
    service = ctx.wait_for("service")
    svc = (service or {}).get("value", {})
    state = str(svc.get("state"))
    # Starting: a process exists that status may not name yet. auto-restart is a wait with no process at all.
    starting = state == "STARTING" or (state.startswith("activating/") and not state.endswith("auto-restart"))
    if svc.get("running") is False and not svc.get("pid") and not starting:
        value["owned_by_service"] = False
        evidence.append("port %d is held by %s while the service is not running" % (port, value["process"]))
    elif svc.get("pid") and value["pid"]:
        tree = descendants(procs, svc["pid"])
        value["owned_by_service"] = all(pid in tree for pid in pids)
        if not value["owned_by_service"]:
            evidence.append("port %d is held by pid %s (%s), not by the service (pid %s)"
                            % (port, value["pid"], value["process"], svc["pid"]))
    ok = value["accepts_backend_host"] and value["owned_by_service"] is not False
    if not value["accepts_backend_host"]:
        evidence.append("%s (%s) is not among the listening addresses %s"
                        % (p["backend_host"], ", ".join(backend_ips), ", ".join(value["addresses"])))
    return result(OK if ok else FAIL, value, evidence)


@check("local_health")
def check_local_health(ctx):
    p = ctx.p
    h = http_check(p["backend_host"], p["backend_port"], p["health_path"], timeout=HEALTH_TIMEOUT_S, ctx=ctx)
    ok = h["status"] is not None and 200 <= h["status"] < 300 and not h["timed_out"]
    return result(OK if ok else FAIL, h, [http_summary(h)])


@check("local_endpoint")
def check_local_endpoint(ctx):
    p = ctx.p
    out = {}

    def direct():
        out["direct"] = http_check(p["backend_host"], p["backend_port"], p["endpoint_path"], p["endpoint_method"],
                                   None, p["endpoint_body"], timeout=ENDPOINT_TIMEOUT_S, ctx=ctx)

    def via_nginx():
        out["via_nginx"] = http_check("127.0.0.1", p["nginx_port"], p["endpoint_path"], p["endpoint_method"],
                                      p["public_host"], p["endpoint_body"], timeout=ENDPOINT_TIMEOUT_S, ctx=ctx,
                                      tls=p["nginx_port"] in (443, 8443))

    threads = [threading.Thread(target=fn, daemon=True) for fn in (direct, via_nginx)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ctx.remaining())
    if len(out) < 2:
        return result(UNKNOWN, out, error="timed out")
    expect = p["expect_status"]

    def good(h):
        if h["status"] is None or h["timed_out"]:
            return False
        return h["status"] in expect if expect else h["status"] < 500

    value = {"direct": out["direct"], "via_nginx": out["via_nginx"],
             "same_status": out["direct"]["status"] == out["via_nginx"]["status"]}
    evidence = ["direct: " + http_summary(out["direct"]), "via nginx: " + http_summary(out["via_nginx"])]
    ok = good(out["direct"]) and good(out["via_nginx"])
    return result(OK if ok else FAIL, value, evidence)


def _nginx_processes(ctx):
    p = ctx.p
    procs = ctx.processes()
    masters = [pr for pr in procs.values() if pr["cmdline"].startswith("nginx: master process")]
    if p["nginx_conf"] or p["nginx_prefix"]:
        chosen = [pr for pr in masters if _master_is_ours(pr["cmdline"], p["nginx_conf"], p["nginx_prefix"])]
    else:
        chosen = masters
    master = min(chosen, key=lambda pr: pr["pid"]) if chosen else None
    workers = []
    if master:
        workers = [pr for pr in procs.values() if pr["ppid"] == master["pid"] and
                   pr["cmdline"].startswith("nginx: worker process") and "shutting down" not in pr["cmdline"]]
    return master, workers, len(masters)


def _master_paths(cmdline: str):
    """(prefix, config file) a master was started with, from "nginx: master process nginx -p P -c C ..."."""
    tokens = cmdline.split()
    prefix = conf = None
    for i, tok in enumerate(tokens[:-1]):
        if tok == "-p":
            prefix = tokens[i + 1]
        elif tok == "-c":
            conf = tokens[i + 1]
    if conf and not conf.startswith("/") and prefix:
        conf = os.path.join(prefix, conf)
    return prefix, conf


def _master_is_ours(cmdline: str, conf, prefix) -> bool:
    """Does this master run the configured nginx? Paths compare normalised (-p may lack its trailing slash)."""
    m_prefix, m_conf = _master_paths(cmdline)
    norm = os.path.normpath
    if conf and ((m_conf and norm(m_conf) == norm(conf)) or conf in cmdline):
        return True
    if prefix and ((m_prefix and norm(m_prefix) == norm(prefix)) or prefix in cmdline):
        return True
    return False


def _nginx_argv(p, master):
    argv = [p["nginx_bin"]]
    prefix, conf = p["nginx_prefix"], p["nginx_conf"]
    if master and not (prefix or conf):
        tokens = master["cmdline"].split()
        for flag in ("-p", "-c"):
            if flag in tokens[:-1]:
                val = tokens[tokens.index(flag) + 1]
                if _safe_path(val) or (flag == "-c" and re.match(r"^[A-Za-z0-9._/+-]+$", val)):
                    argv += [flag, val]
        return argv
    if prefix:
        argv += ["-p", prefix if prefix.endswith("/") else prefix + "/"]
    if conf:
        argv += ["-c", conf]
    return argv


def _target_matches(t, p, listen_ips):
    if t.get("unix") or t.get("host") is None or t.get("port") != p["backend_port"]:
        return False
    resolved = resolve_local(t["host"])
    if listen_ips:
        return bool(resolved) and all(covered(ip, listen_ips) for ip in resolved)
    backend = resolve_local(p["backend_host"])
    return t["host"] == p["backend_host"] or any(ip in backend for ip in resolved)


@check("nginx")
def check_nginx(ctx):
    p = ctx.p
    value = {"running": False, "master_pid": None, "workers": 0, "config_test_ok": None, "config_test_output": "",
             "upstreams": [], "proxy_pass": [], "targets": [], "matches_backend": None, "unix_sockets": [],
             "proxy_buffer_size": None, "config_newer_than_master": None, "listen": [], "config_files": []}
    evidence = []
    errors = []
    ctx.publish("nginx", value, evidence)
    try:
        master, workers, n_masters = _nginx_processes(ctx)
    except OSError as exc:
        master, workers, n_masters = None, [], 0
        errors.append("cannot read processes: %s" % _errtext(exc))
    if master:
        value.update(running=True, master_pid=master["pid"], workers=len(workers),
                     master_cmdline=_short(master["cmdline"], 200))
        evidence.append("nginx master pid %d: %s (%d worker(s))" % (master["pid"], master["cmdline"], len(workers)))
    else:
        evidence.append("no nginx master process%s" % (" for this config (%d other master(s))" % n_masters
                                                         if n_masters else ""))
    argv = _nginx_argv(p, master)
    # Upstream errors go to the error_log of the server/location that proxied: read every log nginx writes to.
    log_paths = [p["nginx_error_log"]]
    m_prefix = _master_paths(master["cmdline"])[0] if master else None
    if master and " -e " in master["cmdline"]:
        tokens = master["cmdline"].split()
        log_paths.append(tokens[tokens.index("-e") + 1])
    tool = which(p["nginx_bin"])
    conf_text = None
    if tool is None:
        errors.append("%s not found: config not tested" % p["nginx_bin"])
    else:
        test = run_cmd(ctx, argv + ["-t"], timeout=3.0)
        if test.error:
            errors.append("nginx -t: %s" % test.error)
        elif not test.ok and "(13: Permission denied)" in test.text() and os.geteuid() != 0:
            # Not a broken config: this user may not open nginx's files. Say so instead of "invalid".
            value["config_test_output"] = _short(test.text(), 1000)
            errors.append("nginx -t needs root here (permission denied): config not judged")
        else:
            value["config_test_ok"] = test.ok
            value["config_test_output"] = _short(test.text(), 1000)
            evidence.append("nginx -t: %s" % _short(test.text().splitlines()[-1] if test.text() else "", 200))
            dump = run_cmd(ctx, argv + ["-T"], timeout=3.0, max_chars=1 << 20)
            if dump.ok:
                conf_text = dump.out
    if conf_text is None:
        # The same files nginx itself would read: -p/-c from the parameters or the running master's command line.
        prefix = argv[argv.index("-p") + 1] if "-p" in argv else None
        main = argv[argv.index("-c") + 1] if "-c" in argv else None
        main = main or (os.path.join(prefix, "conf/nginx.conf") if prefix else "/etc/nginx/nginx.conf")
        if not main.startswith("/") and prefix:
            main = os.path.join(prefix, main)
        conf_text = read_config_files(main, prefix)
        if conf_text:
            evidence.append("config read from files (nginx -T unavailable)")
    if conf_text:
        conf = parse_nginx_config(conf_text)
        value["upstreams"] = conf["upstreams"][:20]
        value["proxy_pass"] = conf["proxy_pass"][:20]
        value["proxy_buffer_size"] = conf["proxy_buffer_size"]
        value["listen"] = conf["listen"][:10]
        value["config_files"] = conf["files"][:20]
        log_paths += conf["error_logs"]
        targets = []
        for url in conf["proxy_pass"]:
            for t in pass_targets(url, conf["upstreams"]):
                if t not in targets:
                    targets.append(t)
        value["targets"] = targets[:20]
        port_result = ctx.wait_for("port", reserve_s=2.0)
        listen_ips = []
        if port_result and port_result["value"].get("listening"):
            listen_ips = [_split_hostport(a, 0)[0] for a in port_result["value"]["addresses"]]
        tcp_targets = [t for t in targets if t.get("host")]
        if tcp_targets:
            value["matches_backend"] = any(_target_matches(t, p, listen_ips) for t in tcp_targets)
        elif targets and all(t.get("unix") for t in targets):
            value["matches_backend"] = None
        else:
            value["matches_backend"] = False if not targets else None
        if any(t.get("host") == "localhost" for t in targets):
            value["localhost_resolves_to"] = resolve_local("localhost")
        for t in targets:
            if t.get("unix"):
                path = t["unix"]
                value["unix_sockets"].append({"path": path, "exists": os.path.exists(path)})
        shown = ", ".join(("unix:" + t["unix"]) if t.get("unix") else "%s:%s" % (t.get("host"), t.get("port"))
                          for t in targets[:5])
        evidence.append("proxies to %s; backend is %s:%d" % (shown or "nothing", p["backend_host"],
                                                              p["backend_port"]))
        if master:
            loaded_at = min([w["start"] for w in workers] or [master["start"]])
            newest = None
            for path in conf["files"]:
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                if newest is None or mtime > newest[0]:
                    newest = (mtime, path)
            if newest:
                value["config_newer_than_master"] = newest[0] > loaded_at + 1
                if value["config_newer_than_master"]:
                    evidence.append("%s changed after the running workers started: not loaded yet" % newest[1])
    # Read the error log last, after our own request through nginx: its error line is then evidence too.
    ctx.wait_for("local_endpoint", reserve_s=1.5)
    log = {"signatures": [], "primary": None}
    try:
        prefix = argv[argv.index("-p") + 1] if "-p" in argv else m_prefix
        log = _nginx_error_log(p, value, evidence, _log_candidates(log_paths, prefix))
    except Exception as exc:  # noqa: BLE001 - the log is one part; the rest of the check still reports
        value["error_log"] = {"path": p["nginx_error_log"], "readable": False, "error": _errtext(exc)}
    failing = (not value["running"] or value["config_test_ok"] is False or value["matches_backend"] is False
               or any(not s["exists"] for s in value["unix_sockets"]))
    status = FAIL if failing else OK
    if not failing and value["config_test_ok"] is None and not conf_text:
        status = UNKNOWN
    return result(status, value, evidence, "; ".join(errors) or None,
                  error_signatures=log["signatures"], primary_signature=log["primary"])


def _log_candidates(paths, prefix) -> list:
    """Distinct absolute, safe paths (relative ones are under the prefix), the configured one first."""
    out = []
    for path in paths:
        if not path.startswith("/"):
            if not prefix:
                continue
            path = os.path.join(prefix, path)
        path = os.path.normpath(path)
        if _safe_path(path) and path not in out:
            out.append(path)
    return out[:MAX_ERROR_LOGS]


def _nginx_error_log(p, value, evidence, paths=None):
    paths = paths or [p["nginx_error_log"]]
    info = {"path": paths[0], "paths": [], "readable": False, "error": None, "lines_in_window": 0,
            "bytes_read": 0}
    value["error_log"] = info
    lines, errors = [], []
    for path in paths:
        try:
            text, size = read_tail(path, LOG_TAIL_BYTES)
        except OSError as exc:
            errors.append(_errtext(exc))
            continue
        if not info["readable"]:
            info.update(path=path, readable=True, size=size)
        info["paths"].append(path)
        info["bytes_read"] += min(size, LOG_TAIL_BYTES)
        lines += text.splitlines()
    if not info["readable"]:
        info["error"] = errors[0] if errors else "no error log"
        evidence.append("error log unreadable: %s" % info["error"])
        return {"signatures": [], "primary": None}
    if errors and p["nginx_error_log"] not in info["paths"]:
        info["error"] = errors[0]
    log = classify_error_log(lines, p["log_window_minutes"])
    info["lines_in_window"] = log["lines_in_window"]
    info["burst_start"] = log["burst_start"]
    if log["primary"]:
        first = [s for s in log["signatures"] if s["signature"] == log["primary"]][0]
        evidence.append("error log: %s x%d since %s: %s" % (log["primary"], first["count"], first["first"],
                                                            first["sample"]))
    return log


EXC_LINE_RE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Failure|Interrupt|Refused|Timeout))"
                         r"(?::\s*(.*))?$")
ADDRESS_IN_USE_RE = re.compile(r"address already in use|\[Errno 98\]|EADDRINUSE", re.I)
MODULE_NOT_FOUND_RE = re.compile(r"ModuleNotFoundError|No module named|ImportError", re.I)
DB_ERROR_RE = re.compile(r"OperationalError|InterfaceError|could not connect to server|connection to server at|"
                         r"password authentication failed|database \"[^\"]*\" does not exist|"
                         r"the database system is (starting up|shutting down)|too many clients already|"
                         r"asyncpg\.exceptions|psycopg\S*: connection|database: disconnected", re.I)
UVICORN_BIND_RE = re.compile(r"\[Errno (\d+)\] (error while attempting to bind on address .*)$")


def scan_app_log(lines) -> dict:
    """The last exception and the runbook's three tell-tale causes in the tail of an application log."""
    out = {"last_exception": None, "address_in_use": False, "module_not_found": False, "db_error": False}
    for line in lines:
        text = line.rstrip()
        if ADDRESS_IN_USE_RE.search(text):
            out["address_in_use"] = True
        if MODULE_NOT_FOUND_RE.search(text):
            out["module_not_found"] = True
        if DB_ERROR_RE.search(text):
            out["db_error"] = True
        m = EXC_LINE_RE.match(text)
        if m:
            out["last_exception"] = {"type": m.group(1).split(".")[-1], "qualified_type": m.group(1),
                                     "message": _short(m.group(2) or "", 300), "line": _short(text.strip(), 400)}
            continue
        m = UVICORN_BIND_RE.search(text)
        if m:
            out["last_exception"] = {"type": "OSError", "qualified_type": "OSError",
                                     "message": _short("[Errno %s] %s" % (m.group(1), m.group(2)), 300),
                                     "line": _short(text.strip(), 400)}
    return out


@check("app_log")
def check_app_log(ctx):
    p = ctx.p
    value = {"source": None, "last_exception": None, "address_in_use": False, "module_not_found": False,
             "db_error": False, "stale": None}
    evidence = []
    ctx.publish("app_log", value, evidence)
    lines, error = None, None
    window_s = p["log_window_minutes"] * 60
    candidates = []
    if p["app_log"]:
        candidates.append(("file", p["app_log"]))
    if p["service_manager"] == "supervisor" and p["service"]:
        paths = supervisor_paths(p["supervisor_config"], p["service"]) if p["supervisor_config"] else {}
        if paths.get("stderr_log"):
            candidates.append(("file", paths["stderr_log"]))
        candidates.append(("supervisorctl", p["service"]))
    if p["service_manager"] == "systemd" and p["service"]:
        candidates.append(("journalctl", p["service"]))
    for kind, where in candidates:
        if kind == "file":
            try:
                text, size = read_tail(where, APP_LOG_TAIL_BYTES)
                value["stale"] = time.time() - os.stat(where).st_mtime > window_s
            except OSError as exc:
                error = "cannot read %s: %s" % (where, _errtext(exc))
                evidence.append(error)
                continue
            lines, value["source"] = text.splitlines()[-APP_LOG_LINES:], where
            break
        if kind == "supervisorctl":
            conf = ["-c", p["supervisor_config"]] if p["supervisor_config"] else []
            res = run_cmd(ctx, ["supervisorctl"] + conf + ["tail", "-%d" % APP_LOG_TAIL_BYTES, where, "stderr"],
                          timeout=3.0, max_chars=APP_LOG_TAIL_BYTES)
            if res.ok:
                lines, value["source"] = res.out.splitlines()[-APP_LOG_LINES:], "supervisorctl tail %s stderr" % where
                break
            error = "supervisorctl tail: %s" % (res.error or _short(res.text(), 200))
        if kind == "journalctl":
            res = run_cmd(ctx, ["journalctl", "-u", where, "--since", "-%dmin" % p["log_window_minutes"], "-n",
                                str(APP_LOG_LINES), "--no-pager", "-o", "cat"], timeout=3.0)
            if res.ok:
                lines, value["source"] = res.out.splitlines(), "journalctl -u %s" % where
                value["stale"] = False
                break
            error = "journalctl: %s" % (res.error or _short(res.text(), 200))
    if lines is None:
        return result(UNKNOWN, value, evidence, error or "no app_log configured and no service manager log")
    found = scan_app_log(lines)
    evidence.append("%s: %d line(s) scanned" % (value["source"], len(lines)))
    if value["stale"]:
        evidence.append("%s not written in the last %d min: flags ignored" % (value["source"],
                                                                               p["log_window_minutes"]))
        value["last_exception"] = found["last_exception"]
        return result(OK, value, evidence)
    value.update(found)
    if found["last_exception"]:
        evidence.append("last exception: %s" % found["last_exception"]["line"])
    flags = [k for k in ("address_in_use", "module_not_found", "db_error") if found[k]]
    if flags:
        evidence.append("flags: %s" % ", ".join(flags))
    return result(FAIL if (flags or found["last_exception"]) else OK, value, evidence)


PORT_SPEC_RE = re.compile(r"--dports? ([0-9:,]+)")
NFT_PORT_RE = re.compile(r"\bdport (?:\{ ([^}]*) \}|([0-9-]+))")


def _ports_in(spec: str, sep_range: str) -> list:
    out = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        if sep_range in part:
            lo, _, hi = part.partition(sep_range)
            if lo.isdigit() and hi.isdigit():
                out.append((int(lo), int(hi)))
        elif part.isdigit():
            out.append((int(part), int(part)))
    return out


def firewall_rules(text: str, tool: str, backend_port: int, web_ports) -> list:
    """DROP/REJECT rules that hit the backend port, the web ports, or all loopback traffic."""
    found = []
    # Tables iptables-nft manages were already read through iptables -S: do not count their rules twice.
    managed = set(re.findall(r"table (\S+ \S+) is managed by iptables-nft", text)) if tool == "nft" else set()
    table = None
    for line in text.splitlines():
        rule = line.strip()
        m = re.match(r"^table (\S+ \S+) \{", rule)
        if m:
            table = m.group(1)
            continue
        if table in managed:
            continue
        if tool == "iptables":
            if not rule.startswith("-A "):
                continue
            m = re.search(r"-j (DROP|REJECT)\b", rule)
            if not m:
                continue
            action = m.group(1).lower()
            ranges = []
            for spec in PORT_SPEC_RE.findall(rule):
                ranges += _ports_in(spec, ":")
            loopback = bool(re.search(r"-[io] lo\b", rule))
        else:
            m = re.search(r"\b(drop|reject)\b", rule)
            if not m or rule.startswith(("type ", "policy", "chain ", "table ")) or "policy" in rule:
                continue
            action = m.group(1)
            ranges = []
            for group, single in NFT_PORT_RE.findall(rule):
                ranges += _ports_in(group or single, "-")
            loopback = bool(re.search(r'\b(iif|oif|iifname|oifname) "?lo"?\b', rule))
        hits = [port for port in [backend_port] + list(web_ports) if any(lo <= port <= hi for lo, hi in ranges)]
        if not ranges and loopback:
            hits = [backend_port]
        for port in hits:
            found.append({"rule": _short(rule, 200), "port": port, "action": action})
    return found


@check("firewall")
def check_firewall(ctx):
    p = ctx.p
    web_ports = sorted({80, 443, p["nginx_port"]})
    value = {"tool": None, "tools": [], "blocking_rules": [], "blocks_backend": False, "blocks_web": False}
    evidence, errors = [], []
    ctx.publish("firewall", value, evidence)
    for tool, argvs in (("iptables", (["iptables", "-S"], ["ip6tables", "-S"])), ("nft", (["nft", "list",
                                                                                          "ruleset"],))):
        worked = False
        for argv in argvs:
            res = run_cmd(ctx, argv, timeout=2.0)
            if res.error:
                errors.append(res.error)
                continue
            if not res.ok:
                errors.append("%s: %s" % (" ".join(argv), _short(res.text(), 160)))
                continue
            worked = True
            for r in firewall_rules(res.out + "\n" + res.err, tool, p["backend_port"], web_ports):
                r["tool"] = argv[0]
                value["blocking_rules"].append(r)
        if worked:
            value["tools"].append(tool)
    if not value["tools"]:
        return result(UNKNOWN, value, evidence, "; ".join(errors) or "no firewall tool")
    value["tool"] = value["blocking_rules"][0]["tool"].replace("ip6tables", "iptables") if value["blocking_rules"] \
        else value["tools"][0]
    value["blocks_backend"] = any(r["port"] == p["backend_port"] for r in value["blocking_rules"])
    value["blocks_web"] = any(r["port"] in web_ports for r in value["blocking_rules"])
    for r in value["blocking_rules"][:5]:
        evidence.append("%s: %s" % (r["tool"], r["rule"]))
    if not value["blocking_rules"]:
        evidence.append("no DROP/REJECT rule for ports %s (%s)" % (
            ", ".join(str(x) for x in [p["backend_port"]] + web_ports), ", ".join(value["tools"])))
    value["blocking_rules"] = value["blocking_rules"][:20]
    bad = value["blocks_backend"] or value["blocks_web"]
    return result(FAIL if bad else OK, value, evidence, "; ".join(errors) or None)


OOM_RE = re.compile(r"(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)|"
                    r"oom-kill:.*?task=([^,\s]+),pid=(\d+)")
OOM_MATCH_S = 10  # a kill and the manager's record of a death this close together are one event
OOM_MEMCG_RE = re.compile(r"oom-kill:.*?task_memcg=([^,\s]*),task=([^,\s]+),pid=(\d+)")


def oom_kills(records, since: float) -> list:
    """[{pid, process, at, memcg}] of the kernel's OOM kills since ``since`` (records without a time count)."""
    kills = {}
    for when, text in records:
        m = OOM_RE.search(text)
        if not m or (when is not None and when < since):
            continue
        pid = int(m.group(1) or m.group(4))
        kill = kills.setdefault(pid, {"pid": pid, "process": m.group(2) or m.group(3), "memcg": None,
                                      "at": utc_iso(when) if when else None, "_when": when})
        cg = OOM_MEMCG_RE.search(text)
        if cg:
            kill["memcg"] = cg.group(1) or None
    out = list(kills.values())
    for kill in out:
        kill.pop("_when")
    return out


def _cgroup_of(pid: int):
    """The process's memory cgroup path: the v1 memory controller's line, else the v2 unified ('0::') line."""
    try:
        return parse_cgroup(read_file("/proc/%d/cgroup" % pid, 8192))
    except OSError:
        return None


def parse_cgroup(text: str):
    lines = text.splitlines()
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            return parts[2].strip()
    for line in lines:
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def _backend_identity(p, procs, backend_pids, svc_pid, service_value=None) -> dict:
    names = {procs[pid]["comm"] for pid in backend_pids if pid in procs}
    if p["process_match"]:
        names.add(os.path.basename(p["process_match"].split()[0])[:15])
    if p["service_manager"] == "supervisor" and p["supervisor_config"] and p["service"]:
        # The program's command names the process even while it is down (the usual state after an OOM kill).
        command = supervisor_paths(p["supervisor_config"], p["service"]).get("command")
        if command and command.split():
            names.add(os.path.basename(command.split()[0])[:15])
    cgroups = {cg for cg in (_cgroup_of(pid) for pid in backend_pids) if cg}
    started = [procs[pid]["start"] for pid in ([svc_pid] if svc_pid else []) if pid in procs]
    sv = service_value or {}
    return {"pids": set(backend_pids), "names": names, "cgroups": cgroups, "service": p["service"],
            "started": started[0] if started else None, "manager": p["service_manager"],
            "sigkill_exits_at": list(sv.get("sigkill_exits_at") or []), "result": sv.get("result")}


def _oom_victim_is_backend(kill: dict, backend: dict) -> bool:
    """Only on evidence that ties the kill to the backend: its pid; its memory cgroup (the unit's name in it, or
    the backend's own); its manager's record of the death (supervisord logged a SIGKILL exit within seconds of
    the kill; systemd's Result=oom-kill); or, with no manager to ask, a same-named backend restarted within
    seconds after the kill. A process name alone (python3) is not enough: other programs have it too."""
    if kill["pid"] in backend["pids"]:
        return True
    memcg = kill.get("memcg")
    if memcg and ((backend["service"] and backend["service"].split(".")[0] in memcg)
                  or (memcg in backend["cgroups"] and memcg != "/")):
        return True
    if kill["process"] not in backend["names"] and kill["process"] != (backend["service"] or "")[:15]:
        return False
    killed_at = None
    if kill["at"]:
        killed_at = _dt.datetime.strptime(kill["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=_dt.timezone.utc).timestamp()  # noqa: UP017 - the script runs on python 3.8
    if backend["manager"] == "supervisor":
        return killed_at is not None and any(abs(t - killed_at) <= OOM_MATCH_S for t in backend["sigkill_exits_at"])
    if backend["manager"] == "systemd":
        return backend.get("result") == "oom-kill"
    return killed_at is not None and backend["started"] is not None and \
        killed_at - 1 <= backend["started"] <= killed_at + OOM_MATCH_S


def read_kernel_messages(ctx, max_records: int = 50000):
    """(source, [(epoch or None, text)]) from /dev/kmsg (non-blocking), dmesg or journalctl -k."""
    btime = None
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        first_error = "/dev/kmsg: %s" % _errtext(exc)
    else:
        records = []
        try:
            btime = boot_time()
            os.lseek(fd, 0, os.SEEK_SET)
            while len(records) < max_records and ctx.remaining() > 1.0:
                try:
                    rec = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == 32:  # EPIPE: overwritten record; keep reading
                        continue
                    raise
                if not rec:
                    break
                head, _, msg = rec.decode("utf-8", "replace").partition(";")
                fields = head.split(",")
                when = btime + int(fields[2]) / 1e6 if len(fields) > 2 and fields[2].isdigit() else None
                records.append((when, msg.split("\n")[0]))
            return "/dev/kmsg", records
        except OSError as exc:
            first_error = "/dev/kmsg: %s" % _errtext(exc)
        finally:
            os.close(fd)
    res = run_cmd(ctx, ["dmesg"], timeout=2.0, max_chars=LOG_TAIL_BYTES)
    if res.ok:
        return "dmesg", [(None, line) for line in res.out.splitlines()]
    res2 = run_cmd(ctx, ["journalctl", "-k", "-n", "2000", "--no-pager", "-o", "cat"], timeout=2.0)
    if res2.ok:
        return "journalctl -k", [(None, line) for line in res2.out.splitlines()]
    raise OSError("kernel log unreadable: %s; dmesg: %s; journalctl: %s" % (
        first_error, res.error or _short(res.text(), 80), res2.error or _short(res2.text(), 80)))


@check("resources")
def check_resources(ctx):
    p = ctx.p
    value = {"mem_available_mb": None, "mem_total_mb": None, "swap_used_pct": None, "oom_kills": [],
             "oom_killed_backend": False, "disks": [], "disk_full": False, "fds": {"backend": None, "nginx": None},
             "fd_exhausted": False, "load1": None, "cores": None}
    evidence, errors = [], []
    ctx.publish("resources", value, evidence)
    try:
        mem = {}
        for line in read_file("/proc/meminfo").splitlines():
            k, _, v = line.partition(":")
            if v.strip().split()[0].isdigit():
                mem[k] = int(v.strip().split()[0])
        value["mem_total_mb"] = round(mem.get("MemTotal", 0) / 1024.0, 1)
        value["mem_available_mb"] = round(mem.get("MemAvailable", mem.get("MemFree", 0)) / 1024.0, 1)
        if mem.get("SwapTotal"):
            value["swap_used_pct"] = round(100.0 * (mem["SwapTotal"] - mem.get("SwapFree", 0)) / mem["SwapTotal"], 1)
        else:
            value["swap_used_pct"] = 0.0
        evidence.append("memory: %.0f MB available of %.0f MB" % (value["mem_available_mb"], value["mem_total_mb"]))
    except (OSError, ValueError, IndexError) as exc:
        errors.append("meminfo: %s" % _errtext(exc))
    try:
        load = read_file("/proc/loadavg").split()
        value["load1"] = float(load[0])
    except (OSError, ValueError, IndexError) as exc:
        errors.append("loadavg: %s" % _errtext(exc))
    try:
        value["cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        value["cores"] = os.cpu_count()
    # Disks: / plus the log and app directories and any configured paths, each filesystem once.
    paths = ["/", os.path.dirname(p["nginx_error_log"])]
    if p["app_log"]:
        paths.append(os.path.dirname(p["app_log"]))
    paths += p["extra_paths"]
    seen_dev = set()
    for path in paths:
        probe = path
        while probe != "/" and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        try:
            st = os.stat(probe)
            if st.st_dev in seen_dev:
                continue
            seen_dev.add(st.st_dev)
            vfs = os.statvfs(probe)
        except OSError as exc:
            errors.append("statvfs %s: %s" % (path, _errtext(exc)))
            continue
        used = vfs.f_blocks - vfs.f_bfree
        usable = used + vfs.f_bavail
        used_pct = round(100.0 * used / usable, 1) if usable else 0.0
        inodes_pct = round(100.0 * (vfs.f_files - vfs.f_ffree) / vfs.f_files, 1) if vfs.f_files else 0.0
        free_mb = round(vfs.f_bavail * vfs.f_frsize / 1048576.0, 1)
        full = used_pct >= 98 or inodes_pct >= 98 or (free_mb < 50 and vfs.f_blocks * vfs.f_frsize > 1 << 30)
        value["disks"].append({"path": probe, "used_pct": used_pct, "inodes_used_pct": inodes_pct,
                               "free_mb": free_mb, "full": full})
        if full:
            value["disk_full"] = True
            evidence.append("disk %s: %.1f%% used, %.1f%% inodes, %.0f MB free" % (probe, used_pct, inodes_pct,
                                                                                    free_mb))
    # File descriptors of the backend (all its processes) and nginx (master and workers), against their limits.
    service = ctx.wait_for("service")
    port = ctx.wait_for("port", reserve_s=0.8)
    backend_pids = set()
    svc_pid = ((service or {}).get("value") or {}).get("pid")
    try:
        procs = ctx.processes()
        if svc_pid:
            backend_pids |= descendants(procs, svc_pid)
        backend_pids |= set(((port or {}).get("value") or {}).get("pids") or [])
        nginx_pids = {pr["pid"] for pr in procs.values() if pr["cmdline"].startswith("nginx: ")}
    except OSError as exc:
        procs, nginx_pids = {}, set()
        errors.append("processes: %s" % _errtext(exc))
    for label, pids in (("backend", backend_pids), ("nginx", nginx_pids)):
        worst = None
        for pid in sorted(pids):
            try:
                open_fds, limit = pid_limits_fds(pid)
            except OSError as exc:
                errors.append("fds of %s pid %d: %s" % (label, pid, _errtext(exc)))
                continue
            ratio = open_fds / float(limit) if limit else 0.0
            if worst is None or ratio > worst[0]:
                worst = (ratio, {"pid": pid, "open": open_fds, "limit": limit})
        if worst:
            value["fds"][label] = worst[1]
            if worst[0] >= 0.95:
                value["fd_exhausted"] = True
                evidence.append("%s pid %d has %d of %s file descriptors open" % (
                    label, worst[1]["pid"], worst[1]["open"], worst[1]["limit"]))
    # OOM kills in the kernel log within the window, and whether the victim was the backend.
    try:
        source, records = read_kernel_messages(ctx)
        value["kernel_log"] = source
        kills = oom_kills(records, time.time() - p["log_window_minutes"] * 60)
        backend = _backend_identity(p, procs, backend_pids, svc_pid, ((service or {}).get("value") or {}))
        for kill in kills:
            kill["backend"] = _oom_victim_is_backend(kill, backend)
        value["oom_kills"] = kills[-10:]
        value["oom_killed_backend"] = any(k["backend"] for k in value["oom_kills"])
        if value["oom_kills"]:
            evidence.append("OOM kills: %s" % ", ".join("%s(%d)%s" % (k["process"], k["pid"], " = backend"
                                                                       if k["backend"] else "")
                                                         for k in value["oom_kills"]))
    except OSError as exc:
        value["oom_kills"] = None
        errors.append(_errtext(exc))
    if value["load1"] is not None and value["cores"]:
        evidence.append("load %.2f on %d core(s)" % (value["load1"], value["cores"]))
    low_memory = value["mem_total_mb"] and value["mem_available_mb"] is not None and \
        value["mem_available_mb"] < 0.03 * value["mem_total_mb"]
    bad = value["disk_full"] or value["fd_exhausted"] or value["oom_killed_backend"] or low_memory
    status = FAIL if bad else (OK if value["mem_total_mb"] is not None else UNKNOWN)
    return result(status, value, evidence, "; ".join(errors)[:600] or None)


@check("selinux")
def check_selinux(ctx):
    value = {"present": False, "mode": None, "httpd_can_network_connect": None, "denials": 0}
    evidence = []
    if os.path.exists("/sys/fs/selinux/enforce"):
        value["present"] = True
        try:
            value["mode"] = "enforcing" if read_file("/sys/fs/selinux/enforce", 8).strip() == "1" else "permissive"
        except OSError as exc:
            res = run_cmd(ctx, ["getenforce"], timeout=2.0)
            if res.ok:
                value["mode"] = res.out.strip().lower()
            else:
                return result(UNKNOWN, value, evidence, "cannot read SELinux mode: %s" % _errtext(exc))
        try:
            current = read_file("/sys/fs/selinux/booleans/httpd_can_network_connect", 16).split()
            value["httpd_can_network_connect"] = current[0] == "1" if current else None
        except OSError:
            pass
    else:
        res = run_cmd(ctx, ["getenforce"], timeout=2.0)
        if res.ok and res.out.strip():
            value["present"] = res.out.strip().lower() != "disabled"
            value["mode"] = res.out.strip().lower()
    if not value["present"]:
        evidence.append("SELinux not present")
        return result(OK, value, evidence)
    try:
        text, _ = read_tail("/var/log/audit/audit.log", LOG_TAIL_BYTES)
        value["denials"] = sum(1 for line in text.splitlines() if "avc:" in line and "denied" in line and
                               ("httpd" in line or "nginx" in line))
    except OSError as exc:
        evidence.append("audit log unreadable: %s" % _errtext(exc))
    evidence.append("SELinux %s, httpd_can_network_connect=%s, %d nginx/httpd AVC denial(s)"
                    % (value["mode"], value["httpd_can_network_connect"], value["denials"]))
    bad = value["mode"] == "enforcing" and (value["httpd_can_network_connect"] is False or value["denials"] > 0)
    return result(FAIL if bad else OK, value, evidence)


HEALTHY_DB_WORDS = ("connected", "ok", "up", "healthy", "true", "available", "ready")


@check("database")
def check_database(ctx):
    p = ctx.p
    value = {"from_health": None, "tcp": None}
    evidence = []
    verdicts = []
    db = p["database"]
    if db:
        start = time.monotonic()
        tcp = {"host": db["host"], "port": db["port"], "reachable": False, "error": None}
        try:
            sock = socket.create_connection((db["host"], db["port"]),
                                            timeout=max(0.1, min(DB_CONNECT_TIMEOUT_S, ctx.remaining() - 0.3)))
            sock.close()
            tcp["reachable"] = True
            tcp["connect_ms"] = round((time.monotonic() - start) * 1000.0, 1)
        except socket.timeout:
            tcp["error"] = "connect timed out"
        except OSError as exc:
            tcp["error"] = _errtext(exc)
        value["tcp"] = tcp
        verdicts.append(tcp["reachable"])
        evidence.append("tcp %s:%d: %s" % (db["host"], db["port"], "reachable" if tcp["reachable"] else tcp["error"]))
    health = ctx.wait_for("local_health", reserve_s=0.5)
    body = ((health or {}).get("value") or {}).get("json")
    if isinstance(body, dict):
        for key in ("database", "db", "postgres", "postgresql"):
            if key in body:
                raw = body[key]
                if isinstance(raw, dict):
                    raw = raw.get("status", raw.get("state", json.dumps(raw)))
                value["from_health"] = _short(str(raw).lower() if isinstance(raw, bool) else str(raw), 100)
                verdicts.append(value["from_health"].lower() in HEALTHY_DB_WORDS)
                evidence.append("health says database: %s" % value["from_health"])
                break
    if not verdicts:
        return result(UNKNOWN, value, evidence, "no database address configured and none in the health body")
    return result(OK if all(verdicts) else FAIL, value, evidence)


# ---------------------------------------------------------------------------------------------------------------
# Running everything under one budget, and keeping the output under the limit.

def run_checks(params: dict, budget_s: float = GLOBAL_BUDGET_S) -> dict:
    ctx = Context(params, budget_s)
    started_wall = time.time()

    def runner(name, fn):
        try:
            res = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not break the report
            res = result(UNKNOWN, {}, [], "check raised %s: %s" % (type(exc).__name__, _short(exc, 200)))
        ctx.results[name] = res
        ctx.done[name].set()

    threads = []
    for name, fn in CHECKS:
        t = threading.Thread(target=runner, args=(name, fn), name="check-" + name, daemon=True)
        t.start()
        threads.append((name, t))
    for _, t in threads:
        t.join(ctx.remaining())
    report = {"schema": SCHEMA}
    timed_out = []
    for name, _ in CHECKS:
        res = ctx.results.get(name)
        if res is None:
            timed_out.append(name)
            value, evidence = ctx.partial_copy(name)
            res = result(UNKNOWN, value, evidence, "timed out")
            if name == "nginx":
                res.update(error_signatures=[], primary_signature=None)
        report[name] = res
    report["meta"] = {
        "host": socket.gethostname(), "collected_at": utc_iso(started_wall),
        "duration_ms": round((time.monotonic() - ctx.started) * 1000.0, 1), "truncated": False,
        "python": platform.python_version(), "script_version": VERSION, "budget_s": budget_s,
        "timed_out_checks": timed_out,
    }
    return report


def _dumps(doc) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, default=str, sort_keys=False)


def _trim_strings(node, limit: int):
    if isinstance(node, str):
        return _short(node, limit)
    if isinstance(node, list):
        return [_trim_strings(x, limit) for x in node]
    if isinstance(node, dict):
        return {k: _trim_strings(v, limit) for k, v in node.items()}
    return node


def _trim_lists(node, limit: int):
    if isinstance(node, list):
        return [_trim_lists(x, limit) for x in node[:limit]]
    if isinstance(node, dict):
        return {k: _trim_lists(v, limit) for k, v in node.items()}
    return node


def bound_output(report: dict, limit: int = MAX_OUTPUT_CHARS) -> str:
    """The JSON text, under ``limit`` characters: evidence is trimmed first, then samples, then lists."""
    text = _dumps(report)
    if len(text) <= limit:
        return text
    doc = json.loads(text)
    doc.setdefault("meta", {})["truncated"] = True
    checks = [k for k, v in doc.items() if isinstance(v, dict) and "status" in v]
    steps = []
    for n_items, n_chars in ((4, 200), (2, 120), (1, 80), (0, 0)):
        steps.append(("evidence", n_items, n_chars))
    for n_chars in (200, 100, 40):
        steps.append(("samples", n_chars, None))
    for n_items in (5, 2, 1):
        steps.append(("lists", n_items, None))
    for step in steps:
        kind = step[0]
        for name in checks:
            c = doc[name]
            if kind == "evidence":
                c["evidence"] = [_short(e, step[2]) for e in c.get("evidence", [])[: step[1]]]
            elif kind == "samples":
                c["value"] = _trim_strings(c.get("value"), step[1])
                if "error_signatures" in c:
                    c["error_signatures"] = _trim_strings(c["error_signatures"], step[1])
                if c.get("error"):
                    c["error"] = _short(c["error"], max(step[1], 80))
            else:
                c["value"] = _trim_lists(c.get("value"), step[1])
                if "error_signatures" in c:
                    c["error_signatures"] = c["error_signatures"][: max(step[1], 3)]
        text = _dumps(doc)
        if len(text) <= limit:
            return text
    # Last resort: statuses and errors only; still valid, still the same keys.
    slim = {"schema": SCHEMA, "meta": doc.get("meta", {})}
    for name in checks:
        slim[name] = {"status": doc[name].get("status"), "value": {}, "evidence": [],
                      "error": _short(doc[name].get("error"), 80)}
        if name == "nginx":
            slim[name]["error_signatures"] = []
            slim[name]["primary_signature"] = doc[name].get("primary_signature")
    return _dumps(slim)[:limit]


def error_document(message: str, field=None) -> str:
    return _dumps({"schema": SCHEMA, "error": _short(message, 2000), "field": field,
                   "meta": {"host": socket.gethostname(), "collected_at": utc_iso(time.time()), "duration_ms": 0.0,
                            "truncated": False, "python": platform.python_version(), "script_version": VERSION}})


def main(argv) -> int:
    if len(argv) != 1:
        sys.stdout.write(error_document("expected exactly one argument: a JSON object or b64:<base64 of one>",
                                        "(argument)") + "\n")
        return EXIT_BAD_PARAMS
    try:
        params = validate_params(decode_argument(argv[0]))
    except ParamError as exc:
        sys.stdout.write(error_document("bad parameter %s" % exc, exc.field) + "\n")
        return EXIT_BAD_PARAMS
    try:
        text = bound_output(run_checks(params))
        code = EXIT_REPORT
    except Exception as exc:  # noqa: BLE001 - the guard: whatever happens, print valid JSON
        text = error_document("on-box checks failed: %s: %s" % (type(exc).__name__, exc))
        code = EXIT_INTERNAL
    sys.stdout.write(text + "\n")
    return code


if __name__ == "__main__":
    _code = EXIT_INTERNAL
    try:
        _code = main(sys.argv[1:])
    except BaseException as _exc:  # noqa: BLE001 - even KeyboardInterrupt ends in valid JSON
        sys.stdout.write(error_document("on-box checks failed: %s" % type(_exc).__name__) + "\n")
    finally:
        sys.stdout.flush()
        kill_leftover_children()
    os._exit(_code)
