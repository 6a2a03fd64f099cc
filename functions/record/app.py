"""RecordFunction: render the verdict the state machine walked (or the remediation outcome) and store it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.aws.events import parse_record_event
from gatewatch.steps import record_outcome_step, record_step

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    mode, state = parse_record_event(event)
    if mode == "outcome":
        return record_outcome_step(state, runtime.store())
    return record_step(state, runtime.store(), runtime.load_targets(), runtime.ceiling())
