"""One attempt against one URL: resolve, connect, TLS, request, response, assertions, under one deadline.

``probe_url`` never raises on a bad server or a bad network: it returns a ``ProbeResult`` that says what
failed, in which phase, in one sentence. Redirects are followed within the same deadline and recorded.

Body limit policy: a body over ``max_body_bytes`` fails the attempt (``body_too_large``) only when an assertion
needs the body (``body_contains`` or ``json``); otherwise reading stops at the limit and the result is marked
``body_truncated`` (the status code and headers already answered the question).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from gatewatch import __version__, safejson
from gatewatch.addresses import is_metadata, non_public, parse_ip
from gatewatch.clock import Clock
from gatewatch.probe import assertions as checks
from gatewatch.probe.cloudflare import edge_info
from gatewatch.probe.deadline import WATCHDOG, Deadline, DeadlineExceeded, SocketGuard, guard_until
from gatewatch.probe.resolve import DnsError, Resolver, resolve
from gatewatch.probe.result import HttpInfo, ProbeResult, Redirect, Remote, Timings
from gatewatch.probe.tls_info import client_context, describe
from gatewatch.probe.transport import (
    ProbeFailure,
    Response,
    build_request,
    close,
    open_tcp,
    read_response,
    send_request,
    start_tls,
)

USER_AGENT = f"gatewatch/{__version__}"
REDIRECT_CODES = (301, 302, 303, 307, 308)
EXCERPT_CHARS = 2048
HEADER_VALUE_CHARS = 512
# The response headers kept for diagnosis (plus every cf-* header).
DIAGNOSTIC_HEADERS = (
    "server", "cf-ray", "cf-cache-status", "content-type", "content-length", "location", "date", "via", "age",
    "cache-control", "retry-after", "www-authenticate", "content-encoding", "transfer-encoding", "connection",
    "x-cache", "x-request-id", "x-powered-by", "strict-transport-security", "alt-svc",
)
# Credentials are not carried to another host on a redirect.
CROSS_HOST_DROP = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")


@dataclass
class Expectations:
    """What makes an answer right; ``gatewatch.config.Expect`` and ``Health`` convert to this."""

    status: list[int] | None = None
    max_latency_ms: float | None = None
    body_contains: str | None = None
    json: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, expect: Any) -> Expectations:
        if expect is None:
            return cls()
        if isinstance(expect, cls):
            return expect
        return cls(
            status=list(expect.status) if expect.status else None,
            max_latency_ms=expect.max_latency_ms,
            body_contains=expect.body_contains,
            json=dict(expect.json_ or {}),
        )

    @property
    def needs_body(self) -> bool:
        return bool(self.body_contains) or bool(self.json)


def probe_url(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    timeout_s: float = 10.0,
    max_body_bytes: int = 1024 * 1024,
    max_redirects: int = 10,
    verify_tls: bool = True,
    ca_file: str | None = None,
    resolve_to: str | None = None,
    expect: Any = None,
    resolver: Resolver | None = None,
    clock: Clock | None = None,
    allow_private_redirects: bool = False,
) -> ProbeResult:
    """One attempt; ``expect`` is a ``gatewatch.config.Expect``, an ``Expectations`` or None (any 2xx/3xx).

    The URL itself may name any address. A redirect may lead only to a public address or back to the address
    and port the first hop connected to, unless ``allow_private_redirects``; never to a cloud metadata address.
    The check is on the address actually connected to, so a name that re-resolves (DNS rebinding) cannot pass.
    """
    clock = clock or Clock()
    exp = Expectations.of(expect)
    result = ProbeResult(url=url, method=method.upper(), started_at=clock.iso())
    deadline = Deadline(timeout_s)
    guard, token = guard_until(deadline)
    attempt = _Attempt(result, deadline, guard, clock, resolver, verify_tls, ca_file, max_body_bytes, exp)
    attempt.allow_private_redirects = allow_private_redirects
    payload = body.encode("utf-8") if isinstance(body, str) else body
    response: Response | None = None
    try:
        _check_url(url)
        response = attempt.follow(url, method.upper(), dict(headers or {}), payload, max_redirects, resolve_to)
    except ProbeFailure as failure:
        result.fail(failure.reason, failure.phase, failure.error)
    except Exception as exc:  # noqa: BLE001 - one odd server must not sink a whole round; the result says what
        result.fail("protocol_error", "request", f"unexpected {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        WATCHDOG.cancel(token)
        guard.close()
    result.timings_ms.total = round(deadline.elapsed_ms() - attempt.untimed_s * 1000, 3)
    if response is not None:
        _judge(result, response, exp, max_redirects)
    return result


class _Attempt:
    def __init__(self, result, deadline, guard, clock, resolver, verify_tls, ca_file, max_body_bytes, exp):
        self.result: ProbeResult = result
        self.deadline: Deadline = deadline
        self.guard: SocketGuard = guard
        self.clock: Clock = clock
        self.resolver = resolver
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.max_body_bytes = max_body_bytes
        self.exp: Expectations = exp
        self.untimed_s = 0.0  # our own work between phases (certificate parsing), left out of the timings
        self.allow_private_redirects = False
        self.origin: tuple[str, int] | None = None  # the address the configured URL connected to
        self.redirected = False

    def follow(self, url, method, headers, body, max_redirects, resolve_to) -> Response:
        first_host = (urlsplit(url).hostname or "").lower()
        while True:
            host = (urlsplit(url).hostname or "").lower()
            response = self.hop(url, method, headers, body, resolve_to if host == first_host else None)
            location = response.headers.get("location")
            if not (response.status in REDIRECT_CODES and location and max_redirects > 0):
                return response
            if self.exp.status and response.status in self.exp.status:
                return response  # the redirect itself is what this target checks
            if len(self.result.redirects) >= max_redirects:
                return response  # _judge reports the loop
            next_url = urljoin(url, location)
            self.result.redirects.append(Redirect(response.status, next_url))
            if urlsplit(next_url).scheme not in ("http", "https") or not urlsplit(next_url).hostname:
                raise ProbeFailure("protocol_error", "ttfb", f"redirected to an unusable URL {next_url[:200]!r}")
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("GET" if method != "HEAD" else "HEAD"), None
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            if (urlsplit(next_url).hostname or "").lower() != host:
                headers = {k: v for k, v in headers.items() if k.lower() not in CROSS_HOST_DROP}
            url = next_url
            self.redirected = True

    def hop(self, url, method, headers, body, resolve_to) -> Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        timings = Timings()
        self.result.timings_ms = timings
        self.result.tls = None
        hop_start = mark = time.monotonic()
        try:
            try:
                addrinfos = resolve(host, port, self.deadline, self.resolver, resolve_to)
            except DnsError as exc:
                raise ProbeFailure("dns_error", "dns", str(exc)) from None
            except DeadlineExceeded:
                raise ProbeFailure(
                    "dns_error", "dns", f"the DNS lookup of {host} did not answer within {self.deadline.seconds:g} s"
                ) from None
            timings.dns, mark = _ms(mark), time.monotonic()
            if self.redirected:
                addrinfos = self._redirect_targets(host, addrinfos)
            sock, sockaddr = open_tcp(addrinfos, self.deadline, self.guard)
            if self.redirected and self._redirect_refusal(sockaddr):
                close(sock, self.guard)  # cannot happen (only checked addresses are dialled); fail closed anyway
                raise ProbeFailure("protocol_error", "connect", f"redirect to {host} refused at {sockaddr[0]}")
            if self.origin is None:
                self.origin = (str(parse_ip(sockaddr[0]) or sockaddr[0]), sockaddr[1])
            self.result.remote = Remote(sockaddr[0], "ipv6" if ":" in sockaddr[0] else "ipv4", sockaddr[1])
            timings.connect, mark = _ms(mark), time.monotonic()
            if tls:
                sock = self._handshake(sock, host, addrinfos)
                timings.tls, mark = _ms(mark), time.monotonic()
                self._describe_peer(sock, host)  # untimed: parsing the certificate is not the server's latency
                untimed, mark = time.monotonic() - mark, time.monotonic()
                hop_start += untimed
                self.untimed_s += untimed
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host_header = parts.netloc.rpartition("@")[2]
            request = build_request(method, path, host_header, headers, body, USER_AGENT)
            send_request(sock, request, self.deadline, self.guard)
            timings.request, sent = _ms(mark), time.monotonic()
            mark = sent
            response = read_response(sock, self.deadline, self.guard, method=method,
                                     max_body_bytes=self.max_body_bytes, need_body=self.exp.needs_body)
            close(sock, self.guard)
        except ProbeFailure as failure:
            if failure.first_byte_at is not None:
                timings.ttfb = round((failure.first_byte_at - mark) * 1000, 3)
                timings.starttransfer = round((failure.first_byte_at - hop_start) * 1000, 3)
                mark = failure.first_byte_at
            if getattr(timings, failure.phase, 0) is None:
                setattr(timings, failure.phase, _ms(mark))
            raise
        timings.ttfb = round((response.first_byte_at - sent) * 1000, 3)
        timings.transfer = round((response.done_at - response.first_byte_at) * 1000, 3)
        timings.starttransfer = round((response.first_byte_at - hop_start) * 1000, 3)
        return response

    def _redirect_refusal(self, sockaddr: tuple) -> str | None:
        addr = parse_ip(str(sockaddr[0]))
        if addr is None:
            return "not an IP address"
        if is_metadata(addr):
            return "a cloud metadata address (never followed)"
        if self.allow_private_redirects or (str(addr), sockaddr[1]) == self.origin:
            return None
        why = non_public(addr)
        return f"{why} (set allow_private_redirects: true on the target to follow it)" if why else None

    def _redirect_targets(self, host: str, addrinfos: list[tuple]) -> list[tuple]:
        """The resolved addresses a redirect may connect to; only these are dialled."""
        allowed = [info for info in addrinfos if self._redirect_refusal(info[4]) is None]
        if not allowed:
            ip = addrinfos[0][4][0]
            raise ProbeFailure(
                "protocol_error", "connect",
                f"redirect to {host} refused: {ip} is {self._redirect_refusal(addrinfos[0][4])}",
            )  # fmt: skip
        return allowed

    def _handshake(self, sock, host, addrinfos):
        try:
            ctx = client_context(self.verify_tls, self.ca_file)
            ssock = start_tls(sock, ctx, host, self.deadline, self.guard)
        except ssl.SSLCertVerificationError as exc:
            message = exc.verify_message or exc.reason or str(exc)
            self.result.tls = self._unverified_certificate(host, addrinfos, message)
            when = f" (not_after {self.result.tls.not_after})" if self.result.tls and "expired" in message else ""
            raise ProbeFailure("tls_error", "tls", f"the TLS certificate was rejected: {message}{when}") from None
        return ssock

    def _describe_peer(self, ssock, host):
        der = ssock.getpeercert(binary_form=True)
        cipher = ssock.cipher()
        self.result.tls = describe(
            der, host, self.clock.now(), verified=self.verify_tls,
            verify_error=None if self.verify_tls else "not checked: verify_tls is false",
            version=ssock.version(), cipher=cipher[0] if cipher else None, checked=self.verify_tls,
            decoded=ssock.getpeercert if self.verify_tls else None,
        )

    def _unverified_certificate(self, host, addrinfos, message):
        """A second handshake without verification, within the same deadline, to report the rejected cert."""
        try:
            sock, _ = open_tcp(addrinfos, self.deadline, self.guard)
            ssock = start_tls(sock, client_context(False, None), host, self.deadline, self.guard)
            der = ssock.getpeercert(binary_form=True)
            cipher = ssock.cipher()
            version = ssock.version()
            close(ssock, self.guard)
        except (ProbeFailure, ssl.SSLError, OSError):
            return None
        return describe(der, host, self.clock.now(), verified=False, verify_error=message,
                        version=version, cipher=cipher[0] if cipher else None)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ProbeFailure("protocol_error", "request", f"unusable URL {url[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeFailure("protocol_error", "request", f"unusable URL {url[:200]!r}: need http(s)://host/...")


def _judge(result: ProbeResult, response: Response, exp: Expectations, max_redirects: int) -> None:
    text = response.body.decode("utf-8", errors="replace")
    parsed = _json(response)
    result.http = HttpInfo(
        status=response.status,
        reason=response.reason,
        version=response.version,
        headers=_diagnostic_headers(response.headers),
        body_excerpt=text[:EXCERPT_CHARS],
        body_bytes=response.body_bytes,
        body_truncated=response.truncated,
        json=parsed,
    )
    result.cloudflare = edge_info(response.status, response.headers)
    status_check = checks.check_status(response.status, exp.status)
    result.assertions.append(status_check)
    if exp.body_contains:
        result.assertions.append(checks.check_body_contains(text, exp.body_contains))
    if exp.json:
        result.assertions.extend(checks.check_json(parsed if parsed is not None else checks.MISSING, exp.json))
    latency = None
    if exp.max_latency_ms:
        latency = checks.check_latency(result.timings_ms.total, exp.max_latency_ms)
        result.assertions.append(latency)

    code = response.status
    looping = code in REDIRECT_CODES and max_redirects > 0 and len(result.redirects) >= max_redirects \
        and not (exp.status and code in exp.status) and "location" in response.headers
    if looping:
        result.fail("http_status", "assert", f"still redirected after {max_redirects} redirects (a redirect loop?)")
    elif not status_check.ok:
        cf = result.cloudflare
        said = f"HTTP {code}{' ' + response.reason if response.reason else ''}"
        if cf.code:
            result.fail("http_5xx_edge", "assert", f"the Cloudflare edge answered {code}: {cf.meaning}")
        elif code >= 500:
            via = " (relayed by the Cloudflare edge)" if cf.edge else ""
            result.fail("http_5xx_origin", "assert", f"the origin answered {said}{via}")
        else:
            result.fail("http_status", "assert", f"{said}, expected {status_check.expected}")
    else:
        failed = [a for a in result.assertions if not a.ok and a is not latency]
        if failed:
            detail = "; ".join(f"{a.name} expected {a.expected!r}, got {a.actual!r}" for a in failed)
            result.fail("assertion_failed", "assert", detail[:500])
        else:
            result.ok = True
            result.degraded = latency is not None and not latency.ok
            result.status = "degraded" if result.degraded else "up"


def _json(response: Response) -> Any:
    if response.truncated or not response.body:
        return None
    ctype = response.headers.get("content-type", "").lower()
    if "json" not in ctype and response.body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return safejson.loads(response.body, max_bytes=max(len(response.body), 1))
    except safejson.JsonError:
        return None  # a json assertion then fails, naming the path as <missing>


def _diagnostic_headers(headers: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in headers.items() if k in DIAGNOSTIC_HEADERS or k.startswith("cf-")}
    return {k: v[:HEADER_VALUE_CHARS] for k, v in keep.items()}


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 3)
