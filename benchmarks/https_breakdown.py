"""Where an HTTPS probe's CPU goes: one thread probing in sequence, then N bare threads, then the engine's pool.

The blackbox_exporter comparison (``blackbox_compare.py``) says the engine spends ~1.3x the exporter's CPU on HTTPS
with a new handshake per probe. This splits the engine's figure into the single-thread cost of a probe (OpenSSL's
client handshake is most of it), what many threads add (GIL hand-offs), and what the pool's own bookkeeping adds,
against the same loopback nginx, in one process, alternating. Loopback only.

Usage: ``python benchmarks/https_breakdown.py [--probes 2000] [--pool 50] [--reps 5] [--scheme https|http]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "layers" / "gatewatch")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--pool", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scheme", choices=("https", "http"), default="https")
    args = ap.parse_args()

    import blackbox_compare as bc

    from gatewatch.config import Target
    from gatewatch.probe.round import iter_probe_targets, probe_target

    with tempfile.TemporaryDirectory(prefix="gw-https-") as tmp:
        ca, crt, key = bc.make_certs(Path(tmp))
        nginx, http_port, https_port = bc.start_nginx(Path(tmp), crt, key)
        try:
            port = https_port if args.scheme == "https" else http_port
            targets = [Target.model_validate({"name": f"t{i}", "url": f"{args.scheme}://127.0.0.1:{port}/",
                                              "tls_ca_file": str(ca), "confirm": {"retries": 0}})
                       for i in range(args.probes)]

            def bare_threads(count: int) -> None:
                source, take = iter(targets), threading.Lock()

                def work() -> None:
                    while True:
                        with take:
                            target = next(source, None)
                        if target is None:
                            return
                        probe_target(target)

                threads = [threading.Thread(target=work) for _ in range(count)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            def engine() -> None:
                assert sum(r.status == "up" for _i, _t, r in iter_probe_targets(targets, args.pool)) == args.probes

            cases = {"one thread": lambda: bare_threads(1),
                     f"{args.pool} bare threads": lambda: bare_threads(args.pool),
                     f"engine, pool {args.pool}": engine}
            engine()  # warm: the TLS context, the certificate cache, the server
            cpu: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.reps):
                for name, run in cases.items():
                    start = time.process_time()
                    run()
                    cpu[name].append((time.process_time() - start) / args.probes * 1000)
        finally:
            nginx.terminate()
            nginx.wait()
    print(f"{args.scheme}, {args.probes} probes, {args.reps} alternating repetitions; CPU ms a probe, "
          f"min / median / max (Python {sys.version.split()[0]}, load {__import__('os').getloadavg()[0]:.2f})")
    for name, values in cpu.items():
        print(f"  {name:<22} {min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
