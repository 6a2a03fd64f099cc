"""A sharded ProbeFunction round RUN in moto: 10,000 loopback targets, every shard measured on its own.

``scale_bench.py`` computes a shard plan; this runs one. The real handler (``functions/probe/app.py``) is invoked
as the scheduler does (``{"source": "aws.events"}``, a context of the template's timeout), moto as AWS: the table
from the template, the targets file in S3 (``TARGETS_BUCKET``, as deployed), an SNS topic. The coordinator splits
the fleet (``gatewatch/aws/shard.py``) and invokes itself per further shard (``InvocationType=Event``); those
invocations are captured and run ONE AFTER ANOTHER, each with its own deadline, so that on a 2-core machine each
shard's wall and CPU are its own. On Lambda they run concurrently: the round's wall there is derived as
max(offset of worker k's Invoke in the coordinator + its wall). The fleet is one threaded server in a child process
(its own GIL) answering ``/ok?i=N`` 200 and every 25th ``/bad?i=N`` 500 at once, counting each path.

Per shard: wall, process CPU, moto's own emulation CPU (timed per call by ``round_bench.metered``: AWS's work in
production) and the rest (the handler's), that scaled by the template's vCPU share (MemorySize / 1,769 MB) as its
Lambda duration, the budget check, and memory: the RSS peak above the shard's start (VmHWM reset per shard through
``/proc/self/clear_refs``), the RSS left behind (moto's stored items) and the difference (held by the handler);
``--tracemalloc`` adds exact Python figures (and inflates CPU ~4x). Then nothing lost: exactly one PROBE and one
STATE item per target in moto's table, each target requested exactly once. ``--small`` runs a smaller fleet first,
in the same process, to show a shard's memory is flat in the fleet size. Cost from ``cost_model.fleets``.

Loopback only. Usage: ``python benchmarks/shard_bench.py [--fleet 10000] [--small 1000] [--concurrency 128]
[--timeout-s 5] [--latency-ms 200] [--tracemalloc] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "gatewatch"), str(ROOT / "benchmarks")]
REGION, ACCOUNT = "us-east-1", "123456789012"
FUNCTION = "gatewatch-probe"
ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
MOTO_CONFIG = {"lambda": {"use_docker": False}}
BAD_EVERY = 25  # every 25th target answers 500 (failure_threshold 2: a first round opens no incident)


# ---- the fleet: a child process ---------------------------------------------------------------------------------
def serve() -> None:
    """Answers at once; prints its port, then for each stdin line the requests per target since the last one."""
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    print(listener.getsockname()[1], flush=True)

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buf = b""
            while b"\r\n\r\n" not in buf and (data := conn.recv(65536)):
                buf += data
            path = buf.split(b" ", 2)[1].decode()
            with lock:
                counts[int(path.rsplit("i=", 1)[1])] += 1
            status = b"500 Internal Server Error" if path.startswith("/bad") else b"200 OK"
            conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok" % status)

    def accept() -> None:
        while True:
            threading.Thread(target=answer, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    while sys.stdin.readline():
        with lock:
            print(json.dumps(counts), flush=True)
            counts.clear()


# ---- measuring --------------------------------------------------------------------------------------------------
def status_mib(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def lambda_context(timeout_s: float) -> SimpleNamespace:
    deadline = time.monotonic() + timeout_s
    return SimpleNamespace(function_name=FUNCTION, memory_limit_in_mb=1024, aws_request_id="bench",
                           invoked_function_arn=ARN,
                           get_remaining_time_in_millis=lambda: int((deadline - time.monotonic()) * 1000))


def fleet_yaml(n: int, port: int, concurrency: int, timeout_s: float) -> str:
    lines = [f"settings:\n  concurrency: {concurrency}\ntargets:"]
    lines += [f"  - {{name: t{i:05d}, url: 'http://127.0.0.1:{port}/{'bad' if i % BAD_EVERY == 0 else 'ok'}?i={i}', "
              f"timeout_s: {timeout_s:g}, confirm: {{retries: 0}}, "
              f"alerting: {{failure_threshold: 2, success_threshold: 1}}}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def invocation(app: Any, event: dict, timeout_s: float, gsi_keys: list[str], trace: bool) -> dict[str, Any]:
    import tracemalloc

    import round_bench as rb

    from gatewatch.steps import round_budget

    meter, out = rb.Meter(gsi_keys), io.StringIO()
    reset_peak_rss()
    rss0 = status_mib("VmRSS")
    if trace:
        tracemalloc.start()
    with rb.metered(meter), contextlib.redirect_stdout(out):
        cpu, wall = time.process_time(), time.perf_counter()
        result = app.handler(event, lambda_context(timeout_s))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    record = {"targets": result["targets"], "down": result["down"], "wall_s": wall, "cpu_s": cpu,
              "moto_cpu_s": meter.moto_cpu_s, "handler_cpu_s": cpu - meter.moto_cpu_s,
              "budget_s": round_budget(int(timeout_s * 1000)), "calls": dict(meter.calls), "wru": meter.wru,
              "log_bytes": len(out.getvalue().encode()), "payload_bytes": len(json.dumps(event)),
              "rss_retained_mib": status_mib("VmRSS") - rss0, "rss_peak_mib": status_mib("VmHWM") - rss0,
              "rss_abs_peak_mib": status_mib("VmHWM")}
    record["rss_held_mib"] = max(0.0, record["rss_peak_mib"] - record["rss_retained_mib"])  # above what it left
    if trace:  # allocations since the shard started: at the end (moto's items, caches) and at the peak
        now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        record |= {"traced_peak_mib": peak / 2**20, "traced_retained_mib": now / 2**20,
                   "traced_held_mib": (peak - now) / 2**20}
    return record


# ---- one sharded round ------------------------------------------------------------------------------------------
def run_fleet(n: int, port: int, args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from gatewatch.aws import runtime, shard
    from gatewatch.aws.template_schema import create_table_from_template, load_template
    from gatewatch.steps import round_budget

    template = load_template()
    gsi_keys = [k["AttributeName"] for g in template["Resources"]["GatewatchTable"]["Properties"].get(
        "GlobalSecondaryIndexes", []) for k in g["KeySchema"] if k["KeyType"] == "HASH"]
    with mock_aws(config=MOTO_CONFIG):
        table = create_table_from_template(boto3.client("dynamodb", region_name=REGION), template, "gatewatch")
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="gatewatch")["TopicArn"]
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="gatewatch-targets")
        s3.put_object(Bucket="gatewatch-targets", Key="targets.yaml",
                      Body=fleet_yaml(n, port, args.concurrency, args.timeout_s).encode())
        role = boto3.client("iam").create_role(RoleName="gw", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=FUNCTION, Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": b"x"})
        os.environ.update({"TABLE_NAME": table, "TOPIC_ARN": topic, "TARGETS_BUCKET": "gatewatch-targets",
                           "TARGETS_KEY": "targets.yaml", "TARGETS_PARAMETER": "/gatewatch/targets",
                           "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:x"})
        os.environ.pop("SHARD_SIZE", None)  # the template's default (0): computed
        runtime.reset()
        from functions.probe import app

        reset_peak_rss()
        rss0, cpu = status_mib("VmRSS"), time.process_time()  # the targets file fetched and parsed: once per
        runtime.load_targets()                                 # container (and ETag), cached after
        parse_cpu_s, rss_config = time.process_time() - cpu, status_mib("VmRSS") - rss0
        parse_peak = status_mib("VmHWM")
        captured: list[tuple[float, dict]] = []

        def capture(self, function_name, qualifier, body, headers, response_headers):  # InvocationType=Event
            captured.append((time.perf_counter(), json.loads(body)))
            return b""

        original, LambdaSimpleBackend.invoke = LambdaSimpleBackend.invoke, capture
        try:
            started = time.perf_counter()
            shards = [invocation(app, {"source": "aws.events"}, settings.timeout_s, gsi_keys, args.tracemalloc)]
            offsets = [0.0] + [t - started for t, _ in captured]
            for _, event in captured:
                shards.append(invocation(app, event, settings.timeout_s, gsi_keys, args.tracemalloc))
        finally:
            LambdaSimpleBackend.invoke = original
        rss_round = status_mib("VmRSS") - rss0 - rss_config
        lost = verify(table, n)
        runtime.reset()
    share = min(1.0, settings.memory_mb / 1769)
    # a cold container parses the whole targets file before its budget is taken from the remaining time
    cold_budget = round_budget(int((settings.timeout_s - parse_cpu_s / share) * 1000))
    for i, (s, offset) in enumerate(zip(shards, offsets, strict=True)):
        s |= {"index": i, "start_offset_s": offset, "lambda_s": s["handler_cpu_s"] / share,
              "lambda_s_at_latency": max(s["handler_cpu_s"] / share,
                                         s["targets"] * args.latency_ms / 1000 / args.concurrency),
              "worst_case_s": s["targets"] * shard.per_target_s(args.timeout_s, args.concurrency),
              "in_budget": s["wall_s"] <= s["budget_s"]}  # and verify() finds no target skipped
        s["lambda_cold_in_budget"] = s["lambda_s_at_latency"] <= cold_budget
    return {"fleet": n, "shard_size": shard.shard_size(shards[0]["budget_s"], args.concurrency, args.timeout_s),
            "shards": shards, "fanout_s": offsets[-1], "parse_cpu_s": parse_cpu_s, "vcpu": share, "lost": lost,
            "cold_budget_s": cold_budget, "rss_config_mib": rss_config, "rss_round_mib": rss_round,
            "rss_process_peak_mib": max([parse_peak] + [s["rss_abs_peak_mib"] for s in shards]),
            **{f"round_{key}": max(o + s[key] for o, s in zip(offsets, shards, strict=True))
               for key in ("wall_s", "lambda_s", "lambda_s_at_latency")}}


def verify(table: str, n: int) -> dict[str, Any]:
    """Exactly one PROBE (with the expected status) and one STATE item per target, read from moto's table."""
    from moto.dynamodb.models import dynamodb_backends

    probes, states, wrong = Counter(), Counter(), []
    for item in dynamodb_backends[ACCOUNT][REGION].get_table(table).all_items():
        pk, sk = item.attrs["PK"].value.removeprefix("TARGET#"), item.attrs["SK"].value
        if sk.startswith("PROBE#"):
            probes[pk] += 1
            expected = "down" if int(pk[1:]) % BAD_EVERY == 0 else "up"
            if item.attrs["status"].value != expected:
                wrong.append(f"{pk}:{item.attrs['status'].value}")
        elif sk == "STATE":
            states[pk] += 1
    names = {f"t{i:05d}" for i in range(n)}
    return {"probe_items_not_one": sorted(t for t in names if probes[t] != 1)[:20],
            "state_items_not_one": sorted(t for t in names if states[t] != 1)[:20],
            "unexpected_status": wrong[:20], "probe_items": sum(probes.values()), "state_items": sum(states.values())}


