"""The registry: each check is one function registered by name; the runner runs them under one budget."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import importlib
import json
import platform
import socket
import threading
import time

from .common import (
    EVIDENCE_CHARS,
    EVIDENCE_ITEMS,
    GLOBAL_BUDGET_S,
    SCHEMA,
    UNKNOWN,
    VERSION,
    Shared,
    _short,
    escape_controls,
    utc_iso,
)
from .procs import read_processes

# ---------------------------------------------------------------------------------------------------------------
# The checks. Each is one function registered by name; each returns a result dict and never needs to raise
# (the runner turns an exception into status unknown).

# The modules that hold checks, in report order: a new check is one module (with ``@check``) named here.
FAMILIES = ("service", "sockets", "httpcheck", "nginx", "applog", "firewall", "resources", "selinux", "database")
CHECKS = []


def check(name: str):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def load_all() -> list:
    """Import every family (registering its checks); the registered checks in report order."""
    for family in FAMILIES:
        importlib.import_module("." + family, __package__)
    rank = {family: i for i, family in enumerate(FAMILIES)}
    return sorted(CHECKS, key=lambda c: rank.get(c[1].__module__.rsplit(".", 1)[-1], len(rank)))


def result(status: str, value: dict, evidence=None, error=None, **extra) -> dict:
    out = {"status": status, "value": value, "evidence": [_short(e, EVIDENCE_CHARS) for e in (evidence or [])]
           [:EVIDENCE_ITEMS], "error": error}
    out.update(extra)
    return out


class Context:
    def __init__(self, params: dict, budget_s: float = GLOBAL_BUDGET_S, checks=None):
        self.p = params
        self.started = time.monotonic()
        self.deadline = self.started + budget_s
        self.shared = Shared()
        self.results = {}
        self.done = {name: threading.Event() for name, _ in (CHECKS if checks is None else checks)}
        self.partial = {}

    def publish(self, name: str, value: dict, evidence: list) -> None:
        """What a long check has found so far: reported (as unknown, "timed out") if it overruns the budget."""
        self.partial[name] = (value, evidence)

    def partial_copy(self, name: str):
        """A snapshot of a still-running check's partial value (it may be changing under us)."""
        for _ in range(3):
            try:
                value, evidence = self.partial.get(name, ({}, []))
                return json.loads(json.dumps(value, default=str)), [str(e) for e in list(evidence)]
            except (RuntimeError, ValueError, TypeError):
                time.sleep(0.01)
        return {}, []

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def wait_for(self, name: str, reserve_s: float = 1.0):
        """Another check's result, waiting at most until ``reserve_s`` before the budget ends (None if not done)."""
        event = self.done.get(name)
        if event is not None:
            event.wait(max(0.0, self.remaining() - reserve_s))
        return self.results.get(name)

    def processes(self) -> dict:
        return self.shared.get("procs", read_processes)


# ---------------------------------------------------------------------------------------------------------------
# Running everything under one budget, and keeping the output under the limit.

def run_checks(params: dict, budget_s: float = GLOBAL_BUDGET_S) -> dict:
    checks = load_all()
    ctx = Context(params, budget_s, checks)
    started_wall = time.time()

    def runner(name, fn):
        try:
            res = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not break the report
            res = result(UNKNOWN, {}, [], "check raised %s: %s" % (type(exc).__name__, _short(exc, 200)))
        ctx.results[name] = res
        ctx.done[name].set()

    threads = []
    for name, fn in checks:
        t = threading.Thread(target=runner, args=(name, fn), name="check-" + name, daemon=True)
        t.start()
        threads.append((name, t))
    for _, t in threads:
        t.join(ctx.remaining())
    report = {"schema": SCHEMA}
    timed_out = []
    for name, _ in checks:
        res = ctx.results.get(name)
        if res is None:
            timed_out.append(name)
            value, evidence = ctx.partial_copy(name)
            res = result(UNKNOWN, value, evidence, "timed out")
            if name == "nginx":
                res.update(error_signatures=[], primary_signature=None)
        report[name] = escape_controls(res)  # whatever reaches a person is free of control characters
    report["meta"] = {
        "host": socket.gethostname(), "collected_at": utc_iso(started_wall),
        "duration_ms": round((time.monotonic() - ctx.started) * 1000.0, 1), "truncated": False,
        "python": platform.python_version(), "script_version": VERSION, "budget_s": budget_s,
        "timed_out_checks": timed_out,
        # nginx logs local time: the offset lets the prober age a log line (alert: gatewatch.tree.evidence)
        "utc_offset_s": time.localtime(started_wall).tm_gmtoff,
    }
    return report
