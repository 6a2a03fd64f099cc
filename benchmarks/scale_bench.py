"""10,000 targets a minute: the engine's memory and CPU at fleet scale, and the shard plan that fits Lambda.

1. The engine alone over a loopback fleet (nginx, HTTP, no delay), N = 1,000 and 10,000 targets (``--sizes``),
   pool 50, each size in a fresh process: wall, CPU per target and peak RSS. Results are streamed
   (``iter_probe_targets`` over a generator of targets): memory must not grow with N.
2. The ProbeFunction's per-target cost in moto (``benchmarks/measured/round.json``, from ``round_bench.py``: CPU per
   target with moto's own work subtracted, DynamoDB requests and units).
3. The shard plan for ``--fleet`` targets (10,000) every minute with the template's memory size: the shard size that
   fits a worker's round budget, the number of concurrent workers, each one's duration, and the month's cost from
   ``cost_model.py``. Sharding itself belongs to the AWS slice (issue 9): until a sharded round runs in moto this plan
   is computed from the measured per-target figures, and says so.

Loopback only. Usage: ``python benchmarks/scale_bench.py [--sizes 1000,10000] [--fleet 10000] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def engine_at_scale(sizes: list[int]) -> dict[str, dict]:
    import blackbox_compare as bc

    out = {}
    with tempfile.TemporaryDirectory(prefix="gw-scale-") as tmp:
        d = Path(tmp)
        _ca, crt, key = bc.make_certs(d)
        nginx, http_port, _https_port = bc.start_nginx(d, crt, key)
        try:
            for n in sizes:
                r = bc.gatewatch_run(None, f"http://127.0.0.1:{http_port}/", n)
                out[str(n)] = r | {"cpu_ms_per_target": round(r["cpu_s"] / n * 1000, 3)}
                print(f"engine, {n:>6} targets: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU "
                      f"({r['cpu_s'] / n * 1000:.2f} ms/target), peak RSS {r['rss_mib']:.1f} MiB, "
                      f"{r['up']}/{n} up", flush=True)
        finally:
            nginx.terminate()
            nginx.wait()
    return out


def shard_plan(fleet: int, latency_ms: float, concurrency: int) -> dict:
    import cost_model as cm

    settings, measured = cm.read_settings(), cm.load_measured()
    share = min(1.0, settings.memory_mb / cm.LAMBDA_MB_PER_VCPU)
    cpu_ms = measured["cpu_ms_without_moto"]["per_target"]
    per_target_ms = max(cpu_ms / share, latency_ms / concurrency)
    shard = int(cm.ROUND_BUDGET_S * 1000 // per_target_ms)
    workers = math.ceil(fleet / shard)
    per_worker = math.ceil(fleet / workers)
    model = cm.fleets(settings, measured, [fleet], latency_ms, concurrency)[str(fleet)]
    return {"memory_mb": settings.memory_mb, "vcpu": round(share, 3), "cpu_ms_per_target": cpu_ms,
            "wall_ms_per_target": round(per_target_ms, 2), "shard_size": shard, "workers": workers,
            "targets_per_worker": per_worker, "worker_round_s": round(per_worker * per_target_ms / 1000, 1),
            "budget_s": cm.ROUND_BUDGET_S, "timeout_s": settings.timeout_s,
            "dynamodb_calls_per_target": {k: v["per_target"] for k, v in measured["calls_per_round"].items()},
            "month_usd": model["total_month_usd"], "per_target_month_usd": model["per_target_month_usd"],
            "measured_at": measured["measured_at"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--fleet", type=int, default=10_000)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    engine = engine_at_scale([int(x) for x in args.sizes.split(",")]) if args.sizes else {}
    plan = shard_plan(args.fleet, args.latency_ms, args.concurrency)
    print(f"\nshard plan (computed from measured per-target figures; the sharded round is the AWS slice's): "
          f"{args.fleet:,} targets a minute at {plan['memory_mb']} MB ({plan['vcpu']} vCPU): "
          f"{plan['cpu_ms_per_target']} ms CPU/target -> {plan['wall_ms_per_target']} ms wall/target with "
          f"{args.latency_ms:g} ms answers over a pool of {args.concurrency}; shards of <= {plan['shard_size']} "
          f"targets -> {plan['workers']} concurrent workers of {plan['targets_per_worker']} targets, "
          f"{plan['worker_round_s']} s each (budget {plan['budget_s']:g} s of the {plan['timeout_s']} s timeout); "
          f"${plan['month_usd']:,.2f} a month (${plan['per_target_month_usd']:.4f} per target-month)")
    if args.json:
        Path(args.json).write_text(json.dumps({"engine": engine, "plan": plan, "load": os.getloadavg()[0]},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
