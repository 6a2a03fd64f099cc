"""Run the generated state machine in moto with its Lambda tasks dispatched to Python callables in-process.

Shared by the parity test and the end-to-end tests. moto executes the definition (Pass, Choice, Wait, Task,
intrinsics) in a background thread; ``LambdaSimpleBackend.invoke`` is patched to call our handlers, and a raised
exception becomes Lambda's ``Unhandled`` function error so the definition's Catch paths run for real.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
DEFINITION = ROOT / "infra" / "statemachine" / "diagnose.asl.json"
REGION = "us-east-1"
ACCOUNT = "123456789012"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


@contextmanager
def dispatch_lambdas(handlers: dict[str, Callable[[dict, Any], Any]]):
    """Patch moto's simple Lambda backend so invoking ``name`` calls ``handlers[name](event, context)``."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        name = function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        handler = handlers.get(name)
        if handler is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        event = json.loads(body) if body else {}
        try:
            result = handler(event, None)
        except Exception as exc:  # noqa: BLE001 - becomes Lambda's function error, as in AWS
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
        return json.dumps(result, default=str).encode()

    LambdaSimpleBackend.invoke = invoke
    try:
        yield
    finally:
        LambdaSimpleBackend.invoke = original


def substitutions(extra: dict[str, str] | None = None) -> dict[str, str]:
    subs = {
        "OnboxDocumentName": "gatewatch-onbox",
        "RemediationDocumentName": "gatewatch-remediation",
        "FactsFunctionArn": function_arn("gatewatch-facts"),
        "RecordFunctionArn": function_arn("gatewatch-record"),
        "GuardFunctionArn": function_arn("gatewatch-guard"),
        "ReprobeFunctionArn": function_arn("gatewatch-reprobe"),
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:gatewatch-incidents",
    }
    return subs | (extra or {})


def render_definition(subs: dict[str, str], text: str | None = None) -> str:
    text = text if text is not None else DEFINITION.read_text()
    for key, value in subs.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise AssertionError("a DefinitionSubstitution was left unfilled")
    return text


def create_functions(names: list[str]) -> None:
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"fn-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    for name in names:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                            Code={"ZipFile": b"not used: invocations are dispatched in-process"})


def create_state_machine(definition: str) -> str:
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"sfn-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.create_state_machine(name=f"diagnose-{uuid.uuid4().hex[:8]}", definition=definition,
                                    roleArn=role)["stateMachineArn"]


def run_execution(machine_arn: str, payload: dict[str, Any], name: str | None = None,
                  timeout_s: float = 60.0) -> dict[str, Any]:
    """Start, poll until finished, return describe_execution plus the parsed output."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.start_execution(stateMachineArn=machine_arn, name=name or f"x-{uuid.uuid4().hex[:12]}",
                              input=json.dumps(payload, default=str))["executionArn"]
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"execution still running after {timeout_s}s")
        time.sleep(0.05)
    desc["output_doc"] = json.loads(desc["output"]) if desc.get("output") else None
    desc["history"] = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return desc


# -- the deployed stack, for end-to-end tests that use tests/integration/conftest.py's fixtures ----------------------
STEP_FUNCTIONS = {"gatewatch-facts": "facts", "gatewatch-record": "record", "gatewatch-guard": "guard",
                  "gatewatch-reprobe": "reprobe"}


def lambda_context(name: str) -> Any:
    """What Powertools reads from a Lambda context."""
    from types import SimpleNamespace

    return SimpleNamespace(function_name=name, memory_limit_in_mb=256, aws_request_id="req-1",
                           invoked_function_arn=function_arn(name), get_remaining_time_in_millis=lambda: 60_000)


def deploy_stack(aws: Any, table: str, topic_arn: str, lambda_dispatch: Any, monkeypatch: Any,
                 env: dict[str, str]) -> str:
    """Wire the stack as the template does: step functions dispatched to the real handlers, the generated
    definition with its substitutions, the Globals' environment (plus ``env``). Returns the state machine ARN."""
    import importlib

    from aws_lambda_powertools.utilities import parameters

    from gatewatch.aws import runtime
    from tests.integration.conftest import ONBOX_DOCUMENT, REMEDIATION_DOCUMENT

    iam, lam, sfn = aws.client("iam"), aws.client("lambda"), aws.client("stepfunctions")
    role = iam.create_role(RoleName="gw", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    for name, module in STEP_FUNCTIONS.items():
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                            Code={"ZipFile": b"dispatched in-process"})
        lambda_dispatch[name] = importlib.import_module(f"functions.{module}.app").handler
    subs = substitutions({"OnboxDocumentName": ONBOX_DOCUMENT, "RemediationDocumentName": REMEDIATION_DOCUMENT,
                          "TopicArn": topic_arn})
    machine = sfn.create_state_machine(name="gatewatch-diagnose", roleArn=role,
                                       definition=render_definition(subs))["stateMachineArn"]
    globals_env = {"TABLE_NAME": table, "TOPIC_ARN": topic_arn, "STATE_MACHINE_ARN": machine,
                   "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_NAMESPACE": "Gatewatch",
                   "POWERTOOLS_SERVICE_NAME": "gatewatch"}
    for key, value in (globals_env | env).items():
        monkeypatch.setenv(key, value)
    parameters.clear_caches()
    runtime.reset()
    return machine
