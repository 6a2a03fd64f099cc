"""The engine at fleet scale: certificates parsed once per certificate and outside the timed TLS phase; a round
streamed with a bounded number of results held, whatever the fleet size."""

from __future__ import annotations

import threading
import time

import pytest

from gatewatch.config import Target
from gatewatch.probe import StaticResolver, iter_probe_targets, probe_targets, probe_url, tls_info
from tests.servers import CertFactory, Reply, http_server

LAB = StaticResolver({"api.lab.test": "127.0.0.1"})


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return CertFactory(tmp_path_factory.mktemp("certs"))


def test_a_certificate_is_parsed_once_and_not_inside_the_tls_phase(certs, monkeypatch):
    issued = certs.leaf(["api.lab.test"], valid_to_days=30)
    parsed = []

    def slow(real):
        def parse(cert):
            parsed.append(cert)
            time.sleep(0.2)  # a parse far slower than a loopback handshake: it must not show in the timings
            return real(cert)
        return parse

    monkeypatch.setattr(tls_info, "_parse", slow(tls_info._parse))
    monkeypatch.setattr(tls_info, "_from_decoded", slow(tls_info._from_decoded))
    tls_info._cache.clear()
    with http_server({"/": Reply(200, {"ok": True})}, tls=issued.server_context()) as server:
        url = server.url("/", host="api.lab.test")
        first, second = (probe_url(url, resolver=LAB, timeout_s=5, ca_file=str(certs.ca_file)) for _ in range(2))
    assert first.ok and second.ok
    assert len(parsed) == 1, "the second probe of the same certificate must come from the cache"
    assert first.tls.subject == second.tls.subject == "CN=api.lab.test" and first.tls.hostname_match
    for r in (first, second):
        assert r.timings_ms.tls < 150 and r.timings_ms.total < 150, r.timings_ms
        assert r.timings_ms.starttransfer < 150, r.timings_ms


def test_a_round_is_streamed_with_a_bounded_window():
    release = threading.Event()
    in_flight_max = []
    lock = threading.Lock()
    state = {"now": 0}

    def route(_req):
        with lock:
            state["now"] += 1
            in_flight_max.append(state["now"])
        release.wait(5)
        with lock:
            state["now"] -= 1
        return Reply(200, {"ok": True})

    with http_server({"/": route}) as server:
        url = server.url("/")
        made = []

        def targets():  # a generator: the round must not materialise the fleet either
            for i in range(40):
                made.append(i)
                yield Target.model_validate({"name": f"t{i}", "url": url, "timeout_s": 5,
                                             "confirm": {"retries": 0}})

        stream = iter_probe_targets(targets(), concurrency=4)
        time.sleep(0.3)  # nothing runs before the first result is asked for
        assert made == []
        threading.Timer(0.3, release.set).start()
        index, target, result = next(stream)
        assert len(made) <= 8, "at most 2 x concurrency targets are taken from the source ahead of the caller"
        rest = list(stream)
    assert max(in_flight_max) <= 4
    seen = sorted([index] + [i for i, _t, _r in rest])
    assert seen == list(range(40))
    assert all(r.status == "up" for _i, _t, r in rest) and result.status == "up" and target.name == f"t{index}"


def _probe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gatewatch-probe-")]


def test_a_budgeted_round_ends_at_its_deadline_and_abandons_what_is_in_flight():
    """The ProbeFunction's round: hung targets do not hold it past its budget, queued ones never start, and the
    abandoned workers do not linger (each ends at its probe's own deadline, even with no one draining)."""
    from tests.servers import SilentListener

    with SilentListener(backlog=64) as hung, http_server({"/": Reply(200, {"ok": True})}) as server:
        fleet = [Target.model_validate({"name": f"ok{i}", "url": server.url("/"), "confirm": {"retries": 0}})
                 for i in range(2)]
        fleet += [Target.model_validate({"name": f"hung{i}", "url": hung.url(), "timeout_s": 1.5,
                                         "confirm": {"retries": 0}}) for i in range(6)]
        start = time.monotonic()
        got = list(iter_probe_targets(fleet, concurrency=3, until=start + 0.8))
        took = time.monotonic() - start
        assert sorted(t.name for _i, t, _r in got) == ["ok0", "ok1"]
        assert 0.7 < took < 1.3, took
        end = time.monotonic() + 5
        while _probe_threads() and time.monotonic() < end:
            time.sleep(0.05)
        assert not _probe_threads(), "abandoned workers are still running 5 s later"
        assert time.monotonic() - start < 3.5  # the 3 in flight ended at their 1.5 s deadlines; none started after


