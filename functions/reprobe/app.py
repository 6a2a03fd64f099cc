"""ReprobeFunction: after a remediation settles, the outside probe again plus the on-box local health check."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.aws.events import DiagnosisState
from gatewatch.steps import reprobe_step

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=DiagnosisState)
def handler(event: DiagnosisState, context: LambdaContext) -> dict:
    return reprobe_step(event.model_dump(by_alias=True, exclude_none=True), runtime.load_targets())
