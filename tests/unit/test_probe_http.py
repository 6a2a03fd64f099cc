"""The probe against real HTTP servers on loopback: status, headers, bodies, JSON, redirects, Cloudflare codes."""

from __future__ import annotations

import json

import pytest

from gatewatch.config import Expect
from gatewatch.probe import CLOUDFLARE_CODES, REASONS, StaticResolver, probe_url
from tests.servers import LoopbackServer, Reply, endless_body, http_server

LAB = StaticResolver({"api.lab.test": "127.0.0.1"})
CF_HEADERS = {"Server": "cloudflare", "CF-RAY": "8f1c2d3e4a5b6c7d-AMS", "CF-Cache-Status": "DYNAMIC"}


@pytest.fixture(scope="module")
def site():
    def echo(req):
        return Reply(200, {"method": req.method, "body": req.body.decode(), "headers": req.headers})

    routes = {
        "/": Reply(200, "hello from the lab\n", {"Content-Type": "text/plain"}),
        "/health": Reply(200, {"status": "ok", "database": {"ok": True, "latency_ms": 3}, "items": [1, 2]}),
        "/chunked": Reply(200, {"status": "ok", "payload": "abcdefghijklmnopqrstuvwxyz" * 4}, chunked=True),
        "/echo": echo,
        "/cf-502": Reply(502, "<html>502 Bad Gateway</html>", CF_HEADERS),
        "/cf-521": Reply(521, "error code: 521", CF_HEADERS),
        "/cf-530": Reply(530, "error code: 1016", CF_HEADERS),
        "/origin-500": Reply(500, "boom", {"Server": "nginx/1.22.1"}),
        "/slow": Reply(200, "late but right", delay_s=0.3),
        "/big": Reply(200, "x" * 300_000),
        "/r1": Reply(301, "", {"Location": "/r2"}),
        "/r2": Reply(302, "", {"Location": "http://api.lab.test:{port}/health"}),
        "/loop": Reply(302, "", {"Location": "/loop"}),
        "/away": Reply(302, "", {"Location": "ftp://files.lab.test/x"}),
    }
    with http_server(routes) as server:
        loc = routes["/r2"].headers
        loc["Location"] = loc["Location"].format(port=server.port)
        yield server


def test_plain_http_ok_records_every_phase_and_header(site):
    r = probe_url(site.url("/"), resolver=LAB)
    d = r.to_dict()
    assert (d["status"], d["ok"], d["degraded"], d["reason"], d["phase"], d["error"]) == ("up", True, False, None,
                                                                                          None, None)
    t = d["timings_ms"]
    for phase in ("dns", "connect", "ttfb", "transfer", "total"):
        assert isinstance(t[phase], float) and t[phase] >= 0, phase
    assert t["tls"] is None
    assert t["total"] >= t["connect"] + t["ttfb"]
    assert d["remote"] == {"ip": "127.0.0.1", "family": "ipv4", "port": site.port}
    assert d["http"]["status"] == 200 and d["http"]["version"] == "HTTP/1.1"
    assert d["http"]["headers"]["content-type"] == "text/plain"
    assert d["http"]["body_excerpt"] == "hello from the lab\n" and d["http"]["body_bytes"] == 19
    assert d["cloudflare"] == {"edge": False, "ray": None, "colo": None, "code": None, "meaning": None}
    assert d["assertions"] == [{"name": "status", "expected": "2xx/3xx", "actual": 200, "ok": True}]
    json.dumps(d)  # the document is JSON-serialisable


def test_request_carries_host_user_agent_method_headers_and_body(site):
    r = probe_url(site.url("/echo", host="api.lab.test"), method="POST", headers={"X-Probe": "1"},
                  body='{"a": 1}', resolver=LAB)
    seen = r.http.json
    assert seen["method"] == "POST" and seen["body"] == '{"a": 1}'
    assert seen["headers"]["host"] == f"api.lab.test:{site.port}"
    assert seen["headers"]["user-agent"].startswith("gatewatch/")
    assert seen["headers"]["x-probe"] == "1" and seen["headers"]["connection"] == "close"


