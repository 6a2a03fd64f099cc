"""Probe engine benchmark: concurrency against the ideal, and timing accuracy against curl.

Starts a loopback HTTP server in a subprocess (its own interpreter, so it does not share the prober's GIL) that
waits ``--delay-ms`` before every answer and serves many connections at once, then:

1. probes N targets (default 1000) with ``probe_targets`` on a pool of P (default 50) threads, and compares the
   wall time with the ideal N x delay / P;
2. probes a smaller number (default 100) in a plain sequential loop and extrapolates to N (said in the output);
3. measures the same URL K times (default 50) with the engine and with
   ``curl -w '%{time_starttransfer} %{time_total}'`` and compares the medians like with like:
   curl's time_starttransfer (start to first response byte) against the engine's ``timings_ms.starttransfer``
   (the same span: lookup, connect, send, wait), and curl's time_total against ``timings_ms.total``.

Only 127.0.0.1 is ever contacted. Usage: ``python benchmarks/probe_bench.py [--targets 1000] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

BODY = b'{"status": "ok"}'
# /page: a 2 KB JSON document, the size of a small health or API answer (the stored record keeps an excerpt of it)
PAGE = b'{"status": "ok", "padding": "' + b"x" * (2048 - 31) + b'"}'


# ---- the server (runs in a child process) -------------------------------------------------------------------

def serve(delay_s: float, cert: str | None = None, key: str | None = None) -> None:
    """Answers after ``delay_s``; with ``cert``/``key`` it speaks TLS (the handshake is in the connection's thread)."""
    tls = None
    if cert:
        import ssl

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    print(listener.getsockname()[1], flush=True)

    def answer(conn: socket.socket) -> None:
        if tls is not None:
            try:
                conn.settimeout(10)
                conn = tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            conn.settimeout(10)
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            path = buf.split(b" ", 2)[1]
            if path not in (b"/nodelay", b"/page"):
                time.sleep(delay_s)
            body = PAGE if path == b"/page" else BODY
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


# ---- the measurements ---------------------------------------------------------------------------------------

def start_server(delay_ms: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--delay-ms", str(delay_ms)],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def concurrent_run(url: str, n: int, pool: int) -> dict:
    from gatewatch.config import Target
    from gatewatch.probe import probe_targets

    targets = [Target.model_validate({"name": f"t{i}", "url": url, "timeout_s": 30, "confirm": {"retries": 0}})
               for i in range(n)]
    start = time.perf_counter()
    results = probe_targets(targets, concurrency=pool)
    wall = time.perf_counter() - start
    return {"n": n, "pool": pool, "wall_s": wall, "up": sum(r.status == "up" for r in results)}


def sequential_run(url: str, n: int) -> dict:
    from gatewatch.probe import probe_url

    start = time.perf_counter()
    up = sum(probe_url(url, timeout_s=30).ok for _ in range(n))
    wall = time.perf_counter() - start
    return {"n": n, "wall_s": wall, "up": up}


def engine_timings(url: str, runs: int) -> dict:
    from gatewatch.probe import probe_url

    probe_url(url)  # warm-up (imports, first thread start)
    first, total = [], []
    for _ in range(runs):
        t = probe_url(url).timings_ms
        first.append(t.starttransfer)
        total.append(t.total)
    return {"starttransfer_ms": statistics.median(first), "total_ms": statistics.median(total)}


def curl_timings(url: str, runs: int) -> dict | None:
    curl = shutil.which("curl")
    if not curl:
        return None
    first, total = [], []
    for _ in range(runs):
        out = subprocess.run([curl, "-s", "-o", "/dev/null", "--max-time", "10", "-w",
                              "%{time_starttransfer} %{time_total}", url],
                             capture_output=True, text=True, timeout=15, check=True).stdout.split()
        first.append(float(out[0]) * 1000)
        total.append(float(out[1]) * 1000)
    return {"starttransfer_ms": statistics.median(first), "total_ms": statistics.median(total)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=1000, help="targets in the concurrent run")
    ap.add_argument("--pool", type=int, default=50, help="thread pool size of the concurrent run")
    ap.add_argument("--sequential", type=int, default=100, help="probes in the sequential loop (extrapolated)")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="the server's wait before each answer")
    ap.add_argument("--runs", type=int, default=50, help="runs per tool for the curl comparison")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tls-cert", help=argparse.SUPPRESS)
    ap.add_argument("--tls-key", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.delay_ms / 1000, args.tls_cert, args.tls_key)
        return 0

    proc, port = start_server(args.delay_ms)
    try:
        url = f"http://127.0.0.1:{port}/"
        delay = args.delay_ms / 1000
        conc = concurrent_run(url, args.targets, args.pool)
        ideal = args.targets * delay / args.pool
        seq = sequential_run(url, args.sequential)
        seq_extrapolated = seq["wall_s"] / args.sequential * args.targets
        accuracy = {}
        for name, u in (("delayed", url), ("nodelay", f"http://127.0.0.1:{port}/nodelay")):
            accuracy[name] = {"engine": engine_timings(u, args.runs), "curl": curl_timings(u, args.runs)}
    finally:
        proc.kill()
        proc.wait()

    print(f"server delay {args.delay_ms:g} ms, loopback, {args.targets} targets, pool {args.pool}")
    print(f"concurrent: {conc['wall_s']:.2f} s for {conc['n']} probes ({conc['up']} up); "
          f"ideal {ideal:.2f} s -> {conc['wall_s'] / ideal:.2f}x ideal (target <= 2x)")
    print(f"sequential: {seq['wall_s']:.2f} s for {seq['n']} probes ({seq['up']} up); "
          f"extrapolated to {args.targets}: {seq_extrapolated:.1f} s "
          f"({seq_extrapolated / conc['wall_s']:.0f}x slower than the pool)")
    print(f"timing accuracy, medians of {args.runs} runs each (ms):")
    print(f"  {'url':8} {'engine first byte':>18} {'curl starttransfer':>19} {'diff':>6}   "
          f"{'engine total':>12} {'curl total':>10} {'diff':>6}")
    for name, pair in accuracy.items():
        e, c = pair["engine"], pair["curl"]
        if c is None:
            print(f"  {name:8} curl not installed")
            continue
        print(f"  {name:8} {e['starttransfer_ms']:18.2f} {c['starttransfer_ms']:19.2f} "
              f"{e['starttransfer_ms'] - c['starttransfer_ms']:+6.2f}   {e['total_ms']:12.2f} {c['total_ms']:10.2f} "
              f"{e['total_ms'] - c['total_ms']:+6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "concurrent": conc, "ideal_s": ideal, "sequential": seq,
                       "sequential_extrapolated_s": seq_extrapolated, "accuracy": accuracy}, fh, indent=2)
    ok = conc["wall_s"] <= 2 * ideal and conc["up"] == conc["n"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
