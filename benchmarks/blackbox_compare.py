"""gatewatch's probe engine side by side with Prometheus blackbox_exporter over the same loopback fleet.

Setup (the benchmark's own): installs Debian's ``prometheus-blackbox-exporter`` and ``nginx`` with apt-get when
missing (root), makes a CA and a server certificate for 127.0.0.1 with openssl, and starts
- nginx on 127.0.0.1 (HTTP and HTTPS, ``return 200`` with a small JSON body): the "no delay" and "HTTPS" fleets;
- the Python threaded server of ``probe_bench.py`` answering after ``--delay-ms`` (50): the "delay" fleet.

Each case (HTTP with delay, HTTP without delay, HTTPS with a new handshake per probe, both verifying the
certificate against the CA) runs N = 100 / 1,000 / 5,000 targets with a pool of 50, ``--reps`` times per tool,
alternating tools, each repetition in a fresh process of the tool:
- blackbox_exporter: started and ready first, then N ``/probe?module=...&target=URL`` requests from a driver process
  with 50 connections; its CPU is the exporter's utime+stime delta (from /proc), its RSS the exporter's VmHWM;
- gatewatch: a fresh Python process importing the engine, then ``iter_probe_targets`` over N targets (a generator:
  nothing held) with concurrency 50; CPU and wall measured around the round, RSS is the process's VmHWM.
Wall is the time from the first probe asked to the last answered. Ratios are gatewatch / blackbox_exporter;
min / median / max over the repetitions. Loopback only. Usage:
``python benchmarks/blackbox_compare.py [--sizes 100,1000,5000] [--reps 3] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOL = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- setup -----------------------------------------------------------------------------------------------------
def ensure_packages() -> None:
    missing = [p for p, exe in (("prometheus-blackbox-exporter", "prometheus-blackbox-exporter"),
                                ("nginx", "nginx"), ("openssl", "openssl")) if not shutil.which(exe)
               and not Path(f"/usr/sbin/{exe}").exists()]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, check=False)
        if any(not shutil.which(m) and not Path(f"/usr/sbin/{m}").exists() for m in missing):
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
                           check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=bench CA", "-keyout", str(ca_key), "-out", str(ca))
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca, crt, key


def start_nginx(d: Path, crt: Path, key: Path) -> tuple[subprocess.Popen, int, int]:
    http, https = free_port(), free_port()
    (d / "logs").mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
error_log {d}/logs/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_timeout 0;
  server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{ default_type application/json; return 200 '{{"status": "ok"}}'; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", str(d), "-c", str(conf), "-g", "daemon off;"])
    wait_port(http)
    return proc, http, https


def start_delay_server(delay_ms: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "probe_bench.py"), "--serve", "--delay-ms",
                             str(delay_ms)], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


# ---- /proc -----------------------------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- blackbox_exporter -----------------------------------------------------------------------------------------
DRIVER = r"""
import http.client, sys, threading, time, json
port, n, url, module = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
from urllib.parse import quote
path = f"/probe?module={module}&target={quote(url, safe='')}"
lock, left, ok = threading.Lock(), [n], [0]
def work():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with lock:
            if not left[0]:
                break
            left[0] -= 1
        conn.request("GET", path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
        body = conn.getresponse().read()
        if b"\nprobe_success 1" in body:
            with lock:
                ok[0] += 1
sys.stdin.readline()
start = time.perf_counter()
threads = [threading.Thread(target=work) for _ in range(min(int(sys.argv[5]), n))]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"wall_s": time.perf_counter() - start, "up": ok[0]}))
"""


def blackbox_run(d: Path, ca: Path, url: str, n: int) -> dict:
    port = free_port()
    conf = d / "blackbox.yml"
    conf.write_text(f"""modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
""")
    exporter = subprocess.Popen(["prometheus-blackbox-exporter", f"--config.file={conf}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(port), str(n), url, "http_2xx", str(POOL)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # the driver's interpreter is up before the clock starts
        before = cpu_s(exporter.pid)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        out = json.loads(driver.stdout.readline())
        driver.wait()
        return {"wall_s": out["wall_s"], "cpu_s": cpu_s(exporter.pid) - before, "rss_mib": hwm_mib(exporter.pid),
                "up": out["up"], "n": n}
    finally:
        exporter.terminate()
        exporter.wait()


# ---- gatewatch -------------------------------------------------------------------------------------------------
ENGINE = r"""
import json, sys, time
from gatewatch.config import Target
from gatewatch.probe import iter_probe_targets
n, url, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3] or None
def fleet():
    for i in range(n):
        yield Target.model_validate({"name": f"t{i}", "url": url, "timeout_s": 10, "tls_ca_file": ca,
                                     "confirm": {"retries": 0}})
