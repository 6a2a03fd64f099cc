"""The edge relay against real loopback origins (no lab needed): Cloudflare emulation, 52x codes, plain relaying.

The edge enters ``--netns`` before connecting out; here that is its own namespace (/proc/self/ns/net), so the
origin is a test server on this machine's loopback. setns needs CAP_SYS_ADMIN, hence root.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.servers import LoopbackServer, Reply, closed_port, hang_after_request, http_server, raw_reply

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the edge calls setns(), which needs root"),
]

RAY_RE = re.compile(r"^[0-9a-f]{16}-LAB$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Edge:
    def __init__(self, origin_port: int, *extra: str):
        self.port = _free_port()
        argv = [sys.executable, "-m", "lab.edge", "--listen", f"127.0.0.1:{self.port}", "--netns",
                "/proc/self/ns/net", "--origin", f"127.0.0.1:{origin_port}", "--read-timeout", "0.5",
                "--connect-timeout", "1", *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"edge did not start: {self.proc.stdout.read() if self.proc.stdout else ''}")

    def request(self, method: str = "GET", path: str = "/", body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers={"Host": "backend.lab.test"})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture()
def origin():
    routes = {
        "/api/v1/auth/demo-login": lambda req: Reply(401, {"detail": "nope", "got": req.body.decode()},
                                                     headers={"Server": "nginx/1.22.1"}),
        "/big": Reply(200, b"x" * 300_000),
    }
    with http_server(routes) as server:
        yield server


def test_cloudflare_mode_adds_edge_headers_and_passes_the_origin_answer(origin):
    edge = Edge(origin.port, "--cloudflare")
    try:
        status, headers, body = edge.request("POST", "/api/v1/auth/demo-login", b'{"username": "probe"}')
        assert status == 401
        assert headers["server"] == "cloudflare"  # the origin's own Server header is replaced, as Cloudflare does
        assert RAY_RE.match(headers["cf-ray"])
        assert json.loads(body)["got"] == '{"username": "probe"}'  # the request body reached the origin whole
        req = origin.requests[-1]
        assert req.headers.get("host") == "backend.lab.test"
        assert RAY_RE.match(req.headers.get("cf-ray", ""))  # the origin sees the same ray id header
        status, _, body = edge.request("GET", "/big")
        assert status == 200 and len(body) == 300_000
    finally:
        edge.close()


def test_cloudflare_mode_answers_521_when_the_origin_refuses():
    edge = Edge(closed_port(), "--cloudflare")
    try:
        status, headers, body = edge.request()
        assert status == 521 and headers["server"] == "cloudflare" and b"error code: 521" in body
    finally:
        edge.close()


def test_cloudflare_mode_answers_524_when_the_origin_does_not_answer():
    with LoopbackServer(hang_after_request) as hung:
        edge = Edge(hung.port, "--cloudflare")
        try:
            status, _, body = edge.request()
            assert status == 524 and b"error code: 524" in body
        finally:
            edge.close()


def test_cloudflare_mode_answers_520_to_a_reply_that_is_not_http():
    with LoopbackServer(raw_reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as odd:
        edge = Edge(odd.port, "--cloudflare")
        try:
            status, _, _ = edge.request()
            assert status == 520
        finally:
            edge.close()


def test_plain_mode_relays_bytes_unchanged(origin):
    edge = Edge(origin.port)
    try:
        status, headers, _ = edge.request("POST", "/api/v1/auth/demo-login", b"{}")
        assert status == 401 and headers["server"] == "nginx/1.22.1" and "cf-ray" not in headers
    finally:
        edge.close()


def test_plain_mode_closes_the_connection_when_the_origin_refuses():
    edge = Edge(closed_port())
    try:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            edge.request()
    finally:
        edge.close()


@pytest.mark.parametrize("flag,value", [("--listen", "10.0.0.1:18080"), ("--origin", "192.0.2.1:80")])
def test_edge_refuses_addresses_that_are_not_loopback(flag, value):
    argv = [sys.executable, "-m", "lab.edge", "--netns", "/proc/self/ns/net", flag, value]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert f"{flag} must be a loopback address" in result.stderr
