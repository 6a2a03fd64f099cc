"""Sockets and listening: who listens where (ss or /proc/net), and the port check."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os
import re
import socket
import stat

from .common import FAIL, OK, UNKNOWN, _errtext, _short, read_file, run_cmd
from .procs import descendants
from .registry import check, result
from .validate import _ip_or_localhost


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
        if lip == ip or (lip == "0.0.0.0" and not v6) or (lip == "::" and (v6 or _dual_stack())):  # nosec B104 - compared, not bound
            return True
    return False


def _dual_stack() -> bool:
    try:
        return read_file("/proc/sys/net/ipv6/bindv6only", 16).strip() == "0"
    except OSError:
        return True


def _listeners(ctx):
    def compute():
        raw = ss_listeners(ctx)
        source = "ss"
        if raw is None:
            source = "/proc/net/tcp"
            raw = [{"ip": x["ip"], "port": x["port"], "pids": [], "inode": x["inode"]} for x in proc_listeners()]
        return source, raw

    return ctx.shared.get("listeners", compute)


def unix_listeners(path: str) -> list:
    """Inodes of the listening unix sockets bound to ``path`` (from /proc/net/unix)."""
    inodes = []
    for line in read_file("/proc/net/unix", 8 << 20).splitlines()[1:]:
        parts = line.split(None, 7)
        if len(parts) == 8 and parts[7] == path and int(parts[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            inodes.append(int(parts[6]))
    return inodes


def _owner_verdict(ctx, value, evidence, pids, what):
    """owned_by_service from the service check's pid tree (shared by TCP ports and unix sockets)."""
    procs = ctx.processes()
    if pids:
        value["pids"] = pids[:10]
        holder = min(pids, key=lambda pid: (procs.get(pid, {}).get("start", 0), pid))
        value["pid"] = holder
        proc = procs.get(holder)
        value["process"] = _short(proc["cmdline"] or proc["comm"], 160) if proc else None
    service = ctx.wait_for("service")
    svc = (service or {}).get("value", {})
    state = str(svc.get("state"))
    # Starting: a process exists that status may not name yet. auto-restart is a wait with no process at all.
    starting = state == "STARTING" or (state.startswith("activating/") and not state.endswith("auto-restart"))
    if svc.get("running") is False and not svc.get("pid") and not starting:
        value["owned_by_service"] = False
        evidence.append("%s is held by %s while the service is not running" % (what, value["process"]))
    elif svc.get("pid") and value["pid"]:
        tree = descendants(procs, svc["pid"])
        value["owned_by_service"] = all(pid in tree for pid in pids)
        if not value["owned_by_service"]:
            evidence.append("%s is held by pid %s (%s), not by the service (pid %s)"
                            % (what, value["pid"], value["process"], svc["pid"]))


def _check_unix_socket(ctx, path):
    """The port check when the backend is a unix socket: present, a socket, accepting, and whose."""
    sock = {"path": path, "exists": False, "is_socket": False, "accepting": False, "refused": False, "error": None}
    value = {"kind": "unix", "socket": sock, "listening": False, "addresses": ["unix:" + path], "pid": None,
             "process": None, "owned_by_service": None, "source": "/proc/net/unix"}
    evidence = []
    try:
        st = os.stat(path)
        sock["exists"], sock["is_socket"] = True, stat.S_ISSOCK(st.st_mode)
    except OSError as exc:
        sock["error"] = _errtext(exc)
    if sock["is_socket"]:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(max(0.1, min(1.0, ctx.remaining() - 0.5)))
        try:
            probe.connect(path)
            sock["accepting"] = True
        except ConnectionRefusedError:
            sock["refused"] = True
            sock["error"] = "connection refused"
        except OSError as exc:
            sock["error"] = _errtext(exc)
        finally:
            probe.close()
    value["listening"] = sock["accepting"]
    if not sock["exists"]:
        evidence.append("no socket at %s (%s)" % (path, sock["error"]))
    elif not sock["is_socket"]:
        evidence.append("%s exists but is not a socket" % path)
    elif sock["refused"]:
        evidence.append("%s exists but nobody listens on it (a stale socket file)" % path)
    else:
        evidence.append("%s accepts connections" % path)
    if not sock["accepting"]:
        return result(FAIL, value, evidence)
    try:
        owners = socket_owners(set(unix_listeners(path)))
        pids = sorted({pid for v in owners.values() for pid in v})
    except OSError as exc:
        pids = []
        evidence.append("socket owners unreadable: %s" % _errtext(exc))
    _owner_verdict(ctx, value, evidence, pids, path)
    return result(OK if value["owned_by_service"] is not False else FAIL, value, evidence)


@check("port")
def check_port(ctx):
    p = ctx.p
    if p["backend_socket"]:
        return _check_unix_socket(ctx, p["backend_socket"])
    port = p["backend_port"]
    value = {"kind": "tcp", "listening": False, "addresses": [], "ipv4": False, "ipv6": False, "pid": None,
             "process": None, "owned_by_service": None, "source": None}
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
    if not ips:
        if pids:
            value["pids"] = pids[:10]
        evidence.append("nothing listens on TCP port %d (%s)" % (port, source))
        return result(FAIL, value, evidence)
    _owner_verdict(ctx, value, evidence, pids, "port %d" % port)
    ok = value["accepts_backend_host"] and value["owned_by_service"] is not False
    if not value["accepts_backend_host"]:
        evidence.append("%s (%s) is not among the listening addresses %s"
                        % (p["backend_host"], ", ".join(backend_ips), ", ".join(value["addresses"])))
    return result(OK if ok else FAIL, value, evidence)
