"""TLS against real handshakes on loopback with certificates generated per test module."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gatewatch.clock import parse_iso
from gatewatch.probe import StaticResolver, probe_url
from tests.servers import CertFactory, LoopbackServer, Reply, http_server

LAB = StaticResolver({"api.lab.test": "127.0.0.1", "other.lab.test": "127.0.0.1"})
ROUTES = {"/health": Reply(200, {"status": "ok"})}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return CertFactory(tmp_path_factory.mktemp("certs"))


def serve(issued):
    return http_server(ROUTES, tls=issued.server_context())


def probe(server, certs, host="api.lab.test", **kw):
    kw.setdefault("ca_file", str(certs.ca_file))
    return probe_url(server.url("/health", host=host), resolver=LAB, timeout_s=5, **kw)


def test_ca_signed_certificate_verifies_and_is_described(certs):
    issued = certs.leaf(["api.lab.test"], valid_to_days=90)
    with serve(issued) as s:
        r = probe(s, certs)
    assert r.ok and r.http.json == {"status": "ok"}
    tls = r.to_dict()["tls"]
    assert set(tls) >= {"version", "cipher", "subject", "issuer", "sans", "not_before", "not_after", "days_to_expiry",
                        "self_signed", "verified", "verify_error", "hostname_match"}
    assert tls["verified"] is True and tls["verify_error"] is None and tls["hostname_match"] is True
    assert tls["version"] in ("TLSv1.2", "TLSv1.3") and tls["cipher"]
    assert tls["subject"] == "CN=api.lab.test" and tls["issuer"] == "CN=gatewatch test CA"
    assert tls["sans"] == ["api.lab.test"] and tls["self_signed"] is False
    assert 89 < tls["days_to_expiry"] < 90.01
    assert parse_iso(tls["not_after"]) > datetime.now(UTC)
    assert r.timings_ms.tls is not None and r.timings_ms.tls > 0


def test_untrusted_ca_fails_verification_but_reports_the_certificate(certs):
    issued = certs.leaf(["api.lab.test"])
    with serve(issued) as s:
        r = probe(s, certs, ca_file=None)  # system CAs do not know our test CA
    assert (r.reason, r.phase) == ("tls_error", "tls")
    assert r.tls is not None and r.tls.verified is False and r.tls.subject == "CN=api.lab.test"
    assert "unable to get local issuer certificate" in r.tls.verify_error
    assert r.http is None


def test_expired_certificate_shows_its_not_after(certs):
    issued = certs.leaf(["api.lab.test"], valid_from_days=-60, valid_to_days=-2)
    with serve(issued) as s:
        r = probe(s, certs)
    assert (r.status, r.reason, r.phase) == ("down", "tls_error", "tls")
    assert "expired" in r.tls.verify_error and "expired" in r.error
    assert r.tls.not_after in r.error
    assert -2.01 < r.tls.days_to_expiry < -1.99
    assert r.tls.hostname_match is True


def test_wrong_host_name(certs):
    issued = certs.leaf(["other.lab.test"])
    with serve(issued) as s:
        r = probe(s, certs, host="api.lab.test")
    assert r.reason == "tls_error"
    assert r.tls.hostname_match is False and r.tls.sans == ["other.lab.test"]
    assert "api.lab.test" in r.tls.verify_error or "mismatch" in r.tls.verify_error.lower()


def test_self_signed_certificate(certs):
    issued = certs.leaf(["api.lab.test"], self_signed=True)
    with serve(issued) as s:
        r = probe(s, certs)
    assert r.reason == "tls_error"
    assert r.tls.self_signed is True and r.tls.issuer == r.tls.subject
    assert "self" in r.tls.verify_error


def test_certificate_expiring_in_five_days_is_up_with_days_to_expiry(certs):
    issued = certs.leaf(["api.lab.test"], valid_to_days=5)
    with serve(issued) as s:
        r = probe(s, certs)
    assert r.status == "up" and r.tls.verified
    assert 4.9 < r.tls.days_to_expiry <= 5.0


def test_insecure_mode_skips_verification_and_says_so(certs):
    issued = certs.leaf(["api.lab.test"], self_signed=True)
    with serve(issued) as s:
        r = probe(s, certs, verify_tls=False)
    assert r.ok and r.tls.checked is False and r.tls.verified is False
    assert "verify_tls" in r.tls.verify_error and r.tls.self_signed is True


def test_ip_address_certificate_and_resolve_to_keep_sni_on_the_url_host(certs):
    by_ip = certs.leaf(["127.0.0.1"])
    with serve(by_ip) as s:
        r = probe_url(s.url("/health"), ca_file=str(certs.ca_file), timeout_s=5)
    assert r.ok and r.tls.hostname_match and r.tls.sans == ["127.0.0.1"]

    by_name = certs.leaf(["www.lab.test"])
    with serve(by_name) as s:
        r = probe_url(s.url("/health", host="www.lab.test"), ca_file=str(certs.ca_file), resolve_to="127.0.0.1",
                      resolver=StaticResolver({}), timeout_s=5)
    assert r.ok and r.tls.verified and r.remote.ip == "127.0.0.1"


def test_plain_http_client_against_tls_server_is_a_protocol_error(certs):
    issued = certs.leaf(["api.lab.test"])
    with serve(issued) as s:
        r = probe_url(s.url("/health").replace("https://", "http://"), timeout_s=2)
    assert r.status == "down" and r.reason in ("protocol_error", "timeout")


def test_tls_client_against_plain_server_is_a_tls_error():
    def plain_http(conn, server):  # like nginx on a plain port: garbage in, 400 out
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    with LoopbackServer(plain_http) as s:
        r = probe_url(s.url("/health").replace("http://", "https://"), timeout_s=3)
    assert (r.reason, r.phase) == ("tls_error", "tls")


def test_the_server_name_sent_is_the_url_host_idna_encoded_and_none_for_an_ip(certs):
    """The engine wraps the socket with CPython's C-level SSL object, not SSLSocket: SNI must come out the same."""
    issued = certs.leaf(["api.lab.test", "xn--bcher-kva.lab.test", "127.0.0.1"])
    seen: list[str | None] = []
    context = issued.server_context()
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    resolver = StaticResolver({"api.lab.test": "127.0.0.1", "bücher.lab.test": "127.0.0.1"})
    with http_server(ROUTES, tls=context) as s:
        for url in (s.url("/health", host="api.lab.test"), s.url("/health", host="bücher.lab.test"),
                    s.url("/health")):
            r = probe_url(url, resolver=resolver, ca_file=str(certs.ca_file), timeout_s=5)
            assert r.ok and r.tls.verified and r.tls.hostname_match, (url, r.error)
    assert seen == ["api.lab.test", "xn--bcher-kva.lab.test", None]