def test_json_assertions_pass_and_fail_with_explanations(site):
    good = probe_url(site.url("/health"), expect=Expect(json={"status": "ok", "database.ok": True, "items.1": 2}))
    assert good.status == "up" and all(a.ok for a in good.assertions)
    assert good.http.json["database"]["latency_ms"] == 3

    bad = probe_url(site.url("/health"), expect=Expect(json={"status": "degraded", "database.missing": 1}))
    assert (bad.status, bad.reason, bad.phase) == ("down", "assertion_failed", "assert")
    failed = {a.name: a for a in bad.assertions if not a.ok}
    assert failed["json.status"].expected == "degraded" and failed["json.status"].actual == "ok"
    assert failed["json.database.missing"].actual == "<missing>"
    assert "json.status expected 'degraded', got 'ok'" in bad.error


def test_body_contains_and_chunked_bodies(site):
    r = probe_url(site.url("/chunked"), expect=Expect(body_contains="xyzabc"))
    assert r.ok and r.http.headers["transfer-encoding"] == "chunked"
    assert r.http.json["payload"].startswith("abc") and r.http.body_bytes > 100
    miss = probe_url(site.url("/"), expect=Expect(body_contains="goodbye"))
    assert miss.reason == "assertion_failed"
    assert miss.to_dict()["assertions"][1] == {
        "name": "body_contains", "expected": "goodbye", "actual": False, "ok": False}


def test_head_request_has_no_body(site):
    r = probe_url(site.url("/"), method="HEAD")
    assert r.ok and r.http.body_bytes == 0 and r.http.headers["content-length"] == "19"


def test_cloudflare_relayed_502_is_an_origin_failure_with_colo(site):
    r = probe_url(site.url("/cf-502"))
    assert (r.status, r.reason, r.phase) == ("down", "http_5xx_origin", "assert")
    cf = r.to_dict()["cloudflare"]
    assert cf == {"edge": True, "ray": "8f1c2d3e4a5b6c7d-AMS", "colo": "AMS", "code": None, "meaning": None}
    assert r.http.headers["cf-cache-status"] == "DYNAMIC"
    assert "502" in r.error and "Cloudflare" in r.error


@pytest.mark.parametrize("path,code", [("/cf-521", 521), ("/cf-530", 530)])
def test_cloudflare_origin_error_codes_are_edge_failures(site, path, code):
    r = probe_url(site.url(path))
    assert (r.status, r.reason) == ("down", "http_5xx_edge")
    assert r.cloudflare.code == code and r.cloudflare.meaning.startswith(CLOUDFLARE_CODES[code][0])
    assert str(code) in r.error


def test_plain_origin_500_and_404(site):
    r = probe_url(site.url("/origin-500"))
    assert (r.reason, r.cloudflare.edge, r.http.headers["server"]) == ("http_5xx_origin", False, "nginx/1.22.1")
    nf = probe_url(site.url("/no-such-route"))
    assert (nf.reason, nf.http.status) == ("http_status", 404)
    assert (nf.assertions[0].ok, nf.assertions[0].actual) == (False, 404)
    assert "404" in nf.error and "2xx/3xx" in nf.error
    expected_404 = probe_url(site.url("/no-such-route"), expect=Expect(status=[404]))
    assert expected_404.ok


def test_slow_but_correct_is_degraded_and_too_slow_is_not_down(site):
    fast_enough = probe_url(site.url("/slow"), expect=Expect(max_latency_ms=5000))
    assert fast_enough.status == "up"
    slow = probe_url(site.url("/slow"), expect=Expect(max_latency_ms=100))
    assert (slow.status, slow.ok, slow.degraded, slow.reason) == ("degraded", True, True, None)
    lat = [a for a in slow.assertions if a.name == "max_latency_ms"][0]
    assert lat.ok is False and lat.expected == 100 and lat.actual >= 300


