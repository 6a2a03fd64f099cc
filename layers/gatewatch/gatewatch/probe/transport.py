"""HTTP/1.1 on a plain socket (and ``ssl``), every blocking call bounded by the attempt's deadline.

The socket is blocking: each call checks the budget first, and the deadline's watchdog (``deadline.py``) shuts the
socket down when the budget is spent, which wakes whatever call is blocked, the connect included (Linux aborts a
connect in SYN_SENT on shutdown). A timeout on each call would put the socket in Python's non-blocking mode, where
each connect, read and handshake step is a poll plus a retry: about 0.25 ms of CPU a probe at pool 50, a fifth of
an HTTPS probe (benchmarks/README.md).

Small on purpose: one request per connection (``Connection: close``), content-length, chunked and
close-delimited bodies, a bounded response head and a bounded body. Each failure is raised as ``ProbeFailure``
with the reason and phase the result document reports.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass, field

from gatewatch.probe.deadline import Deadline, DeadlineExceeded, SocketGuard
from gatewatch.probe.tls_info import a_label

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 200
MAX_CHUNK_LINE = 1024
RECV_SIZE = 64 * 1024
TLS_RECORD = 16 * 1024  # the largest TLS record's plaintext: what one SSL_read can return
TLS_HINTS = {
    "WRONG_VERSION_NUMBER": "WRONG_VERSION_NUMBER (the server does not speak TLS on this port: plain HTTP?)",
    "TLSV1_ALERT_INTERNAL_ERROR": "TLSV1_ALERT_INTERNAL_ERROR (often: no certificate for this SNI name)",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "SSLV3_ALERT_HANDSHAKE_FAILURE (no protocol or cipher in common)",
    "TLSV1_UNRECOGNIZED_NAME": "TLSV1_UNRECOGNIZED_NAME (the server has no site for this SNI name)",
}
STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) +(\d{3})(?: +(.*))?")


class ProbeFailure(Exception):
    def __init__(self, reason: str, phase: str, error: str):
        super().__init__(error)
        self.reason, self.phase, self.error = reason, phase, error
        self.first_byte_at: float | None = None  # set when the response had started, for the timings


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    body_bytes: int = 0
    truncated: bool = False
    first_byte_at: float | None = None
    head_done_at: float | None = None
    done_at: float | None = None
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


def open_tcp(addrinfos: list[tuple], deadline: Deadline, guard: SocketGuard) -> tuple[socket.socket, tuple]:
    """Connects to the first address that accepts; refused addresses are skipped, a timeout ends the attempt."""
    last: OSError | None = None
    for family, _type, proto, _name, sockaddr in addrinfos:
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        sock.settimeout(None)  # blocking, whatever socket.setdefaulttimeout says: the watchdog bounds every call
        guard.arm(sock)
        try:
            _budget(deadline, "connect_timeout", "connect")
            sock.connect(sockaddr)
        except (TimeoutError, DeadlineExceeded):
            _close(sock, guard)
            raise ProbeFailure(
                "connect_timeout", "connect", f"TCP connection to {_fmt(sockaddr)} timed out ({deadline.seconds:g} s)"
            ) from None
        except OSError as exc:
            _close(sock, guard)
            if guard.fired or deadline.remaining() <= 0:  # the watchdog aborted the connect
                raise ProbeFailure(
                    "connect_timeout", "connect",
                    f"TCP connection to {_fmt(sockaddr)} timed out ({deadline.seconds:g} s)",
                ) from None
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, sockaddr
    if last is None:  # addrinfos is never empty; fail as a probe failure rather than an assert (python -O)
        raise ProbeFailure("connect_refused", "connect", "no address to connect to")
    what = "refused" if isinstance(last, ConnectionRefusedError) else f"failed ({last.strerror or last})"
    addrs = ", ".join(_fmt(a[4]) for a in addrinfos)
    raise ProbeFailure("connect_refused", "connect", f"TCP connection to {addrs} was {what}")


class TlsStream:
    """The TLS connection as the engine uses it: CPython's C-level SSL object over the blocking socket.

    ``ssl.SSLSocket`` wraps the same object in Python: creating one moves the descriptor to a new socket object,
    sets its timeout and asks for its peer name (three system calls, each a GIL hand-off at pool 50), and each
    read passes through several Python layers. Without it an HTTPS probe costs 9% less CPU at pool 50
    (benchmarks/README.md). ``SSLContext._wrap_socket`` is what ``ssl.py`` itself calls (3.7 to 3.13);
    ``tests/unit/test_probe_tls.py`` fails if an interpreter drops it.
    """

    __slots__ = ("sock", "obj")

    def __init__(self, sock: socket.socket, obj):
        self.sock, self.obj = sock, obj

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.obj.write(view):]

    def recv(self, size: int) -> bytes:
        try:
            return self.obj.read(min(size, TLS_RECORD))  # one record at most: a larger buffer is only memory
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def getpeercert(self, binary_form: bool = False):
        return self.obj.getpeercert(binary_form)

    def cipher(self):
        return self.obj.cipher()

    def version(self):
        return self.obj.version()

    def close(self) -> None:
        self.sock.close()


def start_tls(sock: socket.socket, ctx: ssl.SSLContext, server_name: str, deadline: Deadline,
              guard: SocketGuard) -> TlsStream:
    """The handshake; certificate verification errors propagate as ``ssl.SSLCertVerificationError``."""
    try:
        _budget(deadline, "timeout", "tls")
        obj = ctx._wrap_socket(sock, False, a_label(server_name))  # noqa: SLF001 - see TlsStream
        obj.do_handshake()
    except ssl.SSLCertVerificationError:
        _close(sock, guard)
        raise
    except TimeoutError:
        _close(sock, guard)
        raise ProbeFailure("timeout", "tls", f"TLS handshake not finished within {deadline.seconds:g} s") from None
    except ssl.SSLError as exc:
        _close(sock, guard)
        if guard.fired or deadline.remaining() <= 0:  # the watchdog shut the socket down mid-handshake
            raise ProbeFailure("timeout", "tls", f"TLS handshake not finished within {deadline.seconds:g} s") from None
        why = exc.reason or str(exc)
        raise ProbeFailure("tls_error", "tls", f"TLS handshake failed: {TLS_HINTS.get(why, why)}") from None
    except OSError as exc:
        _close(sock, guard)
        if guard.fired or deadline.remaining() <= 0:
            raise ProbeFailure("timeout", "tls", f"TLS handshake not finished within {deadline.seconds:g} s") from None
        raise ProbeFailure("tls_error", "tls", f"connection lost during the TLS handshake ({_oserror(exc)})") from None
    return TlsStream(sock, obj)


def build_request(method: str, path: str, host_header: str, headers: dict[str, str], body: bytes | None,
                  user_agent: str) -> bytes:
    base = {"Host": host_header, "User-Agent": user_agent, "Accept": "*/*", "Accept-Encoding": "identity",
            "Connection": "close"}
    lowered = {k.lower() for k in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in base.items() if k.lower() not in lowered]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None and "content-length" not in lowered:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def send_request(sock: socket.socket, data: bytes, deadline: Deadline, guard: SocketGuard) -> None:
    try:
        _budget(deadline, "timeout", "request")
        sock.sendall(data)
    except TimeoutError:
        raise ProbeFailure("timeout", "request", f"sending the request took over {deadline.seconds:g} s") from None
    except OSError as exc:
        if guard.fired or deadline.remaining() <= 0:
            raise ProbeFailure("timeout", "request", f"sending the request took over {deadline.seconds:g} s") from None
        raise ProbeFailure("protocol_error", "request", f"the request could not be sent ({_oserror(exc)})") from None


class _Stream:
    """A receive buffer whose every recv waits at most the attempt's remaining budget."""

    def __init__(self, sock: socket.socket, deadline: Deadline, guard: SocketGuard):
        self.sock, self.deadline, self.guard = sock, deadline, guard
        self.buf = bytearray()
        self.eof = False
        self.first_byte_at: float | None = None
        self.phase = "ttfb"

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            _budget(self.deadline, "timeout", self.phase)
            data = self.sock.recv(RECV_SIZE)
        except TimeoutError:
            raise self._timeout() from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""
        except ssl.SSLError as exc:
            if self.guard.fired or self.deadline.remaining() <= 0:
                raise self._timeout() from None
            raise ProbeFailure("protocol_error", self.phase, f"TLS error while reading: {exc.reason or exc}") from None
        except OSError as exc:
            if self.guard.fired or self.deadline.remaining() <= 0:
                raise self._timeout() from None
            where = "before any response" if self.first_byte_at is None else "while reading the response"
            raise ProbeFailure("protocol_error", self.phase, f"{_oserror(exc)} {where}") from None
        if not data:
            if self.guard.fired or self.deadline.remaining() <= 0:
                raise self._timeout()
            self.eof = True
            return False
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self.buf += data
        return True

    def _timeout(self) -> ProbeFailure:
        if self.first_byte_at is None:
            what = "no response"
        elif self.phase == "ttfb":
            what = "the response headers were incomplete"
        else:
            what = "the body was incomplete"
        return ProbeFailure("timeout", self.phase, f"{what} after {self.deadline.seconds:g} s (the probe's deadline)")

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_line(self, limit: int, what: str) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                return self.take(i + 1).rstrip(b"\r\n")
            if len(self.buf) > limit:
                raise ProbeFailure("protocol_error", self.phase, f"{what} longer than {limit} bytes")
            if not self.fill():
                raise ProbeFailure("protocol_error", self.phase, f"connection closed in the middle of the {what}")


