"""What gatewatch costs a month on AWS, per target and fixed, from the template's own settings and measured rounds.

Inputs, all read here, nothing copied by hand:
- ``infra/template.yaml``: the ProbeFunction's memory, architecture, timeout and schedule, log retention, tracing,
  point-in-time recovery, the dashboard, every alarm and customer managed key (parameter defaults decide the
  conditions); every resource type must be known below, billed or free, or the model refuses to run.
- ``functions/probe/app.py``: the fleet metrics and the per-target metric policy (the template's PerTargetMetrics
  default picks one); every metric name any handler or library module emits must be known here.
- ``benchmarks/measured/round.json`` (``benchmarks/round_bench.py --write``): per target and per round, AWS
  requests, DynamoDB write and read units, item sizes and copies, log bytes, CPU.
- ``PRICES`` below: us-east-1 list prices with their sources, free tiers not deducted.

Usage: ``python benchmarks/cost_model.py [--json] [--fleets 1,10,100,1000,10000] [--latency-ms 200]``.
Per-target cost at fleet N is ``(total(N) - fixed) / N``; fixed is what the stack costs with no target.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
PROBE_APP = ROOT / "functions" / "probe" / "app.py"
MEASURED = ROOT / "benchmarks" / "measured" / "round.json"
CODE_DIRS = (ROOT / "functions", ROOT / "layers" / "gatewatch" / "gatewatch")
DYNAMODB_STORE = ROOT / "layers" / "gatewatch" / "gatewatch" / "store" / "dynamodb.py"

HOURS_PER_MONTH = 730  # AWS's pricing month
LAMBDA_MB_PER_VCPU = 1769  # Lambda allocates CPU in proportion to memory: one vCPU at 1,769 MB
ROUND_BUDGET_S = 40.0  # of a shard invocation's time (the template's 50 s timeout, less margin)
DYNAMODB_ITEM_OVERHEAD = 100  # bytes DynamoDB adds to every stored item (and every GSI copy)
KMS_TABLE_KEY_REQUESTS_PER_MONTH = HOURS_PER_MONTH * 12  # DynamoDB refreshes a table's data key about every 5 min
EMF_DOC_BYTES = 232  # one per-target EMF metric document on stdout (measured: 465 B a target with both metrics)

# (price in USD, what it is per, source). us-east-1, checked 2026-11; no free tier deducted.
PRICES: dict[str, tuple[float, str, str]] = {
    "lambda_gb_s_arm64": (0.0000133334, "GB-second, arm64", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_s_x86_64": (0.0000166667, "GB-second, x86_64", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": (0.20 / 1e6, "invocation", "https://aws.amazon.com/lambda/pricing/"),
    "dynamodb_wru": (0.625 / 1e6, "write request unit, on-demand",
                     "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_rru": (0.125 / 1e6, "read request unit, on-demand",
                     "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_storage_gb": (0.25, "GB-month stored", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_pitr_gb": (0.20, "GB-month under point-in-time recovery",
                         "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "cloudwatch_metric": (0.30, "custom metric-month (first 10,000)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "cloudwatch_alarm": (0.10, "standard-resolution alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "cloudwatch_dashboard": (3.00, "dashboard-month (an account's first 3 are free)",
                             "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_ingest_gb": (0.50, "GB ingested (standard class)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_storage_gb": (0.03, "GB-month archived", "https://aws.amazon.com/cloudwatch/pricing/"),
    "xray_trace": (5.00 / 1e6, "trace recorded (first 100,000 a month free)", "https://aws.amazon.com/xray/pricing/"),
    "kms_key": (1.00, "customer managed key-month", "https://aws.amazon.com/kms/pricing/"),
    "kms_request": (0.03 / 1e4, "request", "https://aws.amazon.com/kms/pricing/"),
    "s3_put": (0.005 / 1e3, "PUT request (S3 Standard)", "https://aws.amazon.com/s3/pricing/"),
}
# Peers, one check a minute from one location, per target-month (43,200 runs in a 30-day month, as they bill).
PEERS: dict[str, tuple[float, str]] = {
    "CloudWatch Synthetics": (0.0012 * 43_200, "https://aws.amazon.com/cloudwatch/pricing/ ($0.0012 per canary run)"),
    "Datadog Synthetics API test": (5.00 * 43_200 / 10_000,
                                    "https://www.datadoghq.com/pricing/?product=synthetic-testing ($5 per 10k runs)"),
    "Checkly API check": (2.00 * 43_200 / 10_000, "https://www.checklyhq.com/pricing/ ($2 per 10k API runs)"),
}

# Every resource type the template may hold, and how it is billed. A type missing here stops the model.
BILLED = "billed"  # priced by a line of the model
RESOURCE_TYPES: dict[str, str] = {
    "AWS::Serverless::Function": BILLED,  # ProbeFunction every round; the diagnosis functions per incident
    "AWS::DynamoDB::Table": BILLED,
    "AWS::CloudWatch::Alarm": BILLED,
    "AWS::CloudWatch::Dashboard": BILLED,
    "AWS::KMS::Key": BILLED,
    "AWS::Logs::LogGroup": BILLED,  # ingestion and storage of what the functions print
    "AWS::Serverless::LayerVersion": "free",
    "AWS::Serverless::StateMachine": "per incident: ~40 state transitions at $0.025 per 1,000 (not steady state)",
    "AWS::SNS::Topic": "per notification: $0.50 per million publishes (not steady state)",
    "AWS::SNS::Subscription": "free (e-mail deliveries: first 1,000 a month free)",
    "AWS::SNS::TopicPolicy": "free",
    "AWS::SQS::Queue": "dead letters only: $0.40 per million requests when a round fails (not steady state)",
    "AWS::SQS::QueuePolicy": "free",
    "AWS::SSM::Document": "free (Run Command on EC2 is free)",
    "AWS::SSM::Parameter": "free (standard parameter, standard throughput)",
    "AWS::KMS::Alias": "free",
    "AWS::IAM::Role": "free",
    "AWS::IAM::Policy": "free",
    "AWS::IAM::ManagedPolicy": "free",
    "AWS::Lambda::Permission": "free",
    "AWS::Lambda::EventInvokeConfig": "free",
    "AWS::Events::Rule": "free (scheduled rules on the default bus)",
    "AWS::S3::BucketPolicy": "free",
    "AWS::S3::Bucket": BILLED,  # the status page's objects, rewritten every run of the StatusPageFunction
}
OTHER_SCHEDULED_RUN_S = 1.0  # assumed duration of a scheduled function other than the prober (not measured)
STATUS_PAGE_OBJECTS = 3  # index.html, status.css, status.json (docs/web.md)
# Metric names a handler may emit outside the prober's own lists (functions/probe/app.py). CloudWatch bills a
# custom metric by the hour in which data arrives, so a metric sent only when something happens costs about
# $0.0004 an hour of activity: nothing in a steady month.
EVENT_METRICS = {
    "NotificationsDelivered": "NotifyFunction, per notification",
    "NotificationsFailed": "NotifyFunction, per notification",
    "ColdStart": "Powertools' capture_cold_start_metric, when a handler enables it",
    "TargetsConfigRejected": "any targets reader, per 5-minute refresh while a rejected push is current (EMF line)",
    # the AWS slice's round budget (COORD 2026-11-28): priced as event-driven on condition that they are sent only
    # when not zero; sent every round they are $0.30 a month each and belong in FLEET_METRICS
    "TargetsSkipped": "ProbeFunction, only when a round skips targets",
    "TargetErrors": "ProbeFunction, only when a target's handling raised",
}


class ModelError(Exception):
    """The template or the code holds something the model does not know how to price."""


# ---- reading the template --------------------------------------------------------------------------------------
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "layers" / "gatewatch"))
    from gatewatch.aws.template_schema import load_template as load

    return load(path)


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}


def resolve(value: Any, template: dict[str, Any]) -> Any:
    """Parameter defaults for Ref, and Fn::If / Fn::Equals on them; other intrinsics are left as they are."""
    params = _defaults(template)
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref" and arg in params:
            return params[arg]
        if fn == "Fn::If":
            cond, yes, no = arg
            return resolve(yes if condition(cond, template) else no, template)
        if fn == "Fn::Equals":
            a, b = (resolve(x, template) for x in arg)
            return str(a) == str(b)
    return value


def condition(name: str, template: dict[str, Any]) -> bool:
    cond = template.get("Conditions", {}).get(name)
    if cond is None:
        raise ModelError(f"the template has no condition {name}")
    result = resolve(cond, template)
    if not isinstance(result, bool):
        raise ModelError(f"condition {name} is not one the model can evaluate: {cond}")
    return result


def present(res: dict[str, Any], template: dict[str, Any]) -> bool:
    return "Condition" not in res or condition(res["Condition"], template)


def minutes_between_rounds(schedule: str) -> float:
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule.strip())
    if not m:
        raise ModelError(f"schedule {schedule!r}: the model reads rate(N minutes|hours|days) only")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"minute": 1, "hour": 60, "day": 1440}[unit.rstrip("s")]


@dataclass
class Settings:
    memory_mb: int
    architecture: str
    timeout_s: int
    minutes_between_rounds: float
    log_retention_days: int
    tracing: bool
    pitr: bool
    dashboards: int
    alarms: list[str]
    kms_keys: int
    per_target_policy: str
    fleet_metrics: tuple[str, ...]
    per_target_metrics: tuple[str, ...]
    probe_ttl_days: int
    other_scheduled: dict[str, tuple[float, int]] = field(default_factory=dict)  # name: (runs a month, memory MB)
    buckets: int = 0
    notes: list[str] = field(default_factory=list)


def read_settings(template: dict[str, Any] | None = None) -> Settings:
    template = template or load_template()
    resources = template["Resources"]
    unknown = sorted({r["Type"] for r in resources.values()} - set(RESOURCE_TYPES))
    if unknown:
        raise ModelError(f"the template has resource types the cost model does not know: {', '.join(unknown)} "
                         f"(add each to RESOURCE_TYPES in benchmarks/cost_model.py, with how it is billed)")
    glob = template.get("Globals", {}).get("Function", {})
    probe = resources["ProbeFunction"]["Properties"]
    schedule = resolve(probe["Events"]["Schedule"]["Properties"]["Schedule"], template)
    retention = resolve(resources["FunctionsLogGroup"]["Properties"]["RetentionInDays"], template)
    table = resources["GatewatchTable"]["Properties"]
    pitr = resolve(table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False),
                   template)
    if table.get("BillingMode") != "PAY_PER_REQUEST":
        raise ModelError("the model prices an on-demand (PAY_PER_REQUEST) table only")
    env = probe.get("Environment", {}).get("Variables", {})
    policy = str(resolve(env.get("PER_TARGET_METRICS", "none"), template))
    fleet, per_target = probe_metrics(policy)
    check_emitted_metrics(set(fleet) | set(probe_metrics_all()))
    return Settings(
        memory_mb=int(resolve(probe.get("MemorySize", glob.get("MemorySize", 128)), template)),
        architecture=(probe.get("Architectures") or glob.get("Architectures") or ["x86_64"])[0],
        timeout_s=int(resolve(probe.get("Timeout", glob.get("Timeout", 3)), template)),
        minutes_between_rounds=minutes_between_rounds(str(schedule)),
        log_retention_days=int(retention),
        tracing=resolve(probe.get("Tracing", glob.get("Tracing")), template) == "Active",
        pitr=pitr is True or str(pitr).lower() == "true",
        dashboards=sum(1 for r in resources.values()
                       if r["Type"] == "AWS::CloudWatch::Dashboard" and present(r, template)),
        alarms=sorted(k for k, r in resources.items()
                      if r["Type"] == "AWS::CloudWatch::Alarm" and present(r, template)),
        kms_keys=sum(1 for r in resources.values() if r["Type"] == "AWS::KMS::Key" and present(r, template)),
        per_target_policy=policy,
        fleet_metrics=fleet,
        per_target_metrics=per_target,
        probe_ttl_days=probe_ttl_days(),
        other_scheduled=other_scheduled(template, glob),
        buckets=sum(1 for r in resources.values() if r["Type"] == "AWS::S3::Bucket" and present(r, template)),
    )


def other_scheduled(template: dict[str, Any], glob: dict[str, Any]) -> dict[str, tuple[float, int]]:
    """Scheduled functions other than the prober that the parameter defaults deploy: (runs a month, memory MB)."""
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function" or name == "ProbeFunction" or not present(res, template):
            continue
        props = res["Properties"]
        for event in props.get("Events", {}).values():
            if event.get("Type") == "Schedule":
                runs = HOURS_PER_MONTH * 60 / minutes_between_rounds(str(resolve(event["Properties"]["Schedule"],
                                                                                 template)))
                memory = int(resolve(props.get("MemorySize", glob.get("MemorySize", 128)), template))
                out[name] = (runs, memory)
    return out


# ---- reading the code ------------------------------------------------------------------------------------------
def _module_constants(path: Path) -> dict[str, Any]:
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def probe_metrics(policy: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    consts = _module_constants(PROBE_APP)
    try:
        fleet = tuple(consts["FLEET_METRICS"]) + tuple(consts.get("CERTIFICATE_METRICS", ()))
        return fleet, tuple(consts["PER_TARGET_METRICS"][policy])
    except KeyError as exc:
        raise ModelError(f"functions/probe/app.py: no FLEET_METRICS / PER_TARGET_METRICS[{policy!r}] ({exc})") from None


def probe_metrics_all() -> set[str]:
    consts = _module_constants(PROBE_APP)
    return {m for names in consts["PER_TARGET_METRICS"].values() for m in names} | set(
        consts.get("RARE_PER_TARGET_METRICS", ()))


METRIC_CALL = re.compile(r"""(?:add_metric|single_metric|_per_target)\(\s*(?:name\s*=\s*)?["']([A-Za-z0-9_.-]+)["']""")


def emitted_metrics() -> set[str]:
    """Every metric name written as a literal in a metric call anywhere in the handlers or the library."""
    names = set()
    for base in CODE_DIRS:
        for path in base.rglob("*.py"):
            text = path.read_text()
            names |= set(METRIC_CALL.findall(text))
            if "capture_cold_start_metric=True" in text:
                names.add("ColdStart")
    return names


def check_emitted_metrics(known: set[str]) -> None:
    unknown = sorted(emitted_metrics() - known - set(EVENT_METRICS))
    if unknown:
        raise ModelError(f"the code emits metrics the cost model does not price: {', '.join(unknown)} (add them to "
                         "FLEET_METRICS / CERTIFICATE_METRICS / PER_TARGET_METRICS in functions/probe/app.py, or "
                         "EVENT_METRICS here when they are sent only when something happens)")


def probe_ttl_days() -> int:
    m = re.search(r"^PROBE_TTL_DAYS\s*=\s*(\d+)", DYNAMODB_STORE.read_text(), re.M)
    if not m:
        raise ModelError("store/dynamodb.py: no PROBE_TTL_DAYS")
    return int(m.group(1))


# ---- the model -------------------------------------------------------------------------------------------------
def load_measured(path: Path = MEASURED) -> dict[str, Any]:
    return json.loads(path.read_text())


def price(name: str) -> float:
    return PRICES[name][0]


def month(settings: Settings, measured: dict[str, Any], n: int, latency_ms: float, concurrency: int,
          per_target_policy: str | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Total USD a month for ``n`` targets, and its lines."""
    s = settings
    rounds = HOURS_PER_MONTH * 60 / s.minutes_between_rounds
    lines: list[dict[str, Any]] = []

    def line(item: str, usd: float, basis: str) -> None:
        lines.append({"item": item, "usd": round(usd, 4), "basis": basis})

    # Lambda: the round's wall time is CPU at the function's share of a core, overlapped with waiting on the
    # network through the thread pool; a fleet that does not fit one invocation's budget is sharded.
    share = min(1.0, s.memory_mb / LAMBDA_MB_PER_VCPU)
    cpu_ms = measured["cpu_ms_without_moto"]["per_target"]
    per_target_wall_ms = max(cpu_ms / share, latency_ms / concurrency)
    fixed_wall_ms = max(measured["cpu_ms_without_moto"]["fixed"], 0) / share + latency_ms
    shard = max(1, int(ROUND_BUDGET_S * 1000 // per_target_wall_ms))
    invocations = max(1, math.ceil(n / shard))
    gb_s = rounds * (invocations * fixed_wall_ms + n * per_target_wall_ms) / 1000 * s.memory_mb / 1024
    arch = "lambda_gb_s_arm64" if s.architecture == "arm64" else "lambda_gb_s_x86_64"
    line("Lambda duration", gb_s * price(arch),
         f"{s.memory_mb} MB {s.architecture} ({share:.2f} vCPU): {cpu_ms:.2f} ms CPU/target -> "
         f"{per_target_wall_ms:.1f} ms/target (network {latency_ms:g} ms / pool {concurrency}), "
         f"{invocations} invocation(s) a round of up to {shard} targets")
    line("Lambda requests", rounds * invocations * price("lambda_request"), f"{rounds:,.0f} rounds x {invocations}")
    if s.tracing:
        line("X-Ray traces", rounds * invocations * price("xray_trace"), "one trace per invocation (Tracing: Active)")

    wru = measured["wru"]["per_target"] * n + measured["wru"]["fixed"]
    rru = measured["rru"]["per_target"] * n + measured["rru"]["fixed"] * invocations
    line("DynamoDB writes", rounds * wru * price("dynamodb_wru"),
         f"{measured['wru']['per_target']:g} WRU/target/round (measured)")
    line("DynamoDB reads", rounds * rru * price("dynamodb_rru"),
         f"{measured['rru']['per_target']:g} RRU/target/round + {measured['rru']['fixed']:g}/invocation (measured)")
    probe_bytes = measured["item_bytes"].get("probe", 0) + DYNAMODB_ITEM_OVERHEAD
    copies = measured.get("item_copies", {}).get("probe", 1)
    stored_gb = n * rounds / HOURS_PER_MONTH * 24 * s.probe_ttl_days * probe_bytes * copies / 1e9
    stored_gb += n * (measured["item_bytes"].get("state", 0) + DYNAMODB_ITEM_OVERHEAD) / 1e9
    line("DynamoDB storage", stored_gb * price("dynamodb_storage_gb"),
         f"{s.probe_ttl_days} days of probes x {probe_bytes} B x {copies} cop{'y' if copies == 1 else 'ies'}")
    if s.pitr:
        line("DynamoDB point-in-time recovery", stored_gb * price("dynamodb_pitr_gb"), "PointInTimeRecovery=true")
    line("KMS requests (table key)", KMS_TABLE_KEY_REQUESTS_PER_MONTH * price("kms_request"),
         "aws/dynamodb key, data key refreshed about every 5 minutes")

    policy = per_target_policy or s.per_target_policy
    per_target_metrics = probe_metrics(policy)[1]
    line("CloudWatch fleet metrics", len(s.fleet_metrics) * price("cloudwatch_metric"), ", ".join(s.fleet_metrics))
    line("CloudWatch per-target metrics", n * len(per_target_metrics) * price("cloudwatch_metric"),
         f"PerTargetMetrics={policy}: {', '.join(per_target_metrics) or 'none'}")
    line("CloudWatch event-driven metrics", 0.0,
         "CertDaysLeft (a target inside warn_days), " + ", ".join(k for k in EVENT_METRICS if k != "ColdStart")
         + ": billed only for hours with data")
    line("CloudWatch alarms", len(s.alarms) * price("cloudwatch_alarm"), ", ".join(s.alarms))
    line("CloudWatch dashboard", s.dashboards * price("cloudwatch_dashboard"),
         "CreateDashboard=true" if s.dashboards else "CreateDashboard=false")
    log_bytes_per_target = measured["log_bytes"]["per_target"]
    if policy != s.per_target_policy:  # the measured per-target log bytes are the EMF documents of the policy
        extra = len(per_target_metrics) - len(probe_metrics(s.per_target_policy)[1])
        log_bytes_per_target = max(0.0, log_bytes_per_target + EMF_DOC_BYTES * extra)
    log_gb = rounds * (invocations * measured["log_bytes"]["fixed"] + n * log_bytes_per_target) / 1e9
    line("CloudWatch Logs ingestion", log_gb * price("logs_ingest_gb"),
         f"{measured['log_bytes']['fixed']:.0f} B/invocation + {log_bytes_per_target:.0f} B/target (measured)")
    line("CloudWatch Logs storage", log_gb * min(s.log_retention_days, 30) / 30 * price("logs_storage_gb")
         + log_gb * max(0, s.log_retention_days - 30) / 30 * price("logs_storage_gb"),
         f"{s.log_retention_days} days retention, uncompressed (an upper bound)")
    line("KMS customer managed keys", s.kms_keys * price("kms_key"), f"{s.kms_keys} key(s) (the topic's)")
    other = sum(runs * (price("lambda_request") + OTHER_SCHEDULED_RUN_S * mb / 1024 * price(arch))
                for runs, mb in s.other_scheduled.values())
    line("Other scheduled functions", other,
         (", ".join(f"{k} {v[0]:,.0f} runs" for k, v in s.other_scheduled.items()) or "none deployed")
         + f" (assumed {OTHER_SCHEDULED_RUN_S:g} s each)")
    page_runs = s.other_scheduled.get("StatusPageFunction", (0, 0))[0] if s.buckets else 0
    line("S3 requests (status page)", page_runs * STATUS_PAGE_OBJECTS * price("s3_put"),
         f"StatusPage: {STATUS_PAGE_OBJECTS} PUTs a run" if page_runs else "StatusPage=false")
    return sum(x["usd"] for x in lines), lines


def fleets(settings: Settings, measured: dict[str, Any], sizes: list[int], latency_ms: float, concurrency: int,
           policy: str | None = None) -> dict[str, Any]:
    fixed, fixed_lines = month(settings, measured, 0, latency_ms, concurrency, policy)
    out = {}
    for n in sizes:
        total, lines = month(settings, measured, n, latency_ms, concurrency, policy)
        for ln, base in zip(lines, fixed_lines, strict=True):
            ln["fixed_usd"], ln["per_target_usd"] = base["usd"], round((ln["usd"] - base["usd"]) / n, 5)
        out[str(n)] = {"per_target_month_usd": round((total - fixed) / n, 4), "fixed_month_usd": round(fixed, 4),
                       "total_month_usd": round(total, 2), "all_in_per_target_month_usd": round(total / n, 4),
                       "lines": lines}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the model as JSON")
    ap.add_argument("--fleets", default="1,10,100,1000,10000")
    ap.add_argument("--latency-ms", type=float, default=200.0,
                    help="a target's answer time the pool waits on (an HTTPS probe over the internet)")
    ap.add_argument("--concurrency", type=int, default=16, help="settings.concurrency (the config's default)")
    ap.add_argument("--per-target-metrics", choices=("none", "success", "all"),
                    help="price another PerTargetMetrics choice than the template's default")
    args = ap.parse_args()
    settings = read_settings()
    measured = load_measured()
    sizes = [int(x) for x in args.fleets.split(",")]
    model = fleets(settings, measured, sizes, args.latency_ms, args.concurrency, args.per_target_metrics)
    doc = {"fleets": model, "settings": settings.__dict__, "measured": measured,
           "prices": {k: {"usd": v[0], "per": v[1], "source": v[2]} for k, v in PRICES.items()},
           "peers_per_target_month_usd": {k: {"usd": round(v[0], 2), "source": v[1]} for k, v in PEERS.items()},
           "assumptions": {"latency_ms": args.latency_ms, "concurrency": args.concurrency,
                           "hours_per_month": HOURS_PER_MONTH, "round_budget_s": ROUND_BUDGET_S}}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    s = settings
    print(f"gatewatch on AWS, us-east-1 list prices, no free tier: ProbeFunction {s.memory_mb} MB {s.architecture}, "
          f"a round every {s.minutes_between_rounds:g} min, "
          f"PerTargetMetrics={args.per_target_metrics or s.per_target_policy}, "
          f"PITR {'on' if s.pitr else 'off'}, {len(s.alarms)} alarms, {s.dashboards} dashboard(s), "
          f"logs kept {s.log_retention_days} days")
    print(f"{'targets':>8} {'per target-month':>17} {'fixed/month':>12} {'total/month':>12} {'all-in/target':>14}")
    for n, f in model.items():
        print(f"{int(n):>8,} {f['per_target_month_usd']:>17.4f} {f['fixed_month_usd']:>12.2f} "
              f"{f['total_month_usd']:>12.2f} {f['all_in_per_target_month_usd']:>14.4f}")
    biggest = model[str(max(sizes))]
    print(f"\nlines at {max(sizes):,} targets (USD a month: total, of which fixed, per target):")
    for ln in biggest["lines"]:
        print(f"  {ln['item']:32} {ln['usd']:10.2f} {ln['fixed_usd']:8.2f} {ln['per_target_usd']:9.5f}  {ln['basis']}")
    print("\npeers, per target-month (one check a minute, one location):")
    for name, (usd, source) in PEERS.items():
        print(f"  {name:28} {usd:7.2f}   {source}")
    print("\nprices:")
    for name, (usd, per, source) in PRICES.items():
        print(f"  {name:22} {usd:<12g} per {per}   {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
