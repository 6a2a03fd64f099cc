"""GuardFunction: the remediation guardrails; an allowed action leaves with the host lease and SSM parameters."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.aws.events import DiagnosisState
from gatewatch.steps import guard_step

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=DiagnosisState)
def handler(event: DiagnosisState, context: LambdaContext) -> dict:
    state = event.model_dump(by_alias=True, exclude_none=True)
    return guard_step(state, runtime.store(), runtime.load_targets(), runtime.ceiling(),
                      settle_s=runtime.settle_seconds())
