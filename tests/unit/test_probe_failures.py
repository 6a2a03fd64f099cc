"""Network failures against real loopback sockets: each one lands on its reason and phase, within the deadline."""

from __future__ import annotations

import socket
import time

import pytest

from gatewatch.probe import StaticResolver, probe_url
from tests.servers import (
    LoopbackServer,
    Reply,
    SilentListener,
    close_after_request,
    closed_port,
    hang_after_request,
    http_server,
    raw_reply,
    reset_after_request,
    trickle_body,
    trickle_headers,
)

# Generous: the deadline plus the watchdog's slack plus scheduling noise on a busy 2-core machine.
SLACK_S = 1.0


def timed(**kw):
    start = time.monotonic()
    result = probe_url(**kw)
    return result, time.monotonic() - start


def test_closed_port_is_connect_refused():
    port = closed_port()
    r = probe_url(f"http://127.0.0.1:{port}/")
    assert (r.status, r.reason, r.phase) == ("down", "connect_refused", "connect")
    assert f"127.0.0.1:{port}" in r.error and "refused" in r.error
    assert r.http is None and r.timings_ms.connect is not None and r.timings_ms.ttfb is None


def test_dns_failure_through_the_injected_resolver():
    resolver = StaticResolver({})
    r = probe_url("https://api.lab.test/health", resolver=resolver)
    assert (r.reason, r.phase) == ("dns_error", "dns")
    assert "api.lab.test" in r.error and resolver.calls == ["api.lab.test"]
    assert r.remote.ip is None and r.timings_ms.connect is None


def test_a_resolver_that_hangs_is_bounded_by_the_deadline():
    def stuck(*_args):
        time.sleep(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure")

    r, took = timed(url="http://slow-dns.lab.test/", resolver=stuck, timeout_s=0.5)
    assert (r.reason, r.phase) == ("dns_error", "dns") and "did not answer" in r.error
    assert took < 0.5 + SLACK_S


def test_resolve_to_connects_to_the_given_ip_but_keeps_the_host_header():
    with http_server({"/": lambda req: Reply(200, {"host": req.headers["host"]})}) as s:
        resolver = StaticResolver({})  # would fail: resolve_to must bypass it
        r = probe_url(f"http://www.lab.test:{s.port}/", resolve_to="127.0.0.1", resolver=resolver)
        assert r.ok and r.http.json == {"host": f"www.lab.test:{s.port}"}
        assert resolver.calls == [] and r.remote.ip == "127.0.0.1"


def test_ipv6_loopback_family_is_recorded():
    try:
        server = http_server({"/": Reply(200, "six")}, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with server as s:
        r = probe_url(s.url("/"))
        assert r.ok and r.remote.family == "ipv6" and r.remote.ip == "::1"


def test_listener_that_never_answers_times_out_at_ttfb():
    with SilentListener() as lst:
        r, took = timed(url=lst.url(), timeout_s=0.6)
    assert (r.status, r.reason, r.phase) == ("down", "timeout", "ttfb")
    assert r.timings_ms.connect is not None and r.timings_ms.ttfb is not None
    assert "no response" in r.error
    assert took < 0.6 + SLACK_S


def test_full_backlog_gives_connect_timeout():
    """Linux drops SYNs for a listener whose accept queue is full, so the connect itself times out."""
    with SilentListener(backlog=0) as lst:
        lst.fill_backlog()
        r, took = timed(url=lst.url(), timeout_s=0.6)
    if r.reason != "connect_timeout":
        pytest.skip(f"this kernel accepted the connection despite a full backlog (got {r.reason})")
    assert r.phase == "connect" and "timed out" in r.error
    assert took < 0.6 + SLACK_S


def test_header_trickler_is_cut_at_the_deadline():
    with LoopbackServer(trickle_headers(interval=0.2)) as s:
        r, took = timed(url=s.url(), timeout_s=1.0)
    assert (r.reason, r.phase) == ("timeout", "ttfb")
    assert "headers were incomplete" in r.error
    assert took < 1.0 + SLACK_S  # each byte alone would have reset a per-recv timeout


def test_body_trickler_is_cut_at_the_deadline():
    with LoopbackServer(trickle_body(interval=0.2)) as s:
        r, took = timed(url=s.url(), timeout_s=1.0)
    assert (r.reason, r.phase) == ("timeout", "transfer")
    assert r.timings_ms.ttfb is not None and "body was incomplete" in r.error
    assert took < 1.0 + SLACK_S


def test_connection_reset_is_a_protocol_error():
    with LoopbackServer(reset_after_request) as s:
        r = probe_url(s.url(), timeout_s=3)
    assert (r.reason, r.phase) == ("protocol_error", "ttfb")
    assert "reset" in r.error


def test_close_without_response_is_a_protocol_error():
    with LoopbackServer(close_after_request) as s:
        r = probe_url(s.url(), timeout_s=3)
    assert (r.reason, r.phase) == ("protocol_error", "ttfb")
    assert "without a response" in r.error


def test_hung_backend_times_out_and_the_server_saw_one_connection():
    with LoopbackServer(hang_after_request) as s:
        r, took = timed(url=s.url(), timeout_s=0.5)
        assert s.connections == 1
    assert (r.reason, r.phase) == ("timeout", "ttfb")
    assert took < 0.5 + SLACK_S


@pytest.mark.parametrize("data,words", [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nbroken header line\r\n\r\n", "malformed"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", "5 of 50"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
])
def test_broken_responses_are_protocol_errors(data, words):
    with LoopbackServer(raw_reply(data)) as s:
        r = probe_url(s.url(), timeout_s=3)
    assert r.reason == "protocol_error" and words in r.error, r.error


def test_close_delimited_http10_body_is_read_to_the_end():
    with LoopbackServer(raw_reply(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\": true}")) as s:
        r = probe_url(s.url(), timeout_s=3)
    assert r.ok and r.http.version == "HTTP/1.0" and r.http.json == {"ok": True}


@pytest.mark.parametrize("url", ["ftp://files.lab.test/", "http://api.lab.test:99999/", "http:///no-host"])
def test_unusable_urls_are_reported_not_raised(url):
    r = probe_url(url, resolver=StaticResolver({}))
    assert (r.status, r.reason, r.phase) == ("down", "protocol_error", "request")
    assert "unusable URL" in r.error
