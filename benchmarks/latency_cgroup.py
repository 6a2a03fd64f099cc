"""Reported HTTPS latency under a Lambda-sized CPU share, against the true latency.

Lambda gives a function CPU in proportion to its memory (one vCPU at 1,769 MB). A cgroup CPU quota emulates that
share (cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, or v2 ``cpu.max``; root needed). The prober runs in
the cgroup; the server (the threaded HTTPS server of ``probe_bench.py``, answering after ``--delay-ms``) runs
outside it, so the true latency does not depend on the quota.

For each memory size: N targets (100) with the engine's pool (16), each a new TLS handshake (the certificate
verified against a CA made here). The true latency is the same round measured with no quota at concurrency 1
(median total), the reported one the median total (and phases) under the quota. The goal (issue 13): within 10 ms.
Loopback only. Usage: ``python benchmarks/latency_cgroup.py [--memory 256,512,1024,1769] [--concurrency 16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
LAMBDA_MB_PER_VCPU = 1769
PERIOD_US = 100_000

ENGINE = r"""
import json, statistics, sys, time
from gatewatch.config import Target
from gatewatch.probe import iter_probe_targets
n, url, ca, conc = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def fleet(k):
    for i in range(k):
        yield Target.model_validate({"name": f"t{i}", "url": url, "timeout_s": 20, "tls_ca_file": ca,
                                     "confirm": {"retries": 0}})
list(iter_probe_targets(fleet(2), concurrency=1))  # warm: imports, the CA store, the first certificate
sys.stdin.readline()
start = time.perf_counter()
rows = [r.probe.timings_ms for _i, _t, r in iter_probe_targets(fleet(n), concurrency=conc) if r.status == "up"]
wall = time.perf_counter() - start
med = lambda k: round(statistics.median(getattr(t, k) for t in rows), 2)
print(json.dumps({"up": len(rows), "wall_s": round(wall, 3), "total": med("total"), "tls": med("tls"),
                  "connect": med("connect"), "ttfb": med("ttfb"),
                  "p90_total": round(sorted(t.total for t in rows)[int(len(rows) * 0.9) - 1], 2)}))
"""


class CpuLimit:
    """A cgroup with a CPU quota (v1 cpu controller, else v2 cpu.max); processes join by pid."""

    def __init__(self, share: float):
        self.share = share
        v1 = Path("/sys/fs/cgroup/cpu")
        name = f"gatewatch-bench-{os.getpid()}-{int(share * 1000)}"
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * share)))
        else:
            self.path = Path("/sys/fs/cgroup") / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{int(PERIOD_US * share)} {PERIOD_US}")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def round_in(limit: CpuLimit | None, n: int, url: str, ca: Path, concurrency: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, str(n), url, str(ca), str(concurrency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "layers" / "gatewatch")))
    try:
        if limit is not None:
            limit.add(proc.pid)
        time.sleep(0.2)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = proc.stdout.readline()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads(out)


def main() -> int:
    import blackbox_compare as bc

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memory", default="256,512,1024,1769", help="Lambda memory sizes (MB) to emulate")
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--concurrency", default="16", help="pool sizes, comma-separated")
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--reps", type=int, default=3, help="rounds per setting (the median round is reported)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gw-lat-") as tmp:
        ca, crt, key = bc.make_certs(Path(tmp))
        server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "probe_bench.py"), "--serve",
                                   "--delay-ms", str(args.delay_ms), "--tls-cert", str(crt), "--tls-key", str(key)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            url = f"https://127.0.0.1:{int(server.stdout.readline())}/"
            truth = [round_in(None, min(args.targets, 30), url, ca, 1) for _ in range(args.reps)]
            true_total = statistics.median(t["total"] for t in truth)
            print(f"true latency (no quota, one at a time): total {true_total:.2f} ms "
                  f"(server delay {args.delay_ms:g} ms + handshake and transfer)")
            for conc in (int(c) for c in args.concurrency.split(",")):
                for mb in (int(m) for m in args.memory.split(",")):
                    limit = CpuLimit(min(1.0, mb / LAMBDA_MB_PER_VCPU))
                    try:
                        rounds = [round_in(limit, args.targets, url, ca, conc) for _ in range(args.reps)]
                    finally:
                        limit.close()
                    mid = sorted(rounds, key=lambda r: r["total"])[len(rounds) // 2]
                    error = mid["total"] - true_total
                    results[f"{mb}MB/c{conc}"] = mid | {"error_ms": round(error, 2), "share": limit.share,
                                                        "totals": [r["total"] for r in rounds]}
                    print(f"{mb:5} MB ({limit.share:.3f} vCPU) pool {conc:3}: reported total {mid['total']:7.2f} ms "
                          f"(tls {mid['tls']:.2f}, ttfb {mid['ttfb']:.2f}, p90 {mid['p90_total']:.2f}), "
                          f"error {error:+7.2f} ms {'ok' if abs(error) <= 10 else 'OVER 10 ms'}; "
                          f"round {mid['wall_s']:.2f} s, {mid['up']}/{args.targets} up", flush=True)
        finally:
            server.kill()
            server.wait()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; medians of {args.reps} rounds")
    if args.json:
        Path(args.json).write_text(json.dumps({"true_total_ms": true_total, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
