"""The probe's small parts: Cloudflare table, assertions, host name matching, the watchdog."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gatewatch.probe import cloudflare
from gatewatch.probe.assertions import MISSING, check_json, check_status, lookup
from gatewatch.probe.deadline import Deadline, DeadlineExceeded, SocketGuard, Watchdog
from gatewatch.probe.tls_info import _dns_match
from tests.servers import SilentListener


@pytest.mark.parametrize("status,headers,edge,colo,code", [
    (521, {"server": "cloudflare", "cf-ray": "8f1c2d3e4a5b6c7d-AMS"}, True, "AMS", 521),
    (502, {"server": "cloudflare", "cf-ray": "8f1c2d3e4a5b6c7d-AMS"}, True, "AMS", None),
    (521, {"server": "nginx"}, False, None, None),
    (524, {"cf-ray": "abc-SJC"}, True, "SJC", 524),
    (200, {"server": "Cloudflare "}, True, None, None),
])
def test_edge_info(status, headers, edge, colo, code):
    info = cloudflare.edge_info(status, headers)
    assert (info.edge, info.colo, info.code) == (edge, colo, code)
    assert (info.meaning is not None) == (code is not None)


def test_every_cloudflare_code_has_a_meaning():
    for code, (title, why) in cloudflare.CLOUDFLARE_CODES.items():
        assert title and why and cloudflare.meaning(code).startswith(title)


def test_json_lookup_and_assertions():
    doc = {"a": {"b": [10, {"c": None}]}, "flag": True, "n": 1}
    assert lookup(doc, "a.b.0") == 10 and lookup(doc, "a.b.1.c") is None and lookup(doc, "a.x") == MISSING
    results = check_json(doc, {"a.b.1.c": None, "flag": 1, "n": 1, "a.b.5": 1})
    assert [r.ok for r in results] == [True, False, True, False]  # True is not 1: types must match for bools


def test_status_assertion_default_and_list():
    assert check_status(302, None).ok and not check_status(404, None).ok
    assert check_status(404, [404]).ok and check_status(404, [404]).expected == [404]


@pytest.mark.parametrize("host,pattern,ok", [
    ("api.lab.test", "api.lab.test", True),
    ("api.lab.test", "*.lab.test", True),
    ("lab.test", "*.lab.test", False),
    ("a.b.lab.test", "*.lab.test", False),
    ("api.lab.test", "other.lab.test", False),
])
def test_wildcards_cover_one_label(host, pattern, ok):
    assert _dns_match(host, pattern) is ok


def test_deadline_budget_runs_out():
    d = Deadline(0.05)
    assert 0 < d.budget() <= 0.05
    time.sleep(0.06)
    with pytest.raises(DeadlineExceeded):
        d.budget()


def test_watchdog_shuts_down_a_blocked_recv_without_its_own_timeout():
    a, b = socket.socketpair()
    try:
        guard = SocketGuard()
        guard.arm(a)
        got = []
        reader = threading.Thread(target=lambda: got.append(a.recv(10)))  # blocks: no timeout set
        reader.start()
        Watchdog().schedule(time.monotonic() + 0.1, guard.fire)
        reader.join(5)
        assert not reader.is_alive() and got == [b""] and guard.fired
    finally:
        a.close()
        b.close()


def test_watchdog_aborts_a_blocking_connect_to_a_silent_host():
    """The engine's connect has no timeout of its own: the watchdog's shutdown is what ends it (SYN_SENT)."""
    with SilentListener(backlog=0) as lst:
        lst.fill_backlog()
        sock, guard, errors = socket.socket(), SocketGuard(), []
        guard.arm(sock)
        Watchdog().schedule(time.monotonic() + 0.2, guard.fire)
        start = time.monotonic()
        try:
            sock.connect(("127.0.0.1", lst.port))
        except OSError as exc:
            errors.append(exc)
        finally:
            guard.disarm()
            sock.close()
        if not errors:
            pytest.skip("this kernel accepted the connection despite a full backlog")
        assert time.monotonic() - start < 2 and guard.fired


def test_a_connect_begun_after_the_shutdown_is_ended_by_the_next_one():
    """The race the per-call budget check leaves open: the deadline passes between the check and the connect.

    The first shutdown hits a socket that is not connecting yet and does nothing; a watchdog that fired once
    would leave the connect to the kernel's SYN retries (about two minutes). It fires again while armed.
    """
    with SilentListener(backlog=0) as lst:
        lst.fill_backlog()
        sock, guard = socket.socket(), SocketGuard()
        guard.arm(sock)
        Watchdog().schedule(time.monotonic(), guard.fire)
        end = time.monotonic() + 2
        while not guard.fired and time.monotonic() < end:
            time.sleep(0.01)
        assert guard.fired
        outcome: list[object] = []

        def connect() -> None:
            try:
                sock.connect(("127.0.0.1", lst.port))
                outcome.append("connected")
            except OSError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=connect, daemon=True)
        start = time.monotonic()
        worker.start()
        worker.join(3)
        took = time.monotonic() - start
        guard.disarm()
        sock.close()
        if outcome == ["connected"]:
            pytest.skip("this kernel accepted the connection despite a full backlog")
        assert not worker.is_alive(), "the connect was still blocked 3 s after the deadline"
        assert isinstance(outcome[0], OSError) and took < 1.0


def test_a_disarmed_guard_never_touches_its_old_socket():
    a, b = socket.socketpair()
    try:
        guard = SocketGuard()
        guard.arm(a)
        guard.disarm()
        guard.fire()
        b.sendall(b"x")
        assert a.recv(1) == b"x"  # still open for reading
    finally:
        a.close()
        b.close()


def test_cancelled_watchdog_entries_do_not_fire():
    dog, fired = Watchdog(), []
    token = dog.schedule(time.monotonic() + 0.05, lambda: fired.append(1))
    dog.cancel(token)
    done = threading.Event()
    dog.schedule(time.monotonic() + 0.1, done.set)
    assert done.wait(5) and fired == []


def test_the_engine_socket_blocks_and_its_guard_is_what_bounds_it():
    """Per-call timeouts put Python's socket in poll-then-retry mode (a fifth of an HTTPS probe's CPU at pool 50);
    the engine's socket blocks and the deadline's watchdog, armed on it, is what ends a stuck call."""
    from gatewatch.probe.transport import open_tcp

    with SilentListener() as lst:
        guard = SocketGuard()
        sock, _addr = open_tcp([(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", lst.port))],
                               Deadline(5), guard)
        try:
            assert sock.gettimeout() is None
            Watchdog().schedule(time.monotonic() + 0.1, guard.fire)
            start = time.monotonic()
            assert sock.recv(10) == b""  # the silent listener never answers: only the watchdog ends this
            assert time.monotonic() - start < 2 and guard.fired
        finally:
            guard.disarm()
            sock.close()