# ---- report -----------------------------------------------------------------------------------------------------
def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


COLUMNS = (("targets", "targets", "{:>7}"), ("wall s", "wall_s", "{:>6.2f}"), ("CPU s", "cpu_s", "{:>6.2f}"),
           ("moto s", "moto_cpu_s", "{:>6.2f}"), ("handler", "handler_cpu_s", "{:>7.2f}"),
           ("Lambda s", "lambda_s", "{:>8.2f}"), ("budget", "budget_s", "{:>6.1f}"), ("ok", "in_budget", "{!s:>5}"),
           ("cold ok", "lambda_cold_in_budget", "{!s:>7}"),
           ("RSS pk", "rss_peak_mib", "{:>6.1f}"), ("left", "rss_retained_mib", "{:>5.1f}"),
           ("held", "rss_held_mib", "{:>5.1f}"))


def show(r: dict[str, Any], cost: dict[str, Any]) -> None:
    sh, n, vcpu = r["shards"], r["fleet"], r["vcpu"]

    def col(key: str, fmt: str = "{:.2f}") -> str:
        return spread([s[key] for s in sh], fmt)

    print(f"\n{n:,} targets: shard size {r['shard_size']} -> {len(sh)} invocations (the coordinator + "
          f"{len(sh) - 1} workers), targets per shard {col('targets', '{:.0f}')} (min / median / max)")
    print("shard " + " ".join(f"{title:>{len(fmt.format(sh[0][key]))}}" for title, key, fmt in COLUMNS))
    for s in sh:
        print(f"{s['index']:>5} " + " ".join(fmt.format(s[key]) for _, key, fmt in COLUMNS))
    per_t = [s["handler_cpu_s"] / s["targets"] * 1000 for s in sh if s["targets"]]
    moto_share = sum(s["moto_cpu_s"] for s in sh) / sum(s["cpu_s"] for s in sh)
    print(f"per shard, min / median / max: wall {col('wall_s')} s, CPU {col('cpu_s')} s, handler CPU "
          f"{spread(per_t)} ms a target (moto's emulation, {moto_share:.0%} of the CPU, subtracted); Lambda at "
          f"{vcpu:.2f} vCPU {col('lambda_s')} s, with {cost['latency_ms']:g} ms answers {col('lambda_s_at_latency')} s")
    traced = (f"; tracemalloc peak {col('traced_peak_mib', '{:.1f}')}, left {col('traced_retained_mib', '{:.1f}')}, "
              f"held {col('traced_held_mib', '{:.1f}')}") if "traced_peak_mib" in sh[0] else ""
    print(f"memory per shard (MiB): RSS peak above its start {col('rss_peak_mib', '{:.1f}')}, left behind "
          f"{col('rss_retained_mib', '{:.1f}')} (moto's stored items), held (peak - left) "
          f"{col('rss_held_mib', '{:.1f}')}{traced}")
    print(f"process RSS: the parsed targets file +{r['rss_config_mib']:.1f} MiB, the round +{r['rss_round_mib']:.1f} "
          f"MiB (moto's table), peak {r['rss_process_peak_mib']:.1f} MiB; largest worker event "
          f"{max([s['payload_bytes'] for s in sh[1:]] or [0]):,} B")
    print(f"round wall on Lambda (shards concurrent, worker k starting when the coordinator's Invoke k returned): "
          f"max(offset_k + wall_k) = {r['round_wall_s']:.2f} s as measured here; {r['round_lambda_s']:.2f} s at "
          f"{vcpu:.2f} vCPU, {r['round_lambda_s_at_latency']:.2f} s with {cost['latency_ms']:g} ms answers; the "
          f"{len(sh) - 1} Invokes took {r['fanout_s']:.3f} s in moto")
    print(f"cold container: the whole targets file parsed first, {r['parse_cpu_s']:.2f} s CPU here, "
          f"{r['parse_cpu_s'] / vcpu:.1f} s at {vcpu:.2f} vCPU, leaving a budget of {r['cold_budget_s']:.1f} s "
          f"(warm {sh[0]['budget_s']:.1f} s); every target hanging, a shard takes {col('worst_case_s')} s")
    problems = {k: v for k, v in r["lost"].items() if isinstance(v, list) and v} or "none"
    print(f"nothing lost: {r['lost']['probe_items']} PROBE / {r['lost']['state_items']} STATE items, "
          f"{r['requested_once']:,}/{n:,} targets requested exactly once ({r['requests']:,} requests); "
          f"problems: {problems}")
    print(f"cost: ${cost['total_month_usd']:,.2f} a month (${cost['per_target_month_usd']:.4f} per target-month); "
          f"Lambda duration from this run's shards ${cost['lambda_month_usd_measured']:,.2f}, the model's "
          f"${cost['lambda_month_usd_model']:,.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fleet", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=1_000, help="a smaller fleet first, same process (0: none)")
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--timeout-s", type=float, default=5.0)
    ap.add_argument("--latency-ms", type=float, default=200.0, help="answer time assumed for Lambda and cost")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (CPU inflated)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return 0
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "1",
                       "POWERTOOLS_SERVICE_NAME": "gatewatch", "POWERTOOLS_METRICS_NAMESPACE": "Gatewatch"})
    import cost_model as cm

    settings, measured = cm.read_settings(), cm.load_measured()
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    port, runs = int(proc.stdout.readline()), []
    try:
        for n in [x for x in (args.small, args.fleet) if x]:
            r = run_fleet(n, port, args, settings)
            proc.stdin.write("counts\n")
            proc.stdin.flush()
            counts = {int(k): v for k, v in json.loads(proc.stdout.readline()).items()}
            r["requested_once"] = sum(1 for i in range(n) if counts.get(i) == 1)
            r["requests"] = sum(counts.values())
            runs.append(r)
    finally:
        proc.kill()
        proc.wait()
    report = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": f"{os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
                         f"Python {sys.version.split()[0]}",
              "memory_mb": settings.memory_mb, "timeout_s": settings.timeout_s, "concurrency": args.concurrency,
              "target_timeout_s": args.timeout_s, "runs": runs}
    print(f"ProbeFunction {settings.memory_mb} MB, timeout {settings.timeout_s} s; concurrency {args.concurrency}, "
          f"timeout_s {args.timeout_s:g}; {report['machine']}"
          + ("; CPU and Lambda figures inflated by tracemalloc" if args.tracemalloc else ""))
    rounds = cm.HOURS_PER_MONTH * 60 / settings.minutes_between_rounds
    arch = "lambda_gb_s_arm64" if settings.architecture == "arm64" else "lambda_gb_s_x86_64"
    for r in runs:
        model = cm.fleets(settings, measured, [r["fleet"]], args.latency_ms, args.concurrency)[str(r["fleet"])]
        gb_s = sum(s["lambda_s_at_latency"] for s in r["shards"]) * settings.memory_mb / 1024
        r["cost"] = {"latency_ms": args.latency_ms, "total_month_usd": model["total_month_usd"],
                     "per_target_month_usd": model["per_target_month_usd"],
                     "lambda_month_usd_measured": rounds * gb_s * cm.price(arch),
                     "lambda_month_usd_model": next(ln["usd"] for ln in model["lines"]
                                                    if ln["item"] == "Lambda duration")}
        show(r, r["cost"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    ok = all(r["requested_once"] == r["fleet"] == r["requests"] and not any(
        v for v in r["lost"].values() if isinstance(v, list)) for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
