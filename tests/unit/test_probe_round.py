"""Rounds: confirmation retries through the injected clock, health alongside, many targets concurrently."""

from __future__ import annotations

import time

from gatewatch.clock import FakeClock
from gatewatch.config import Target
from gatewatch.probe import StaticResolver, probe_target, probe_targets
from tests.servers import Reply, flaky, http_server

LAB = StaticResolver({"api.lab.test": "127.0.0.1"})
OK = Reply(200, {"status": "ok"})
BAD = Reply(502, "bad gateway", {"Server": "nginx"})


def target(url: str, **kw) -> Target:
    return Target.model_validate({"name": "api", "url": url, "timeout_s": 3, **kw})


def test_failing_once_then_passing_is_up_and_transient():
    with http_server({"/": flaky(1, BAD, OK)}) as s:
        clock = FakeClock()
        r = probe_target(target(s.url("/"), confirm={"retries": 2, "delay_s": 1.5}), clock=clock)
    assert (r.status, r.confirmed, r.transient) == ("up", False, True)
    assert [a.status for a in r.attempts] == ["down", "up"]
    assert r.attempts[0].reason == "http_5xx_origin" and r.probe is r.attempts[-1]
    assert clock.slept == [1.5]
    d = r.to_dict()
    assert d["target"] == "api" and d["at"] == "2026-01-01T00:00:00.000Z" and d["health"] is None
    assert len(d["attempts"]) == 2 and d["probe"]["status"] == "up"


def test_failing_every_attempt_is_down_and_confirmed():
    with http_server({"/": BAD}) as s:
        clock = FakeClock()
        r = probe_target(target(s.url("/")), clock=clock)  # default: one retry after 1 s
    assert (r.status, r.confirmed, r.transient) == ("down", True, False)
    assert len(r.attempts) == 2 and all(a.reason == "http_5xx_origin" for a in r.attempts)
    assert clock.slept == [1.0] and s.connections == 2


def test_no_retries_configured_means_one_attempt():
    with http_server({"/": BAD}) as s:
        clock = FakeClock()
        r = probe_target(target(s.url("/"), confirm={"retries": 0}), clock=clock)
    assert (r.status, r.confirmed, len(r.attempts), clock.slept) == ("down", True, 1, [])


def test_degraded_is_up_and_not_retried():
    with http_server({"/": Reply(200, "slow", delay_s=0.2)}) as s:
        clock = FakeClock()
        r = probe_target(target(s.url("/"), expect={"max_latency_ms": 50}), clock=clock)
    assert (r.status, r.confirmed, r.transient, len(r.attempts)) == ("degraded", False, False, 1)
    assert r.ok and clock.slept == []


def test_health_is_recorded_and_a_failing_health_does_not_make_the_target_down():
    routes = {"/": OK, "/health": Reply(503, {"status": "error", "database": "down"})}
    with http_server(routes) as s:
        t = target(s.url("/", host="api.lab.test"), headers={"X-Env": "lab"},
                   health={"url": s.url("/health", host="api.lab.test"), "expect_json": {"status": "ok"}})
        r = probe_target(t, clock=FakeClock(), resolver=LAB)
        health_request = [q for q in s.requests if q.path == "/health"][0]
    assert r.status == "up" and len(r.attempts) == 1
    assert r.health.status == "down" and r.health.reason == "http_5xx_origin"
    assert {a.name: a.ok for a in r.health.assertions} == {"status": False, "json.status": False}
    assert r.health.http.json["database"] == "down"
    assert health_request.headers["x-env"] == "lab"  # same host: the target's headers go along
    assert r.to_dict()["health"]["http"]["status"] == 503


def test_health_passing_with_expect_json():
    with http_server({"/": OK, "/health": OK}) as s:
        t = target(s.url("/"), health={"url": s.url("/health"), "expect_json": {"status": "ok"}, "timeout_s": 2})
        r = probe_target(t, clock=FakeClock())
    assert r.health.ok and [a.name for a in r.health.assertions] == ["status", "json.status"]


def test_targets_are_probed_concurrently_and_returned_in_order():
    delay = 0.4
    with http_server({"/slow": Reply(200, "late", delay_s=delay), "/fast": OK}) as s:
        targets = [Target.model_validate({"name": f"t{i}", "url": s.url("/slow"), "timeout_s": 5}) for i in range(8)]
        targets.append(Target.model_validate({"name": "fast", "url": s.url("/fast")}))
        start = time.monotonic()
        results = probe_targets(targets, concurrency=16, clock=FakeClock())
        took = time.monotonic() - start
    assert [r.target for r in results] == [t.name for t in targets]
    assert all(r.status == "up" for r in results)
    assert took < 3 * delay  # sequentially this would take 8 x delay


def test_pool_size_bounds_concurrency():
    delay = 0.3
    with http_server({"/slow": Reply(200, "late", delay_s=delay)}) as s:
        targets = [Target.model_validate({"name": f"t{i}", "url": s.url("/slow")}) for i in range(4)]
        start = time.monotonic()
        results = probe_targets(targets, concurrency=2, clock=FakeClock())
        took = time.monotonic() - start
    assert all(r.ok for r in results)
    assert took >= 2 * delay  # two waves of two


def test_no_targets_no_results():
    assert probe_targets([]) == []
