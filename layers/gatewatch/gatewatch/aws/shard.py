"""Sharded rounds: a fleet larger than one ProbeFunction invocation can probe in time is split into shards, and the
scheduled invocation (the coordinator) fans all but the first out to concurrent worker invocations of itself.

How many targets fit one invocation (``shard_size``): a worker probes ``concurrency`` targets at once, so in the
worst case (every target hangs until its ``timeout_s``) each target holds a slot for ``timeout_s`` and the waits of
``concurrency`` targets overlap; the handler's own work (judge, record, transition: ``PER_TARGET_CPU_S``, measured
by perf's round benchmark, ``make bench-round``) does not overlap (one core, the GIL). So

    per_target_s = PER_TARGET_CPU_S + timeout_s / concurrency
    shard_size   = floor(budget_s / per_target_s)

with ``budget_s`` the invocation's probing budget (``steps.round_budget`` of its remaining time). Sized for the
worst case, a shard whose every target hangs still ends with every target probed, none ``skipped``. Example: the
template's 50 s timeout (budget 45 s), concurrency 16, timeout_s 10: 0.0042 + 0.625 = 0.629 s -> 71 targets per
shard; concurrency 128 and timeout_s 5: 0.0433 s -> 1,038. The environment variable ``SHARD_SIZE`` (template
parameter ``ProbeShardSize``; 0 = computed) fixes it instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

PER_TARGET_CPU_S = 0.0042  # handler CPU a target-round (perf, COORD 18:58/20:20: 4.2-4.8 ms, moto subtracted)
DEFAULT_TIMEOUT_S = 10.0  # Target.timeout_s's default


def per_target_s(timeout_s: float, concurrency: int, cpu_s: float = PER_TARGET_CPU_S) -> float:
    return cpu_s + max(0.0, timeout_s) / max(1, concurrency)


def shard_size(budget_s: float, concurrency: int, timeout_s: float, cpu_s: float = PER_TARGET_CPU_S) -> int:
    """Targets one invocation probes within ``budget_s`` even when all of them hang (module docstring)."""
    return max(1, math.floor(budget_s / per_target_s(timeout_s, concurrency, cpu_s)))


def configured_size() -> int:
    """``SHARD_SIZE`` from the environment (0 or unset: computed)."""
    try:
        return max(0, int(os.environ.get("SHARD_SIZE", "0") or 0))
    except ValueError:
        return 0


def fleet_size(budget_s: float, concurrency: int, timeouts: Sequence[float]) -> int:
    """The shard size for a fleet: the configured one, else computed from the slowest target's timeout."""
    fixed = configured_size()
    if fixed:
        return fixed
    return shard_size(budget_s, concurrency, max(timeouts, default=DEFAULT_TIMEOUT_S))


def split(names: Sequence[str], size: int) -> list[list[str]]:
    """Consecutive shards of at most ``size`` names, as even as possible (1,000 by 71 -> 15 shards of 66-67)."""
    if not names:
        return []
    count = math.ceil(len(names) / max(1, size))
    base, extra = divmod(len(names), count)
    out, start = [], 0
    for i in range(count):
        stop = start + base + (i < extra)
        out.append(list(names[start:stop]))
        start = stop
    return out


def shard_event(index: int, count: int, names: Sequence[str], round_at: str) -> dict[str, Any]:
    """A worker's event: which targets (by name: the config may list them in any order) and which round."""
    return {"shard": {"index": index, "count": count, "round_at": round_at, "targets": list(names)}}
