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

    The caller's thread takes targets from ``targets`` (which may be a generator) and hands them to the workers;
    the workers hand results back, both through C-level queues: no Future, waiter or shared lock per probe (a pool
    whose workers pulled from a generator under a lock spent 0.1 ms a probe contending for it at pool 50, and
    ``ThreadPoolExecutor``'s bookkeeping 0.14 ms; benchmarks/README.md). Targets are taken ``concurrency +
    buffer`` ahead of the results the caller has taken (``buffer`` defaults to ``concurrency``), so memory does not
    grow with the fleet: the caller records each result and drops it. A caller slower than the probes (a round
    recording each result before taking the next) passes a larger ``buffer``: probes held back for it would run
    interleaved with it for the whole round, contending for the GIL (+8% CPU a target in ``round_bench.py``).

    ``until`` (a ``time.monotonic()`` instant) is a round's budget: the iteration ends then; targets not started
    never start, and probes in flight are abandoned (each ends at its own deadline and its result is dropped).
    ``isolate``: an exception from one target's probe is yielded as that target's result instead of ending the
    round. Otherwise an exception from a probe or from ``targets`` is raised to the caller, as
    ``Future.result()`` would.
    """
    clock = clock or Clock()
    workers = max(1, concurrency)
    ahead = workers + max(1, buffer or workers)
    source = enumerate(targets)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    results: queue.SimpleQueue = queue.SimpleQueue()  # bounded by ``ahead``: nothing is handed out beyond it
    stop = threading.Event()
    _END, _DONE = object(), object()
    exhausted = False

    def feed(count: int) -> None:
        nonlocal exhausted
        for _ in range(count):
            if exhausted:
                return
            item = next(source, None)
            if item is None:
                exhausted = True
                for _ in range(workers):
                    todo.put(_END)
                return
            todo.put(item)

    def work() -> None:
        try:
            while True:
                item = todo.get()
                if item is _END or stop.is_set():
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
                results.put((index, target, result))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            stop.set()
            results.put((None, None, exc))
        finally:
            results.put(_DONE)

    threads = [threading.Thread(target=work, name=f"gatewatch-probe-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        feed(ahead)
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
            feed(1)  # after the caller is done with this one: ``ahead`` is the most taken and not yet handed back
    finally:  # the caller stopped early, a probe or the source raised, or the budget ran out
        stop.set()
        for _ in range(workers):
            todo.put(_END)  # wakes any worker waiting for a target
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
