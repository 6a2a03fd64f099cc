"""Adapters the Lambda handlers share: the targets file (S3, or legacy SSM), the DynamoDB store, SNS.

Everything is built lazily and cached per container (module scope in the handler), and configured from the
template's Globals: an explicit argument beats an environment variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatewatch.config import Config

CONFIG_MAX_AGE_S = 300  # Powertools' parameter cache: a changed targets file is picked up within 5 minutes


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set (it comes from infra/template.yaml Globals)")
    return value


def load_targets(parameter_name: str | None = None) -> Config:
    """The targets YAML: the S3 object TARGETS_BUCKET/TARGETS_KEY when TARGETS_BUCKET is set (parsed once per
    ETag, a bad push rejected while the last good one stays, see gatewatch.aws.targets_store), else the legacy
    SSM parameter TARGETS_PARAMETER (8 KB: about eleven targets), cached by Powertools Parameters."""
    bucket = "" if parameter_name else os.environ.get("TARGETS_BUCKET", "")
    if bucket:
        return targets_source(bucket, os.environ.get("TARGETS_KEY") or "targets.yaml").get()
    from aws_lambda_powertools.utilities import parameters

    name = parameter_name or env("TARGETS_PARAMETER")
    text = parameters.get_parameter(name, decrypt=True, max_age=CONFIG_MAX_AGE_S)
    return _parse_targets(text, f"ssm:{name}")


@lru_cache(maxsize=2)
def _parse_targets(text: str, source: str) -> Config:
    """Parsed and validated once per container and text (about 1 ms per target): not again every round."""
    from gatewatch.config import load_config_text

    return load_config_text(text, source=source, environ=os.environ)


@lru_cache(maxsize=4)
def targets_source(bucket: str, key: str) -> Any:
    import boto3

    from gatewatch.aws.targets_store import TargetsSource

    return TargetsSource(bucket, key, boto3.client("s3"), max_age_s=CONFIG_MAX_AGE_S, environ=os.environ)


@lru_cache(maxsize=1)
def store() -> Any:
    from gatewatch.store.dynamodb import DynamoDBStore

    return DynamoDBStore(env("TABLE_NAME"))


@lru_cache(maxsize=1)
def notifier() -> Any:
    from gatewatch.notify import SNSNotifier

    return SNSNotifier(env("TOPIC_ARN"))


def settle_seconds() -> float:
    """How long the state machine waits after a remediation before verifying it (REMEDIATION_SETTLE_S)."""
    try:
        return max(0.0, min(300.0, float(env("REMEDIATION_SETTLE_S", "10"))))
    except ValueError:
        return 10.0


def ceiling() -> str:
    value = env("REMEDIATION_CEILING", "suggest")
    return value if value in ("off", "suggest", "auto") else "off"


def start_execution(incident_id: str, payload: dict[str, Any], client: Any = None) -> bool:
    """Start the diagnosis named after the incident; False when that execution already exists (a retry)."""
    import json

    import boto3

    sfn = client or boto3.client("stepfunctions")
    try:
        sfn.start_execution(stateMachineArn=env("STATE_MACHINE_ARN"), name=incident_id,
                            input=json.dumps(payload, default=str))
    except sfn.exceptions.ExecutionAlreadyExists:
        return False
    return True


IDEMPOTENCY_PK = "IDEMPOTENCY#guard"


@lru_cache(maxsize=1)
def guard_once() -> Any:
    """``guard_step`` wrapped in Powertools idempotency on the results table, keyed on the incident and action.

    The state machine retries a Lambda task on service errors; a retry after a first call that took the host lease
    and the once-only claim must get that call's answer back, not a refusal from its own claim.
    """
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from gatewatch.steps import guard_step

    layer = DynamoDBPersistenceLayer(
        table_name=env("TABLE_NAME"), key_attr="PK", sort_key_attr="SK", static_pk_value=IDEMPOTENCY_PK,
        expiry_attr="expires_at", boto3_client=boto3.client("dynamodb"),
    )
    config = IdempotencyConfig(event_key_jmespath="[incident_id, record.verdict.remediation]",
                               raise_on_no_idempotency_key=True, expires_after_seconds=24 * 3600)

    @idempotent_function(data_keyword_argument="state", persistence_store=layer, config=config)
    def run(state: dict[str, Any]) -> dict[str, Any]:
        return guard_step(state, store(), load_targets(), ceiling(), settle_s=settle_seconds())

    run.idempotency_config = config  # the handler registers its Lambda context on it
    return run


def reset() -> None:
    """Forget the per-container adapters (tests switch tables and topics between cases)."""
    store.cache_clear()
    notifier.cache_clear()
    targets_source.cache_clear()
    _parse_targets.cache_clear()
    try:  # Powertools' parameter cache (max_age 300 s) would hand the next case the previous case's targets
        from aws_lambda_powertools.utilities.parameters import base, clear_caches

        clear_caches()
        base.DEFAULT_PROVIDERS.clear()  # a provider keeps the client (and region) it was made with
    except ImportError:
        pass
    guard_once.cache_clear()
