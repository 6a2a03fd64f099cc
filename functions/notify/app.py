"""NotifyFunction: subscribed to the incident topic; delivers each notification to the channels teams use (webhook,
Slack, PagerDuty, Teams) with secrets from Parameter Store or Secrets Manager, records every attempt, and on its
schedule sends again what failed. A delivery that keeps failing is counted and alarmed, never dropped silently."""

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.notify.aws import notify_step
from gatewatch.notify.secrets import DEFAULT_PARAMETER_PREFIX, SecretEnvironment

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Gatewatch")
secrets = SecretEnvironment(parameter_prefix=os.environ.get("SECRETS_PARAMETER_PREFIX") or DEFAULT_PARAMETER_PREFIX)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    counts = notify_step(event, runtime.load_targets(), runtime.store(), secrets)
    metrics.add_metric(name="NotificationsDelivered", unit=MetricUnit.Count, value=counts["delivered"])
    metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=counts["pending"] + counts["failed"])
    if counts["failed"]:
        logger.error("notifications given up", extra=counts)
    return counts
