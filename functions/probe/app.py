"""ProbeFunction: scheduled; probes every target, records results and state, starts one diagnosis per incident."""

import os
import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime, shard
from gatewatch.clock import Clock
from gatewatch.steps import probe_step, round_budget

logger = Logger()
# The template's Globals set the namespace; the default keeps a stray environment from breaking the schema.
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Gatewatch"
metrics = Metrics(namespace=NAMESPACE)


# Custom metrics with a ``target`` dimension cost $0.30 each per target-month, more than the rest of a target's
# cost together, so they are a policy (the template's PerTargetMetrics parameter); the fleet metrics are always on.
PER_TARGET_METRICS = {"none": (), "success": ("ProbeSuccess",), "all": ("ProbeSuccess", "Latency")}
# Every round emits these; TargetsDown's sample count is also the prober's heartbeat (ProberSilentAlarm). A round
# always ends inside the function (its budget comes from the remaining time), so the heartbeat is always emitted.
FLEET_METRICS = ("TargetsDown", "OpenIncidents")
# Emitted when the fleet has HTTPS targets (the cost model counts them as always on); CertDaysLeft carries a target
# dimension and is emitted only for certificates inside their warn_days.
CERTIFICATE_METRICS = ("CertificatesCritical",)
RARE_PER_TARGET_METRICS = ("CertDaysLeft",)


def per_target_metrics() -> tuple[str, ...]:
    return PER_TARGET_METRICS.get(os.environ.get("PER_TARGET_METRICS", "none"), ())


def _per_target(name: str, unit: str, value: float, target: str) -> None:
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="target", value=target)


def _certificates(reports) -> None:
    """Certificate expiry (alert): the fleet minimum and how many are inside their critical_days (alarmed); a
    per-target CertDaysLeft only for the few certificates inside their warn_days, so it costs next to nothing."""
    days = [r.cert_days_left for r in reports if r.cert_days_left is not None]
    if not days:
        return
    # the fleet minimum rides in the EMF document as a property (Logs Insights can chart it): as a metric it would
    # cost $0.30 a month for what CertificatesCritical and the per-target CertDaysLeft already tell
    metrics.add_metadata(key="cert_days_left_min", value=min(days))
    critical = 0
    for r in reports:
        info = (r.certificate or {}).get("certificate") or {}
        if info:
            critical += info.get("level") == "critical"
            _per_target("CertDaysLeft", MetricUnit.Count, r.cert_days_left, r.target)
    metrics.add_metric(name="CertificatesCritical", unit=MetricUnit.Count, value=critical)


class _WorkerNotifier:
    """A shard worker's notifier: notifications as usual, but pending deliveries are retried by the coordinator
    alone (once a round, not once a shard)."""

    def __init__(self, notifier) -> None:
        self._notifier = notifier

    def __getattr__(self, name: str):
        if name == "retry_pending":
            raise AttributeError(name)
        return getattr(self._notifier, name)


_SLOWEST_LOAD_S = [0.0]  # the longest the targets file took to load (a cold parse) in this container


def _fan_out(shards: list[list[str]], function_arn: str, round_at: str) -> None:
    """Start one asynchronous worker invocation of this function per shard (lambda:InvokeFunction on itself)."""
    import json

    import boto3

    client = boto3.client("lambda")
    for index, names in enumerate(shards, start=1):
        client.invoke(FunctionName=function_arn, InvocationType="Event",
                      Payload=json.dumps(shard.shard_event(index, len(shards) + 1, names, round_at)).encode())


def _targets_of_round(event: dict, config, budget: float | None, context: LambdaContext):
    """(targets this invocation probes, shard count): a worker probes its shard; the coordinator splits a fleet
    too large for one invocation, fans out all shards but the first, and probes the first itself. ``budget`` is a
    cold worker's: it parses the whole targets file before it probes (10,000 targets: seconds)."""
    if isinstance(event, dict) and isinstance(event.get("shard"), dict):
        wanted = set(event["shard"].get("targets") or ())
        metrics.add_metadata(key="shard", value=f"{event['shard'].get('index')}/{event['shard'].get('count')}")
        return [t for t in config.targets if t.name in wanted], int(event["shard"].get("count") or 1)
    targets = list(config.targets)
    size = shard.fleet_size(budget or 45.0, config.settings.concurrency, [t.timeout_s for t in targets])
    if len(targets) <= size:
        return targets, 1
    shards = shard.split([t.name for t in targets], size)
    _fan_out(shards[1:], context.invoked_function_arn, Clock().iso())
    logger.info("round sharded", extra={"targets": len(targets), "shard_size": size, "shards": len(shards)})
    metrics.add_metadata(key="shard", value=f"0/{len(shards)}")
    first = set(shards[0])
    return [t for t in targets if t.name in first], len(shards)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    at_start = context.get_remaining_time_in_millis()
    started = time.monotonic()
    config = runtime.load_targets()
    _SLOWEST_LOAD_S[0] = max(_SLOWEST_LOAD_S[0], time.monotonic() - started)
    budget = round_budget(context.get_remaining_time_in_millis())
    # shards are sized for a worker that starts cold: its budget less the slowest load this container has seen
    worker_budget = round_budget(int(at_start - _SLOWEST_LOAD_S[0] * 1000)) if at_start is not None else None
    targets, shards = _targets_of_round(event, config, worker_budget, context)
    worker = isinstance(event, dict) and "shard" in event
    notifier = _WorkerNotifier(runtime.notifier()) if worker else runtime.notifier()
    # a worker whose targets left the config since the fan-out probes nothing (run_once([]) would probe all)
    reports = probe_step(config, runtime.store(), notifier, runtime.start_execution, budget_s=budget,
                         targets=targets) if targets or not worker else []
    down = 0
    wanted = per_target_metrics()
    for report in reports:
        if report.status in ("skipped", "error"):  # counted below; no success or latency sample for them
            continue
        up = report.status != "down"
        down += not up
        if "ProbeSuccess" in wanted:
            _per_target("ProbeSuccess", MetricUnit.Count, 1 if up else 0, report.target)
        if "Latency" in wanted and report.latency_ms is not None:
            _per_target("Latency", MetricUnit.Milliseconds, report.latency_ms, report.target)
        if report.event:
            logger.info("incident event", extra={"target": report.target, "event": report.event,
                                                 "incident_id": report.incident_id})
    _certificates(reports)
    # targets whose state is DOWN (failure_threshold reached): the TargetsDown alarm follows the threshold
    in_down_state = sum(1 for r in reports if r.incident_id and r.event != "resolved")
    metrics.add_metric(name="TargetsDown", unit=MetricUnit.Count, value=in_down_state)
    # open incidents from the states this round already read (no query of the incident history)
    metrics.add_metric(name="OpenIncidents", unit=MetricUnit.Count, value=in_down_state)
    # only when not zero: a metric costs by the hour data arrives (benchmarks/cost_model.py EVENT_METRICS)
    skipped = sum(1 for r in reports if r.status == "skipped")
    errors = sum(1 for r in reports if r.status == "error")
    if skipped:
        metrics.add_metric(name="TargetsSkipped", unit=MetricUnit.Count, value=skipped)
    if errors:
        metrics.add_metric(name="TargetErrors", unit=MetricUnit.Count, value=errors)
    return {"targets": len(reports), "down": down, "shards": shards,
            "events": [{"target": r.target, "event": r.event, "incident_id": r.incident_id} for r in reports
                       if r.event]}
