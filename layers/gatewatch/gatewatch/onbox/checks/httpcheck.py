"""HTTP: a tiny client with a total deadline and a size bound, and the local health and endpoint checks."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import re
import socket
import threading
import time

from .common import ENDPOINT_TIMEOUT_S, FAIL, HEALTH_TIMEOUT_S, HTTP_MAX_BYTES, OK, UNKNOWN, VERSION, _errtext, _short
from .registry import check, result
from .sockets import _fmt_addr
from .validate import _ip_or_localhost, bounded_json

# HTTP: a tiny client with a total deadline and a size bound (http.client's timeout is per socket operation).

def _connect_unix(path: str, timeout: float):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def http_check(host: str, port: int, path: str, method: str = "GET", host_header=None, body=None,
               timeout: float = 3.0, ctx=None, tls: bool = False, unix=None) -> dict:
    """One request with a total deadline. ``tls``: HTTPS without verification (the local hop; SNI = Host).

    ``unix``: a unix socket path to talk HTTP over instead of host:port (``Host: localhost`` unless given).
    """
    shown = "[%s]" % host if ":" in host else host
    url = "%s://%s:%d%s" % ("https" if tls else "http", shown, port, path)
    if unix:
        url, shown, host_header = "http://unix:%s:%s" % (unix, path), "localhost", host_header or "localhost"
    out = {"url": url, "status": None, "latency_ms": None, "timed_out": False, "refused": False, "error": None,
           "json": None, "body_excerpt": "", "connected_to": None}
    start = time.monotonic()
    end = start + (min(timeout, max(0.1, ctx.remaining() - 0.3)) if ctx else timeout)
    try:
        if unix:
            sock = _connect_unix(unix, max(0.05, end - time.monotonic()))
        else:
            sock = socket.create_connection((host, port), timeout=max(0.05, end - time.monotonic()))
    except ConnectionRefusedError:
        out.update(refused=True, error="connection refused" + (" (a socket file nobody listens on)" if unix else ""))
        return out
    except FileNotFoundError:
        out.update(refused=True, missing=True, error="no such socket: %s" % unix)
        return out
    except socket.timeout:
        out.update(timed_out=True, error="connect timed out after %.1fs" % (end - start))
        return out
    except OSError as exc:
        out["error"] = "connect failed: %s" % _errtext(exc)
        return out
    data = b""
    try:
        if unix:
            out["connected_to"] = "unix:%s" % unix
        else:
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
                out["json"] = bounded_json(text, 8192, 16)
            except (ValueError, RecursionError):
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


@check("local_health")
def check_local_health(ctx):
    p = ctx.p
    h = http_check(p["backend_host"], p["backend_port"], p["health_path"], timeout=HEALTH_TIMEOUT_S, ctx=ctx,
                   unix=p["backend_socket"])
    ok = h["status"] is not None and 200 <= h["status"] < 300 and not h["timed_out"]
    return result(OK if ok else FAIL, h, [http_summary(h)])


@check("local_endpoint")
def check_local_endpoint(ctx):
    p = ctx.p
    out = {}

    def direct():
        out["direct"] = http_check(p["backend_host"], p["backend_port"], p["endpoint_path"], p["endpoint_method"],
                                   p["public_host"] if p["backend_socket"] else None, p["endpoint_body"],
                                   timeout=ENDPOINT_TIMEOUT_S, ctx=ctx, unix=p["backend_socket"])

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
