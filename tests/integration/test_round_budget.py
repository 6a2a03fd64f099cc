"""A round fits its invocation: 40 targets that never answer, default settings, and the round still ends inside the
function's time with every finished target stored and the others recorded as skipped."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.steps import probe_step, round_budget
from tests.servers import Reply, http_server

HUNG = 40


@contextmanager
def blackhole():
    """Accepts TCP connections and never answers (a hung backend behind no proxy timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


class Executions:
    def __init__(self):
        self.names = []

    def __call__(self, name, payload):
        self.names.append(name)
        return True


class Silent:
    def send(self, notification):
        pass


def test_forty_hung_targets_end_inside_the_function_timeout(dynamo_store):
    remaining_ms = 15_000  # what a Lambda context would report
    with blackhole() as port, http_server({"/": Reply(200, "ok")}) as healthy:
        body = "".join(f"\n  - name: ok-{i}\n    url: {healthy.url('/')}" for i in range(2))
        body += "".join(f"\n  - name: hung-{i:02d}\n    url: http://127.0.0.1:{port}/" for i in range(HUNG))
        config = load_config_text("targets:" + body)  # default timeout, retries and concurrency
        started = time.monotonic()
        reports = probe_step(config, dynamo_store, Silent(), Executions(), clock=FakeClock(),
                             budget_s=round_budget(remaining_ms))
        took = time.monotonic() - started
    assert took < remaining_ms / 1000, f"the round took {took:.1f}s of {remaining_ms / 1000:.0f}s"
    by_status: dict[str, list[str]] = {}
    for report in reports:
        by_status.setdefault(report.status, []).append(report.target)
    assert sorted(by_status["up"]) == ["ok-0", "ok-1"]
    assert len(by_status["skipped"]) == HUNG
    assert all(r.reason.startswith("not reached in time") for r in reports if r.status == "skipped")
    # finished targets are stored; the skipped ones are stored as skipped, with the reason
    assert [p.status for p in dynamo_store.history("ok-0")] == ["up"]
    [skip] = dynamo_store.history("hung-07")
    assert skip.status == "skipped" and "budget" in skip.reason


def test_round_budget_keeps_a_reserve():
    assert round_budget(None) is None
    assert round_budget(50_000) == 45.0  # 90% of the remaining time when that is the smaller
    assert round_budget(10_000) == 6.0
    assert round_budget(1_000) == 0.5
