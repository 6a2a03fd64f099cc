"""A probing round: each target's main URL with confirmation, its health endpoint alongside, many at once.

Confirmation: a failed attempt is retried ``confirm.retries`` times after ``confirm.delay_s`` (slept through the
injected clock) before the target counts as down; every attempt is kept. A slow but correct answer is degraded,
which is up, and is never retried.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatewatch.clock import Clock
from gatewatch.probe.engine import Expectations, probe_url
from gatewatch.probe.resolve import Resolver
from gatewatch.probe.result import ProbeResult, TargetResult

if TYPE_CHECKING:  # annotations only: the engine does not pay for pydantic at import
    from gatewatch.config.models import Health, Target


def probe_target(target: Target, clock: Clock | None = None, resolver: Resolver | None = None) -> TargetResult:
    """Probes ``target.url`` (with confirmation) and, concurrently, ``target.health`` once.

    The health result is evidence for the diagnosis only: a failing health endpoint does not by itself make the
    target down (the main URL decides ``status``), and a passing one does not rescue a failing main URL.
    """
    clock = clock or Clock()
    at = clock.iso()
    health_box: list[ProbeResult] = []
    health_thread = None
    if target.health is not None:
        health_thread = threading.Thread(
            target=lambda: health_box.append(probe_health(target, target.health, clock, resolver)),
            name=f"gatewatch-health-{target.name}", daemon=True,
        )
        health_thread.start()

    attempts = [probe_main(target, clock, resolver)]
    while not attempts[-1].ok and len(attempts) <= target.confirm.retries:
        if target.confirm.delay_s:
            clock.sleep(target.confirm.delay_s)
        attempts.append(probe_main(target, clock, resolver))

    if health_thread is not None:
        health_thread.join()
    last = attempts[-1]
    return TargetResult(
        target=target.name,
        at=at,
        status=last.status,
        confirmed=not last.ok,
        transient=last.ok and len(attempts) > 1,
        attempts=attempts,
        probe=last,
        health=health_box[0] if health_box else None,
    )


def probe_main(target: Target, clock: Clock, resolver: Resolver | None) -> ProbeResult:
    return probe_url(
        target.url,
        method=target.method,
        headers=dict(target.headers),
        body=target.body,
        timeout_s=target.timeout_s,
        max_body_bytes=target.max_body_bytes,
        max_redirects=target.max_redirects,
        verify_tls=target.verify_tls,
        ca_file=target.tls_ca_file,
        resolve_to=target.resolve_to,
        expect=target.expect,
        resolver=resolver,
        clock=clock,
        allow_private_redirects=target.allow_private_redirects,
    )


def probe_health(target: Target, health: Health, clock: Clock, resolver: Resolver | None) -> ProbeResult:
    """The same engine; the target's headers, TLS settings and resolve_to apply when the host is the same."""
    same_host = urlsplit(health.url).hostname == urlsplit(target.url).hostname
    return probe_url(
        health.url,
        method=health.method,
        headers=dict(target.headers) if same_host else {},
        timeout_s=health.timeout_s or target.timeout_s,
        max_body_bytes=target.max_body_bytes,
        max_redirects=target.max_redirects,
        verify_tls=target.verify_tls,
        ca_file=target.tls_ca_file,
        resolve_to=target.resolve_to if same_host else None,
        expect=Expectations(status=list(health.expect_status), json=dict(health.expect_json)),
        resolver=resolver,
        clock=clock,
        allow_private_redirects=target.allow_private_redirects,
    )


def iter_probe_targets(targets: Iterable[Target], concurrency: int = 16, clock: Clock | None = None,
                       resolver: Resolver | None = None, *, until: float | None = None, isolate: bool = False,
                       buffer: int | None = None) -> Iterator[tuple[int, Target, TargetResult | Exception]]:
    """Every target on ``concurrency`` worker threads, yielding ``(index, target, result)`` as each finishes.

    At most ``concurrency + buffer`` targets are in flight or finished-but-not-yet-taken (each worker holds one,
    the hand-over queue holds ``buffer``, by default ``concurrency``), so memory does not grow with the fleet: the
    caller records each result and drops it. A caller slower than the probes (a round recording each result
    before taking the next) passes a larger ``buffer``: workers held back by a full queue run interleaved with the
    caller for the whole round, contending for the GIL (+8% CPU a target in ``round_bench.py``).
    ``targets`` may be a generator. Workers pull the next target themselves and hand results over a bounded queue:
    no Future or waiter per probe (about 0.14 ms of CPU a probe at pool 50, benchmarks/README.md).

    ``until`` (a ``time.monotonic()`` instant) is a round's budget: the iteration ends then; targets not started
    never start, and probes in flight are abandoned (each ends at its own deadline and its result is dropped).
    ``isolate``: an exception from one target's probe is yielded as that target's result instead of ending the
    round. Otherwise an exception from a probe or from ``targets`` is raised to the caller, as
    ``Future.result()`` would.
    """
    clock = clock or Clock()
    workers = max(1, concurrency)
    source = enumerate(targets)
    take = threading.Lock()
    results: queue.Queue = queue.Queue(maxsize=max(1, buffer or workers))
    stop = threading.Event()
    _DONE = object()

    def hand_over(item: object) -> None:
        if until is None:
            results.put(item)  # the caller drains the queue until every worker is done
            return
        while True:  # an abandoned round has no one draining: a full queue must not hold a worker for ever
            try:
                results.put(item, timeout=0.1)
                return
            except queue.Full:
                if stop.is_set():
                    return

    def work() -> None:
        try:
            while not stop.is_set():
                with take:
                    item = next(source, None)
                if item is None:
                    return
                index, target = item
                try:
                    result: TargetResult | Exception = probe_target(target, clock, resolver)
                except Exception as exc:
                    if not isolate:
                        raise
                    result = exc  # this target's failure, not the round's
                if stop.is_set():
                    return  # abandoned: the caller has gone
                hand_over((index, target, result))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            stop.set()
            hand_over((None, None, exc))
        finally:
            hand_over(_DONE)

    threads = [threading.Thread(target=work, name=f"gatewatch-probe-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            if until is None:
                item = results.get()
            else:
                try:
                    item = results.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    return  # the budget is spent
            if item is _DONE:
                running -= 1
                continue
            index, target, result = item
            if index is None:
                raise result
            yield index, target, result
    finally:  # the caller stopped early, a probe raised or the budget ran out
        stop.set()
        if until is None:  # let the workers finish what they hold, then go
            while running:
                if results.get() is _DONE:
                    running -= 1
            for thread in threads:
                thread.join()


def probe_targets(targets: Sequence[Target], concurrency: int = 16, clock: Clock | None = None,
                  resolver: Resolver | None = None) -> list[TargetResult]:
    """Every target at once on a bounded thread pool; results come back in target order (held: small fleets)."""
    results: list[TargetResult | None] = [None] * len(targets)
    for index, _target, result in iter_probe_targets(targets, min(concurrency, len(targets) or 1), clock, resolver):
        results[index] = result
    return results  # type: ignore[return-value] - every slot is filled
