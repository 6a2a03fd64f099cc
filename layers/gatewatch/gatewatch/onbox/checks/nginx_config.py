"""nginx configuration: upstreams, proxy_pass targets, buffer sizes, from ``nginx -T`` or the files."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import glob
import os
import re

from .common import read_file
from .trust import why_untrusted

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


SERVER_NAME_RE = re.compile(r"\bserver_name\s+([^;]+);")
WORD_BEFORE_BRACE_RE = re.compile(r"([A-Za-z_]+)[^;{}]*$")


def _blank_comments(text: str) -> str:
    """Comments replaced by spaces: positions stay those of the original text (to find each block's file)."""
    return re.sub(r"(?m)(^|\s)#.*$", lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text)


def _listen_port(spec: str):
    """The port of a ``listen`` (80 when it names only an address), None for a unix socket."""
    parts = spec.split()
    if not parts or parts[0].startswith("unix:"):
        return None
    first = parts[0]
    if first.isdigit():
        return int(first)
    if first.startswith("["):
        tail = first.rsplit("]:", 1)
        return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 80
    if ":" in first:
        tail = first.rsplit(":", 1)[1]
        return int(tail) if tail.isdigit() else None
    return 80


def server_blocks(text: str) -> list:
    """Each ``server { }`` block: its names, listen ports, own error logs and proxy_pass targets, and its file."""
    body = _blank_comments(text)
    marks = [(m.start(), m.group(1)) for m in CONF_FILE_MARK_RE.finditer(text)]
    stack, blocks = [], []
    for i, ch in enumerate(body):
        if ch == "{":
            head = WORD_BEFORE_BRACE_RE.search(body[max(0, i - 200):i])
            stack.append((head.group(1) if head else "", i))
        elif ch == "}" and stack:
            name, start = stack.pop()
            if name == "server" and not any(n == "server" for n, _ in stack):
                inner = body[start + 1:i]
                names = [w for m in SERVER_NAME_RE.findall(inner) for w in m.split()]
                listens = [" ".join(v.split()) for v in LISTEN_RE.findall(inner)]
                ports = [port for port in (_listen_port(v) for v in listens) if port]
                logs = [v for v in ERROR_LOG_RE.findall(inner) if not v.startswith(("stderr", "syslog:", "memory:"))]
                where = [f for pos, f in marks if pos < start]
                blocks.append({"server_name": names, "listen": listens, "ports": ports or [80],
                               "default": any(w in ("default_server", "default") for v in listens for w in v.split()),
                               "error_logs": logs, "proxy_pass": [v for _, v in PASS_RE.findall(inner)],
                               "file": where[-1] if where else None, "span": (start, i)})
    return blocks


def _name_matches(name: str, host: str) -> int:
    """2 exact, 1 wildcard (``*.example.com``, ``.example.com``, ``www.*``), 0 no (regex names are not tried)."""
    host, name = host.lower(), name.lower()
    if name == host:
        return 2
    if name.startswith("*.") and host.endswith(name[1:]):
        return 1
    if name.startswith(".") and (host == name[1:] or host.endswith(name)):
        return 1
    if name.endswith(".*") and host.startswith(name[:-1]):
        return 1
    return 0


def matching_server(blocks: list, host, port: int):
    """The block nginx would pick for ``Host: host`` on ``port``: the best name, else that port's default server."""
    on_port = [b for b in blocks if port in b["ports"]]
    if not on_port:
        return None
    if host:
        best, score = None, 0
        for block in on_port:  # the first block with the best name wins, as in nginx
            mine = max([_name_matches(n, host) for n in block["server_name"]] or [0])
            if mine > score:
                best, score = block, mine
        if best is not None:
            return best
    defaults = [b for b in on_port if b["default"]]
    return (defaults or on_port)[0]


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


def read_config_files(main_conf: str, prefix, limit_files: int = 64, limit_bytes: int = 1 << 20,
                      refused=None) -> str:
    """Fallback when ``nginx -T`` cannot run: the main file and its includes, marked like ``nginx -T`` does.

    ``refused``: a list to collect why a file or an include directory was not trusted (then it is not read).
    """
    base = os.path.dirname(main_conf)
    todo, seen, parts, total = [main_conf], set(), [], 0
    while todo and len(seen) < limit_files and total < limit_bytes:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        reason = why_untrusted(path)
        if reason and refused is not None and not reason.endswith("No such file or directory"):
            refused.append(reason)
            continue
        try:
            text = read_file(path, limit_bytes)
        except OSError:
            continue
        total += len(text)
        parts.append("# configuration file %s:\n%s" % (path, text))
        for pattern in INCLUDE_RE.findall(_strip_comments(text)):
            if not pattern.startswith("/"):
                pattern = os.path.join(prefix or base, pattern) if prefix else os.path.join(base, pattern)
            folder = os.path.dirname(pattern)
            reason = why_untrusted(folder, want_dir=True) if glob.has_magic(pattern) else None
            if reason and refused is not None and not reason.endswith("No such file or directory"):
                refused.append(reason)
                continue
            todo.extend(sorted(glob.glob(pattern)))
    return "\n".join(parts)