def test_cpython_still_offers_the_c_level_wrap_the_engine_uses():
    """``SSLContext._wrap_socket`` is private: an interpreter without it must fail here, not in every probe."""
    import ssl

    assert callable(getattr(ssl.SSLContext, "_wrap_socket", None))


@pytest.mark.parametrize("name", ["api.lab.test", "API.Lab.Test.", "127.0.0.1", "::1", "a" * 63 + ".test",
                                  "a" * 64 + ".test", "x." + "b" * 64, "a..b", ".lead", "bücher.lab.test",
                                  "xn--bcher-kva.lab.test", "ДОМЕН.рф"])
def test_a_label_is_what_the_idna_codec_gives(name):
    """The ASCII path skips importing the codec (1 ms, 0.6 MiB); it must answer exactly as the codec does."""
    from gatewatch.probe.tls_info import a_label

    try:
        want: object = name.encode("idna").decode("ascii")
    except UnicodeError:
        want = UnicodeError
    if want is UnicodeError:
        with pytest.raises(UnicodeError):
            a_label(name)
    else:
        assert a_label(name) == want


@pytest.mark.parametrize("text", ["Nov 29 01:00:00 2026 GMT", "Jan  5 09:08:07 2031 GMT", "feb 28 23:59:59 2000 GMT",
                                  "Dec 31 00:00:00 9999 GMT"])
def test_cert_time_reads_what_ssl_reads(text):
    import ssl

    from gatewatch.probe.tls_info import cert_time

    assert cert_time(text).timestamp() == ssl.cert_time_to_seconds(text)


@pytest.mark.parametrize("text", ["Nov 29 01:00:00 2026 UTC", "Foo 29 01:00:00 2026 GMT", "Nov 29 2026 GMT", ""])
def test_cert_time_refuses_what_it_does_not_know(text):
    """``_from_decoded`` then falls back to parsing the DER with cryptography."""
    from gatewatch.probe.tls_info import cert_time

    with pytest.raises((ValueError, KeyError)):
        cert_time(text)
