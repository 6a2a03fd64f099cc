"""GuardFunction: the remediation guardrails; an allowed action leaves with the host lease and SSM parameters.

Idempotent per incident and action (Powertools idempotency on the results table): a retried invocation returns the
first answer instead of running the guards again.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.aws.events import DiagnosisState

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    state = DiagnosisState.model_validate(event).model_dump(by_alias=True, exclude_none=True)
    guarded = runtime.guard_once()
    guarded.idempotency_config.register_lambda_context(context)
    return guarded(state=state)