def test_a_deadline_shorter_than_the_answer_is_a_ttfb_timeout(site):
    r = probe_url(site.url("/slow"), timeout_s=0.1)
    assert (r.status, r.reason, r.phase) == ("down", "timeout", "ttfb")
    assert r.timings_ms.ttfb is not None and r.timings_ms.total < 1000


def test_big_body_is_truncated_unless_an_assertion_needs_it(site):
    r = probe_url(site.url("/big"), max_body_bytes=100_000)
    assert r.ok and r.http.body_truncated and r.http.body_bytes == 100_000
    assert len(r.http.body_excerpt) == 2048
    need = probe_url(site.url("/big"), max_body_bytes=100_000, expect=Expect(body_contains="x"))
    assert (need.reason, need.phase) == ("body_too_large", "transfer")
    assert "100000" in need.error


@pytest.mark.parametrize("chunked", [False, True])
def test_endless_body_is_cut_at_the_limit(chunked):
    with LoopbackServer(endless_body(chunked)) as s:
        r = probe_url(s.url("/"), max_body_bytes=200_000, timeout_s=5)
        assert r.ok and r.http.body_truncated and r.http.body_bytes == 200_000
        r2 = probe_url(s.url("/"), max_body_bytes=200_000, timeout_s=5, expect=Expect(body_contains="never"))
        assert r2.reason == "body_too_large"


def test_redirect_chain_is_followed_and_recorded(site):
    r = probe_url(site.url("/r1"), resolver=LAB, expect=Expect(json={"status": "ok"}))
    assert r.ok and r.http.status == 200
    assert r.to_dict()["redirects"] == [
        {"status": 301, "url": site.url("/r2")},
        {"status": 302, "url": f"http://api.lab.test:{site.port}/health"},
    ]
    assert r.url == site.url("/r1")


def test_redirect_loop_is_bounded(site):
    r = probe_url(site.url("/loop"), max_redirects=3)
    assert (r.status, r.reason) == ("down", "http_status")
    assert len(r.redirects) == 3 and "3 redirects" in r.error


def test_redirects_not_followed_when_the_redirect_is_expected_or_disabled(site):
    r = probe_url(site.url("/r1"), expect=Expect(status=[301]))
    assert r.ok and r.http.status == 301 and r.redirects == []
    off = probe_url(site.url("/r1"), max_redirects=0)
    assert off.ok and off.http.headers["location"] == "/r2"


def test_redirect_to_another_scheme_is_a_protocol_error(site):
    r = probe_url(site.url("/away"))
    assert r.reason == "protocol_error" and "ftp://" in r.error


def test_reasons_vocabulary_is_the_data_model():
    assert REASONS == ("dns_error", "connect_refused", "connect_timeout", "tls_error", "timeout", "http_5xx_edge",
                       "http_5xx_origin", "http_status", "assertion_failed", "body_too_large", "protocol_error")
    assert set(CLOUDFLARE_CODES) == {520, 521, 522, 523, 524, 525, 526, 530}


def test_document_keys_follow_the_data_model(site):
    d = probe_url(site.url("/health")).to_dict()
    assert set(d) == {"url", "method", "started_at", "status", "ok", "degraded", "reason", "phase", "error",
                      "timings_ms", "remote", "tls", "http", "cloudflare", "redirects", "assertions"}
    assert set(d["timings_ms"]) >= {"dns", "connect", "tls", "ttfb", "transfer", "total"}
    assert set(d["remote"]) == {"ip", "family", "port"}
    assert set(d["http"]) == {"status", "reason", "version", "headers", "body_excerpt", "body_bytes",
                              "body_truncated", "json"}
    assert set(d["cloudflare"]) == {"edge", "ray", "colo", "code", "meaning"}
    assert d["started_at"].endswith("Z")
