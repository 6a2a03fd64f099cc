"""ProbeFunction: scheduled; probes every target, records results and state, starts one diagnosis per incident."""

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.steps import probe_step

logger = Logger()
# The template's Globals set the namespace; the default keeps a stray environment from breaking the schema.
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Gatewatch"
metrics = Metrics(namespace=NAMESPACE)


def _per_target(name: str, unit: str, value: float, target: str) -> None:
    """Per-target metrics carry a ``target`` dimension; kept to two per target because each costs money."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="target", value=target)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    config = runtime.load_targets()
    reports = probe_step(config, runtime.store(), runtime.notifier(), runtime.start_execution)
    down = 0
    for report in reports:
        up = report.status != "down"
        down += not up
        _per_target("ProbeSuccess", MetricUnit.Count, 1 if up else 0, report.target)
        if report.latency_ms is not None:
            _per_target("Latency", MetricUnit.Milliseconds, report.latency_ms, report.target)
        if report.event:
            logger.info("incident event", extra={"target": report.target, "event": report.event,
                                                 "incident_id": report.incident_id})
    metrics.add_metric(name="TargetsDown", unit=MetricUnit.Count, value=down)
    metrics.add_metric(name="OpenIncidents", unit=MetricUnit.Count,
                       value=len(runtime.store().list_incidents(open_only=True, limit=1000)))
    metrics.add_metric(name="Heartbeat", unit=MetricUnit.Count, value=1)
    return {"targets": len(reports), "down": down,
            "events": [{"target": r.target, "event": r.event, "incident_id": r.incident_id} for r in reports
                       if r.event]}
