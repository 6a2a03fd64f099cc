"""Reusable loopback test servers: real sockets on 127.0.0.1 (or ::1), ephemeral ports, threads, stopped after.

``LoopbackServer(handler)`` hands every accepted connection to ``handler(conn, server)`` in its own thread;
``http_handler(routes)`` builds a small HTTP/1.1 responder, and the other handlers misbehave on purpose
(trickle, hang, reset, endless body). ``CertFactory`` makes a CA, leaves and self-signed certificates.
Only loopback addresses are ever used.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json as jsonlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[socket.socket, "LoopbackServer"], None]


class LoopbackServer:
    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1",
                 backlog: int = 128):
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("test servers listen on loopback only")
        self.handler, self.tls, self.host = handler, tls, host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.connections = 0
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str | None = None) -> str:
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{name}:{self.port}{path}"

    def start(self) -> LoopbackServer:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(2)
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client rejected our certificate, or went away
                with self._lock:
                    self._conns.append(conn)
            conn.settimeout(None)
            self.handler(conn, self)
        except OSError:
            pass  # the client closed its end: expected for the misbehaving handlers
        finally:
            try:
                conn.close()
            except OSError:
                pass


# ---- HTTP pieces ---------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunked: bool = False
    reason: str | None = None


REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 521: "Web Server Is Down"}


def read_request(conn: socket.socket, timeout: float = 5.0) -> Request | None:
    conn.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
        if len(buf) > 1 << 20:
            return None
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        data = conn.recv(65536)
        if not data:
            break
        rest += data
    return Request(method, path, headers, rest[:n])


def send_reply(conn: socket.socket, reply: Reply, head_only: bool = False) -> None:
    body = reply.body
    headers = dict(reply.headers)
    if isinstance(body, (dict, list)):
        body = jsonlib.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    if reply.delay_s:
        time.sleep(reply.delay_s)
    reason = reply.reason or REASONS.get(reply.status, "Status")
    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    if reply.chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers.setdefault("Content-Length", str(len(body)))
    headers.setdefault("Connection", "close")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if not head_only:
        if reply.chunked:
            for i in range(0, len(body), 7):  # small chunks to exercise the decoder
                piece = body[i:i + 7]
                out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            out += b"0\r\n\r\n"
        else:
            out += body
    conn.sendall(out)


Route = Callable[[Request], Reply] | Reply


def http_handler(routes: dict[str, Route]) -> Handler:
    """Answers one request per connection from ``routes`` (path without query -> Reply or callable); else 404."""

    def handle(conn: socket.socket, server: LoopbackServer) -> None:
        req = read_request(conn)
        if req is None:
            return
        server.requests.append(req)
        route = routes.get(req.path.split("?", 1)[0])
        if route is None:
            reply = Reply(404, "not found\n")
        else:
            reply = route(req) if callable(route) else route
        send_reply(conn, reply, head_only=req.method == "HEAD")

    return handle


def http_server(routes: dict[str, Route], **kw) -> LoopbackServer:
    return LoopbackServer(http_handler(routes), **kw)


def flaky(failures: int, bad: Reply, good: Reply) -> Callable[[Request], Reply]:
    """A route that answers ``bad`` for the first ``failures`` requests, then ``good``."""
    count = {"n": 0}
    lock = threading.Lock()

    def route(_req: Request) -> Reply:
        with lock:
            count["n"] += 1
            n = count["n"]
        return bad if n <= failures else good

    return route


# ---- misbehaving handlers -----------------------------------------------------------------------------------


def _drip(conn: socket.socket, server: LoopbackServer, data: bytes, interval: float) -> None:
    for i in range(len(data)):
        if server.stopping.wait(interval if i else 0):
            return
        conn.sendall(data[i:i + 1])


def trickle_headers(interval: float = 1.0) -> Handler:
    """Reads the request, then sends the response head one byte every ``interval`` seconds."""

    def handle(conn, server):
        if read_request(conn) is not None:
            _drip(conn, server, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: " + b"x" * 200, interval)

    return handle


def trickle_body(interval: float = 1.0, length: int = 1000) -> Handler:
    """A complete head promising ``length`` bytes, then the body one byte every ``interval`` seconds."""

    def handle(conn, server):
        if read_request(conn) is not None:
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n".encode())
            _drip(conn, server, b"y" * length, interval)

    return handle


def endless_body(chunked: bool = False) -> Handler:
    """A 200 whose body never ends (close-delimited, or chunked), sent as fast as the client reads."""

    def handle(conn, server):
        if read_request(conn) is None:
            return
        te = "Transfer-Encoding: chunked\r\n" if chunked else ""
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{te}Connection: close\r\n\r\n".encode())
        block = b"z" * 65536
        if chunked:
            block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        conn.settimeout(10)
        while not server.stopping.is_set():
            conn.sendall(block)

    return handle


def reset_after_request(conn: socket.socket, server: LoopbackServer) -> None:
    """Reads the request and aborts the connection with an RST (SO_LINGER 0), like a killed worker."""
    if read_request(conn) is not None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def close_after_request(conn: socket.socket, server: LoopbackServer) -> None:
    """Reads the request and closes cleanly without a byte of response (what Cloudflare calls a 520)."""
    read_request(conn)


def hang_after_request(conn: socket.socket, server: LoopbackServer) -> None:
    """Reads the request and never answers (a hung backend)."""
    read_request(conn)
    server.stopping.wait(60)


def raw_reply(data: bytes) -> Handler:
    """Reads the request and sends ``data`` verbatim (garbage status lines, broken framing...)."""

    def handle(conn, server):
        if read_request(conn) is not None:
            conn.sendall(data)

    return handle


# ---- listeners that never answer, ports that refuse -----------------------------------------------------------


class SilentListener:
    """Listens but never accepts: the kernel completes the TCP handshake, and no byte ever comes back."""

    def __init__(self, backlog: int = 16):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self._fillers: list[socket.socket] = []

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fill_backlog(self, attempts: int = 8) -> None:
        """Queue connections until the accept queue is full, so the next SYN is dropped (connect times out)."""
        for _ in range(attempts):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)
        time.sleep(0.2)

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self.sock.close()

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- certificates -------------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert_file: Path
    key_file: Path
    cert: x509.Certificate

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


class CertFactory:
    """A private CA and certificates it (or nobody) signs, written as PEM files under ``directory``."""

    def __init__(self, directory: Path, ca_name: str = "gatewatch test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self._n = 0

    def leaf(self, hosts: list[str], *, valid_from_days: float = -1, valid_to_days: float = 90,
             self_signed: bool = False) -> Issued:
        """A server certificate for ``hosts`` (names or IPs); days are relative to now (negative = past)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        issuer = subject if self_signed else self.ca_cert.subject
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=valid_from_days))
            .not_valid_after(now + dt.timedelta(days=valid_to_days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False
            )
        cert = builder.sign(key if self_signed else self.ca_key, hashes.SHA256())
        self._n += 1
        cert_file = self.dir / f"leaf{self._n}.pem"
        key_file = self.dir / f"leaf{self._n}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
        return Issued(cert_file, key_file, cert)
