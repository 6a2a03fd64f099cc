"""FactsFunction: the outside round + the on-box SSM invocation -> the facts document and the tree's signals."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws.events import DiagnosisState
from gatewatch.steps import facts_step

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=DiagnosisState)
def handler(event: DiagnosisState, context: LambdaContext) -> dict:
    return facts_step(event.model_dump(by_alias=True, exclude_none=True))