def test_a_consumer_that_stops_early_does_not_strand_the_workers_of_a_budgeted_round():
    """With a budget the caller does not wait for the workers: one blocked on the full hand-over queue must still
    get out."""
    with http_server({"/": Reply(200, {"ok": True})}) as server:
        fleet = [Target.model_validate({"name": f"t{i}", "url": server.url("/"), "confirm": {"retries": 0}})
                 for i in range(30)]
        stream = iter_probe_targets(fleet, concurrency=2, until=time.monotonic() + 30)
        next(stream)
        time.sleep(0.5)  # both workers finish, the queue (2) fills, a worker blocks handing over
        stream.close()
        end = time.monotonic() + 3
        while _probe_threads() and time.monotonic() < end:
            time.sleep(0.05)
        assert not _probe_threads()


def test_isolate_yields_one_targets_exception_as_its_result(monkeypatch):
    from gatewatch.probe import round as probe_round

    real = probe_round.probe_target

    def flaky(target, clock=None, resolver=None):
        if target.name == "t3":
            raise RuntimeError("boom")
        return real(target, clock, resolver)

    monkeypatch.setattr(probe_round, "probe_target", flaky)
    with http_server({"/": Reply(200, {"ok": True})}) as server:
        fleet = [Target.model_validate({"name": f"t{i}", "url": server.url("/"), "confirm": {"retries": 0}})
                 for i in range(6)]
        got = {t.name: r for _i, t, r in iter_probe_targets(fleet, concurrency=3, isolate=True)}
        assert isinstance(got.pop("t3"), RuntimeError) and len(got) == 5
        assert all(r.status == "up" for r in got.values())
        with pytest.raises(RuntimeError, match="boom"):
            list(iter_probe_targets(fleet, concurrency=3))


def test_probe_targets_keeps_target_order():
    with http_server({"/": Reply(200, {"ok": True})}) as server:
        fleet = [Target.model_validate({"name": f"t{i}", "url": server.url("/"), "confirm": {"retries": 0}})
                 for i in range(12)]
        results = probe_targets(fleet, concurrency=5)
    assert [r.target for r in results] == [t.name for t in fleet]
    assert probe_targets([], concurrency=5) == []


def _cert(subject_attrs, sans):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in subject_attrs])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


def test_facts_from_openssl_equal_the_cryptography_parse(tmp_path):
    """A verified connection's getpeercert() replaces the cryptography parse: the facts must be the same."""
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    pem, der = _cert(
        [(NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, 'Acme, "Inc" <x>;+'),
         (NameOID.ORGANIZATIONAL_UNIT_NAME, " spaced "), (NameOID.COMMON_NAME, "#api.lab.test")],
        [x509.DNSName("api.lab.test"), x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
         x509.DNSName("*.lab.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    path = tmp_path / "c.pem"
    path.write_bytes(pem)
    decoded = ssl._ssl._test_decode_cert(str(path))  # what getpeercert() returns for this certificate
    from_openssl, from_cryptography = tls_info._from_decoded(decoded), tls_info._parse(der)
    assert from_openssl == from_cryptography
    assert from_openssl.sans == ("api.lab.test", "*.lab.test", "2001:db8::1", "127.0.0.1")


def test_a_results_document_is_what_asdict_gives(certs):
    """``ProbeResult.to_dict`` no longer deep-copies through ``dataclasses.asdict``; the documents must not change:
    TLS facts, redirects, JSON assertions, a failure, Cloudflare headers and a nested JSON body."""
    from dataclasses import asdict

    from gatewatch.probe.engine import Expectations
    from tests.servers import closed_port

    issued = certs.leaf(["api.lab.test"], valid_to_days=30)
    body = {"status": "ok", "db": {"up": True, "lag": [1, 2.5, None]}, "tags": ["a", "b"]}
    routes = {"/": Reply(200, body, headers={"cf-ray": "8f1c2d3e4a5b6c7d-AMS", "server": "cloudflare"}),
              "/moved": Reply(302, "", headers={"location": "/"})}
    with http_server(routes, tls=issued.server_context()) as server:
        results = [
            probe_url(server.url("/moved", host="api.lab.test"), resolver=LAB, ca_file=str(certs.ca_file),
                      expect=Expectations(json={"db.up": True, "status": "down"}), timeout_s=5),
            probe_url(f"http://127.0.0.1:{closed_port()}/", timeout_s=2),
        ]
    assert results[0].tls and results[0].redirects and results[0].assertions and results[0].http.json == body
    for result in results:
        assert result.to_dict() == asdict(result)
        document = result.to_dict()
        if result.http:  # built anew, not shared with the result
            assert document["http"]["json"] is not result.http.json
            assert document["http"]["headers"] is not result.http.headers