def read_response(sock: socket.socket, deadline: Deadline, guard: SocketGuard, *, method: str,
                  max_body_bytes: int, need_body: bool) -> Response:
    stream = _Stream(sock, deadline, guard)
    try:
        while True:
            resp = _read_head(stream)
            if not (100 <= resp.status < 200) or resp.status == 101:
                break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
        resp.first_byte_at = stream.first_byte_at
        resp.head_done_at = time.monotonic()
        stream.phase = "transfer"
        if method != "HEAD" and resp.status not in (204, 304) and not 100 <= resp.status < 200:
            _read_body(stream, resp, max_body_bytes, need_body)
    except ProbeFailure as failure:
        failure.first_byte_at = stream.first_byte_at
        raise
    resp.done_at = time.monotonic()
    return resp


def _read_head(stream: _Stream) -> Response:
    while True:
        end = _head_end(stream.buf)
        if end:
            break
        if len(stream.buf) > MAX_HEAD_BYTES:
            raise ProbeFailure("protocol_error", "ttfb", f"response headers larger than {MAX_HEAD_BYTES} bytes")
        if not stream.fill():
            if stream.first_byte_at is None:
                raise ProbeFailure("protocol_error", "ttfb", "the server closed the connection without a response")
            raise ProbeFailure("protocol_error", "ttfb", "the connection closed in the middle of the response headers")
    lines = stream.take(end).decode("latin-1").replace("\r\n", "\n").split("\n")
    m = STATUS_LINE.fullmatch(lines[0].strip().encode("latin-1"))
    if not m:
        raise ProbeFailure("protocol_error", "ttfb", f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    raw: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProbeFailure("protocol_error", "ttfb", f"malformed response header line: {line[:80]!r}")
        raw.append((name.lower(), value.strip()))
    if len(raw) > MAX_HEADERS:
        raise ProbeFailure("protocol_error", "ttfb", f"more than {MAX_HEADERS} response headers")
    headers: dict[str, str] = {}
    for name, value in raw:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Response(
        status=int(m.group(3)),
        reason=(m.group(4) or b"").decode("latin-1").strip(),
        version=f"HTTP/{m.group(1).decode()}.{m.group(2).decode()}",
        headers=headers,
        raw_headers=raw,
    )


def _head_end(buf: bytearray) -> int:
    i = buf.find(b"\r\n\r\n")
    if i >= 0:
        return i + 4
    i = buf.find(b"\n\n")
    return i + 2 if i >= 0 else 0


class _Collector:
    """Keeps at most ``limit`` body bytes; says when more would have come."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.over = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            data, self.over = data[:room], True
        if data:
            self.parts.append(data)
            self.size += len(data)


def _read_body(stream: _Stream, resp: Response, limit: int, need_body: bool) -> None:
    box = _Collector(limit)
    te = resp.headers.get("transfer-encoding", "").lower()
    length = resp.headers.get("content-length")
    if "chunked" in te:
        _read_chunked(stream, box)
    elif length is not None:
        try:
            n = int(length.split(",")[0].strip())
            if n < 0:
                raise ValueError
        except ValueError:
            raise ProbeFailure("protocol_error", "transfer", f"invalid Content-Length {length!r}") from None
        if n > limit and need_body:
            raise ProbeFailure("body_too_large", "transfer", f"the body is {n} bytes, over the {limit}-byte limit")
        _read_exact(stream, box, n)
    else:
        while not box.over and (stream.buf or stream.fill()):
            box.add(stream.take(len(stream.buf)))
    if box.over and need_body:
        raise ProbeFailure("body_too_large", "transfer", f"the body is larger than the {limit}-byte limit")
    resp.body = b"".join(box.parts)
    resp.body_bytes = box.size
    resp.truncated = box.over


def _read_exact(stream: _Stream, box: _Collector, n: int) -> None:
    got = 0
    while got < n and not box.over:
        if not stream.buf and not stream.fill():
            raise ProbeFailure(
                "protocol_error", "transfer", f"the connection closed after {got} of {n} body bytes"
            )
        piece = stream.take(min(len(stream.buf), n - got))
        got += len(piece)
        box.add(piece)


def _read_chunked(stream: _Stream, box: _Collector) -> None:
    while not box.over:
        line = stream.read_line(MAX_CHUNK_LINE, "chunk size line")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ProbeFailure("protocol_error", "transfer", f"invalid chunk size {line[:40]!r}") from None
        if size == 0:
            return  # trailers are not needed: the connection closes after this response
        _read_exact(stream, box, size)
        if not box.over:
            stream.read_line(MAX_CHUNK_LINE, "chunk terminator")


def _budget(deadline: Deadline, reason: str, phase: str) -> float:
    try:
        return deadline.budget()
    except DeadlineExceeded:
        raise ProbeFailure(reason, phase, f"the probe's {deadline.seconds:g} s deadline passed") from None


def _close(sock: socket.socket, guard: SocketGuard) -> None:
    guard.disarm()
    try:
        sock.close()
    except OSError:
        pass


def close(sock: socket.socket | None, guard: SocketGuard) -> None:
    if sock is not None:
        _close(sock, guard)


def _fmt(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _oserror(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by peer"
    return exc.strerror or str(exc) or type(exc).__name__
