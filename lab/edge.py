"""The lab's edge: listens on a loopback port of this namespace and relays to nginx inside the lab's namespace.

A socket keeps the namespace it was created in, so the listening socket is made first, then the process enters
the lab namespace (setns) before any thread starts; every outbound connection is then made inside it, to
127.0.0.1:80 there. Only loopback addresses are accepted on either side.

Two modes:
- ``--cloudflare`` (the lab's default): an *emulation* of a Cloudflare edge, one request per connection. It adds
  ``server: cloudflare`` and ``cf-ray: <16 hex>-LAB`` to every answer and answers 521 when the origin refuses the
  connection, 522 when connecting times out, 524 when the origin accepts but does not answer in time, 520 when
  it answers with something that is not HTTP. Real Cloudflare waits 100 s before a 524; the lab waits seconds.
- plain: relays bytes both ways, nothing added; a refused origin closes the client connection.

Every connection has a total deadline and a byte bound; at most ``--max-connections`` are served at once.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import secrets
import selectors
import socket
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
MAX_HEAD_BYTES = 64 * 1024
MAX_REQUEST_BODY_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
CLIENT_TIMEOUT_S = 10.0
TOTAL_DEADLINE_S = 60.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}

CF_ERRORS = {
    520: "Web server is returning an unknown error",
    521: "Web server is down",
    522: "Connection timed out",
    523: "Origin is unreachable",
    524: "A timeout occurred",
}


def enter_netns(path: str) -> None:
    """Move this thread (and threads started later) into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, os.CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def loopback(hostport: str, field: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    try:
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            raise ValueError
        return host.strip("[]"), int(port)
    except ValueError:
        raise SystemExit(
            f"edge: {field} must be a loopback address:port such as 127.0.0.1:18080 (got {hostport!r})"
        ) from None


def ray_id() -> str:
    return secrets.token_hex(8) + "-LAB"


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes] | None:
    """Read up to the blank line; returns (head, rest) or None when the peer closed or sent too much."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD_BYTES or time.monotonic() > deadline:
            return None
        chunk = sock.recv(16384)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _headers(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


def _error_page(code: int, ray: str) -> bytes:
    body = f"error code: {code}\n{CF_ERRORS[code]}\nRay ID: {ray}\n".encode()
    head = (
        f"HTTP/1.1 {code} {CF_ERRORS[code]}\r\nServer: cloudflare\r\nCF-RAY: {ray}\r\n"
        f"Content-Type: text/plain; charset=UTF-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Edge:
    def __init__(self, origin: tuple[str, int], cloudflare: bool, connect_timeout: float, read_timeout: float):
        self.origin = origin
        self.cloudflare = cloudflare
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(CLIENT_TIMEOUT_S)
            if self.cloudflare:
                self._cloudflare(client)
            else:
                self._plain(client)
        except OSError:
            pass  # a client or origin that goes away mid-way is not the edge's problem
        finally:
            client.close()

    def _cloudflare(self, client: socket.socket) -> None:
        deadline = time.monotonic() + TOTAL_DEADLINE_S
        got = _read_head(client, deadline)
        if got is None:
            return
        head, body = got
        request_line, *lines = head.split(b"\r\n")
        headers = _headers(lines)
        ray = ray_id()
        length = next((v for k, v in headers if k.lower() == "content-length"), "0")
        if any(k.lower() == "transfer-encoding" for k, _ in headers) or not length.isdigit():
            client.sendall(b"HTTP/1.1 411 Length Required\r\nServer: cloudflare\r\nConnection: close\r\n\r\n")
            return
        if int(length) > MAX_REQUEST_BODY_BYTES:
            client.sendall(b"HTTP/1.1 413 Payload Too Large\r\nServer: cloudflare\r\nConnection: close\r\n\r\n")
            return
        while len(body) < int(length):
            chunk = client.recv(65536)
            if not chunk:
                return
            body += chunk
        kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        kept += [("CF-RAY", ray), ("CF-Connecting-IP", client.getpeername()[0]), ("Connection", "close")]
        request = request_line + b"\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept).encode("latin-1") + b"\r\n"

        try:
            origin = socket.create_connection(self.origin, timeout=self.connect_timeout)
        except ConnectionRefusedError:
            client.sendall(_error_page(521, ray))
            return
        except TimeoutError:
            client.sendall(_error_page(522, ray))
            return
        except OSError:
            client.sendall(_error_page(523, ray))
            return
        with origin:
            origin.settimeout(self.read_timeout)
            try:
                origin.sendall(request + body[: int(length)])
                got = _read_head(origin, deadline)
            except TimeoutError:
                client.sendall(_error_page(524, ray))
                return
            except OSError:
                got = None
            if got is None or not got[0].startswith(b"HTTP/"):
                client.sendall(_error_page(520, ray))
                return
            status_line, *lines = got[0].split(b"\r\n")
            kept = [(k, v) for k, v in _headers(lines) if k.lower() not in HOP_BY_HOP | {"server"}]
            kept += [("Server", "cloudflare"), ("CF-RAY", ray), ("Connection", "close")]
            client.sendall(
                status_line + b"\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept).encode("latin-1") + b"\r\n"
            )
            chunk, sent = got[1], 0
            while sent < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
                if chunk:
                    client.sendall(chunk)
                    sent += len(chunk)
                try:
                    chunk = origin.recv(65536)
                except TimeoutError:
                    return
                if not chunk:
                    return  # the origin closed: the response is complete (we asked for Connection: close)

    def _plain(self, client: socket.socket) -> None:
        try:
            origin = socket.create_connection(self.origin, timeout=self.connect_timeout)
        except OSError:
            return
        deadline = time.monotonic() + TOTAL_DEADLINE_S
        moved = 0
        with origin, selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, origin)
            sel.register(origin, selectors.EVENT_READ, client)
            while moved < MAX_RESPONSE_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                events = sel.select(timeout=min(left, self.read_timeout + CLIENT_TIMEOUT_S))
                if not events:
                    return
                for key, _ in events:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                    moved += len(data)


def serve(listener: socket.socket, edge: Edge, max_connections: int) -> None:
    slots = threading.BoundedSemaphore(max_connections)

    def run(conn: socket.socket) -> None:
        try:
            edge.handle(conn)
        finally:
            slots.release()

    while True:
        conn, _ = listener.accept()
        if not slots.acquire(timeout=CLIENT_TIMEOUT_S):
            conn.close()
            continue
        threading.Thread(target=run, args=(conn,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.edge", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:18080", help="loopback address:port in this namespace")
    p.add_argument("--netns", required=True, help="path of the namespace to connect from, e.g. /run/netns/gwlab")
    p.add_argument("--origin", default="127.0.0.1:80", help="loopback address:port inside that namespace")
    p.add_argument("--cloudflare", action="store_true", help="emulate a Cloudflare edge (headers, 52x codes)")
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--read-timeout", type=float, default=7.0, help="longer than nginx's proxy_read_timeout")
    p.add_argument("--max-connections", type=int, default=64)
    p.add_argument("--pidfile")
    args = p.parse_args(argv)
    listen = loopback(args.listen, "--listen")
    origin = loopback(args.origin, "--origin")
    listener = socket.create_server(listen, family=socket.AF_INET6 if ":" in listen[0] else socket.AF_INET)
    enter_netns(args.netns)
    if args.pidfile:
        with open(args.pidfile, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    mode = "cloudflare emulation" if args.cloudflare else "plain relay"
    print(f"edge: {listen[0]}:{listen[1]} -> {args.netns} {origin[0]}:{origin[1]} ({mode})", flush=True)
    serve(listener, Edge(origin, args.cloudflare, args.connect_timeout, args.read_timeout), args.max_connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
