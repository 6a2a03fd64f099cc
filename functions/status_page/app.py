"""StatusPageFunction (optional, parameter StatusPage=true): write the public status page to the private bucket."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from gatewatch.aws import runtime
from gatewatch.views.status import publish_status_page

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    config = runtime.load_targets()
    names = {t.name: t.display_name or t.name for t in config.targets}
    return publish_status_page(runtime.store(), runtime.env("STATUS_BUCKET"), names)
