"""The shared AWS fixtures do what they promise: SNS reaches SQS, Lambda runs our callables (errors included, so
ASL Catch works), a state machine executes, the table matches the template, and moto answers over real HTTP."""

from __future__ import annotations

import json
import time

from gatewatch.aws.template_schema import table_create_kwargs
from gatewatch.notify import Notification, SNSNotifier
from gatewatch.runner import NOT_REGISTERED, SUCCESS
from gatewatch.runner.ssm import Backoff, SSMRunner
from gatewatch.store import ConflictError, DynamoDBStore, Incident, TargetState
from tests.integration.test_ssm_runner import host, tiny_document


def wait_for_execution(sfn, arn: str, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = sfn.describe_execution(executionArn=arn)
        if out["status"] != "RUNNING":
            return out
        time.sleep(0.05)
    raise AssertionError(f"execution {arn} still running after {timeout_s} s")


def test_sns_notifier_reaches_a_subscribed_queue_with_text_envelope_and_attributes(aws, topic_and_queue):
    note = Notification("diagnosed", "api", "api-20260101T000000Z", "api is down: backend_down",
                        "The backend is not running.", {"verdict": {"category": "backend_down"}, "ms": 12.5})
    delivery = SNSNotifier(topic_and_queue.topic_arn, client=aws.client("sns")).send(note)
    assert delivery.ok and delivery.message_id

    [message] = topic_and_queue.read(expect=1)
    assert message["Subject"] == "api is down: backend_down"
    envelope = json.loads(message["Message"])  # the queue gets the structured document, not the e-mail text
    assert envelope["data"] == {"verdict": {"category": "backend_down"}, "ms": 12.5}
    assert (envelope["kind"], envelope["target"], envelope["category"]) == ("diagnosed", "api", "backend_down")
    attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"kind": "diagnosed", "target": "api", "category": "backend_down"}


def test_table_fixture_is_built_from_the_template(aws, table, template):
    described = aws.client("dynamodb").describe_table(TableName=table)["Table"]
    expected = table_create_kwargs(template, table)
    assert described["KeySchema"] == expected["KeySchema"]
    assert {i["IndexName"] for i in described["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2"}
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_lambda_dispatch_runs_handlers_inside_a_state_machine_and_errors_are_catchable(aws, lambda_dispatch):
    def facts(event, context):
        return {"target": event["target"], "signals": {"nginx_up": False}, "by": context.function_name}

    def record(event, context):
        raise ValueError(f"cannot record {event['target']}")

    lambda_dispatch["gatewatch-facts"] = facts
    lambda_dispatch["gatewatch-record"] = record
    arn = "arn:aws:lambda:us-east-1:123456789012:function:"
    definition = {
        "StartAt": "Facts",
        "States": {
            "Facts": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": f"{arn}gatewatch-facts", "Payload.$": "$"},
                      "ResultSelector": {"facts.$": "$.Payload"}, "ResultPath": "$.result", "Next": "Record"},
            "Record": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                       "Parameters": {"FunctionName": f"{arn}gatewatch-record", "Payload.$": "$"},
                       "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Caught"}],
                       "Next": "Done"},
            "Caught": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name="dispatch", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    run = sfn.start_execution(stateMachineArn=machine, name="api-1", input=json.dumps({"target": "api"}))
    out = wait_for_execution(sfn, run["executionArn"])

    assert out["status"] == "SUCCEEDED", out
    result = json.loads(out["output"])
    assert result["result"]["facts"] == {"target": "api", "signals": {"nginx_up": False}, "by": "gatewatch-facts"}
    assert result["error"]["Error"] == "ValueError"
    assert json.loads(result["error"]["Cause"])["errorMessage"] == "cannot record api"
    assert [name for name, _ in lambda_dispatch.calls] == ["gatewatch-facts", "gatewatch-record"]


def test_moto_server_over_http_store_and_ssm_runner(moto_server, ssm_executor, template):
    """The same adapters through real HTTP on loopback, as a deployed client would talk to AWS."""
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")
    dynamodb = moto_server.client("dynamodb")
    dynamodb.create_table(**table_create_kwargs(template, "gatewatch-http"))
    store = DynamoDBStore("gatewatch-http", client=dynamodb)
    assert store.create_incident(Incident("api-1", "api", "2026-01-01T00:00:00.000Z")) is True
    assert store.create_incident(Incident("api-1", "api", "2026-01-01T00:00:00.000Z")) is False
    assert store.put_state(TargetState("api"), 0).version == 1
    try:
        store.put_state(TargetState("api"), 0)
        raise AssertionError("a second create must conflict")
    except ConflictError:
        pass

    ssm = moto_server.client("ssm")
    ssm_executor.add_instance("i-0123456789abcdef0")
    ssm_executor.create_document(ssm, "say-hello", tiny_document("echo hello over http"))
    runner = SSMRunner(client=ssm, onbox_document="say-hello", backoff=Backoff(0.05, 2.0, 0.2))
    result = runner.run_onbox(host(), {})
    assert (result.status, result.stdout) == (SUCCESS, "hello over http\n")
    assert runner.run_onbox(host(instance_id="i-00000000000000bad"), {}).status == NOT_REGISTERED