sys.stdin.readline()
cpu, start = time.process_time(), time.perf_counter()
up = sum(r.status == "up" for _i, _t, r in iter_probe_targets(fleet(), concurrency=int(sys.argv[4])))
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "rss_mib": hwm, "up": up, "n": n}))
"""


def gatewatch_run(ca: Path | None, url: str, n: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, str(n), url, str(ca or ""), str(POOL)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "layers" / "gatewatch")))
    time.sleep(0.3)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = json.loads(proc.stdout.readline())
    proc.wait()
    return out


# ---- the comparison --------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--cases", default="delay,nodelay,https")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    ensure_packages()
    sizes = [int(x) for x in args.sizes.split(",")]
    version = subprocess.run(["prometheus-blackbox-exporter", "--version"], capture_output=True,
                             text=True).stderr.split("\n")[0] or "blackbox_exporter"
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="gw-bbx-") as tmp:
        d = Path(tmp)
        ca, crt, key = make_certs(d)
        nginx, http_port, https_port = start_nginx(d, crt, key)
        delay, delay_port = start_delay_server(args.delay_ms)
        urls = {"delay": f"http://127.0.0.1:{delay_port}/", "nodelay": f"http://127.0.0.1:{http_port}/",
                "https": f"https://127.0.0.1:{https_port}/"}
        try:
            for case in args.cases.split(","):
                for n in sizes:
                    runs = {"gatewatch": [], "blackbox_exporter": []}
                    for _ in range(args.reps):  # alternate, so drifting load hits both alike
                        runs["blackbox_exporter"].append(blackbox_run(d, ca, urls[case], n))
                        runs["gatewatch"].append(gatewatch_run(ca, urls[case], n))
                    cell = {tool: {k: spread([r[k] for r in rs]) for k in ("wall_s", "cpu_s", "rss_mib")}
                            | {"up": [r["up"] for r in rs]} for tool, rs in runs.items()}
                    cell["ratio"] = {k: spread([g[k] / b[k] if b[k] else float("inf")
                                                for g, b in zip(runs["gatewatch"], runs["blackbox_exporter"],
                                                                strict=True)])
                                     for k in ("wall_s", "cpu_s", "rss_mib")}
                    results[f"{case}/{n}"] = cell
                    r = cell["ratio"]
                    g, b = cell["gatewatch"], cell["blackbox_exporter"]
                    print(f"{case:8} N={n:<5} wall {r['wall_s']['median']:.2f}x  cpu {r['cpu_s']['median']:.2f}x  "
                          f"rss {r['rss_mib']['median']:.2f}x   (gatewatch {g['wall_s']['median']:.2f} s "
                          f"{g['cpu_s']['median']:.2f} s cpu {g['rss_mib']['median']:.0f} MiB; blackbox "
                          f"{b['wall_s']['median']:.2f} s {b['cpu_s']['median']:.2f} s cpu "
                          f"{b['rss_mib']['median']:.0f} MiB)", flush=True)
        finally:
            for proc in (nginx, delay):
                proc.terminate()
                proc.wait()
    print(f"\n{version}; gatewatch on Python {sys.version.split()[0]}; pool {POOL}; {args.reps} repetitions; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'case':14} {'wall min/med/max':>20} {'cpu min/med/max':>20} {'rss min/med/max':>20}  up")
    for key, cell in results.items():
        r = cell["ratio"]
        fmt = lambda s: f"{s['min']:.2f}/{s['median']:.2f}/{s['max']:.2f}"  # noqa: E731
        ups = f"{min(cell['gatewatch']['up'])}/{min(cell['blackbox_exporter']['up'])}"
        print(f"{key:14} {fmt(r['wall_s']):>20} {fmt(r['cpu_s']):>20} {fmt(r['rss_mib']):>20}  {ups}")
    if args.json:
        Path(args.json).write_text(json.dumps({"blackbox": version, "python": sys.version.split()[0],
                                               "pool": POOL, "reps": args.reps, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
