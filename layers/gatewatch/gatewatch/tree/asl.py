"""Generate the DiagnoseStateMachine definition (Amazon States Language, JSONPath) from the tree.

The tree becomes Choice states over ``$.diag.signals`` (computed by the FactsFunction with the same
``gatewatch.tree.signals.derive`` the Python walker uses). Each node first passes a ``Visit_`` state that appends
its id to ``$.walk.trail``, so an execution records the path it really walked and the RecordFunction renders the
same verdict as the Python walker. Around the tree: the on-box checks over SSM Run Command with a bounded polling
loop, the record and notify steps, and the remediation branch; every Catch still notifies with what was known.

ARNs and names are ``${...}`` DefinitionSubstitutions, filled by infra/template.yaml.
"""

from __future__ import annotations

import json
from typing import Any

from gatewatch.tree.engine import UNKNOWN_LEAF
from gatewatch.tree.model import Tree
from gatewatch.tree.signals import SIGNALS

SUBSTITUTIONS = (
    "OnboxDocumentName",
    "RemediationDocumentName",
    "FactsFunctionArn",
    "RecordFunctionArn",
    "GuardFunctionArn",
    "ReprobeFunctionArn",
    "TopicArn",
)
POLL_SECONDS = 2
MAX_POLLS = 30  # x POLL_SECONDS: the on-box script ends within 10 s; the rest is SSM delivery
REMEDIATION_POLL_SECONDS = 3
MAX_REMEDIATION_POLLS = 40
PENDING = ("Pending", "InProgress", "Delayed", "Cancelling")
SIGNALS_PATH = "$.diag.signals"


def _sns_attributes(kind_path: str | None) -> dict[str, Any]:
    """SNS MessageAttributes of a state-machine notification: the kind, the target and the incident."""
    kind = {"DataType": "String", "StringValue.$": kind_path} if kind_path else {"DataType": "String",
                                                                                 "StringValue": "error"}
    return {"kind": kind, "target": {"DataType": "String", "StringValue.$": "$.target"},
            "incident_id": {"DataType": "String", "StringValue.$": "$.incident_id"}}


def _state_name(kind: str, ref: str) -> str:
    return f"{kind}_{ref}"


def _target(tree: Tree, ref: str) -> str:
    return _state_name("Leaf", ref) if tree.is_leaf(ref) else _state_name("Visit", ref)


def _compare(variable: str, sig_type: str, value: Any) -> dict[str, Any]:
    key = {"bool": "BooleanEquals", "number": "NumericEquals", "string": "StringEquals"}[sig_type]
    return {"Variable": variable, key: value}


def choice_rule(signal: str, op: str, value: Any) -> dict[str, Any]:
    """One node's question as a Choice rule; mirrors gatewatch.tree.engine.OPERATORS."""
    sig_type = SIGNALS[signal].type
    variable = f"{SIGNALS_PATH}.{signal}"
    if op == "eq":
        return _compare(variable, sig_type, value)
    if op == "ne":
        return {"Not": _compare(variable, sig_type, value)}
    if op == "in":
        rules = [_compare(variable, sig_type, v) for v in value]
        return rules[0] if len(rules) == 1 else {"Or": rules}
    numeric = {"lt": "NumericLessThan", "le": "NumericLessThanEquals", "gt": "NumericGreaterThan",
               "ge": "NumericGreaterThanEquals"}
    return {"Variable": variable, numeric[op]: value}


def _lambda_task(function_sub: str, result_selector: dict[str, str], result_path: str, next_state: str,
                 catch_next: str | None, payload: Any = "$") -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": f"${{{function_sub}}}"} | (
            {"Payload.$": payload} if isinstance(payload, str) else {"Payload": payload}
        ),
        "ResultSelector": result_selector,
        "ResultPath": result_path,
        "Retry": [
            {
                "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                                "Lambda.TooManyRequestsException"],
                "IntervalSeconds": 2,
                "MaxAttempts": 3,
                "BackoffRate": 2,
            }
        ],
        "Next": next_state,
    }
    if catch_next:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": catch_next}]
    return state


def _ssm_poll(prefix: str, document_sub: str, parameters: dict[str, Any] | str, timeout_s: int, poll_s: int,
              max_polls: int, on_success: str, on_other: str) -> dict[str, Any]:
    """SendCommand -> Wait -> GetCommandInvocation until a terminal status or ``max_polls``.

    ``InvocationDoesNotExist`` right after SendCommand is normal for a moment: retried with backoff. Every
    terminal status other than Success goes to ``on_other`` with ``$.<prefix>_invocation.Status`` set, so the
    next step can say what happened (Failed, TimedOut, Cancelled, Undeliverable, Terminated, PollTimeout).
    """
    inv = f"$.{prefix}_invocation"
    return {
        f"{prefix}Send": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ssm:sendCommand",
            "Parameters": {
                "DocumentName": f"${{{document_sub}}}",
                "InstanceIds.$": "States.Array($.host.instance_id)",
                **({"Parameters.$": parameters} if isinstance(parameters, str) else {"Parameters": parameters}),
                "TimeoutSeconds": timeout_s,
                "Comment.$": "States.Format('gatewatch {}', $.incident_id)",
            },
            "ResultSelector": {"CommandId.$": "$.Command.CommandId"},
            "ResultPath": f"$.{prefix}_command",
            "Retry": [{"ErrorEquals": ["Ssm.ThrottlingException"], "IntervalSeconds": 2, "MaxAttempts": 3,
                       "BackoffRate": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": f"{inv}", "Next": f"{prefix}Unsent"}],
            "Next": f"{prefix}PollInit",
        },
        f"{prefix}Unsent": {
            "Type": "Pass",
            "Parameters": {"Status": "Undeliverable", "StandardOutputContent": "", "StandardErrorContent.$":
                           f"{inv}.Cause", "ResponseCode": -1},
            "ResultPath": inv,
            "Next": on_other,
        },
        f"{prefix}PollInit": {"Type": "Pass", "Result": {"count": 0}, "ResultPath": f"$.{prefix}_poll",
                              "Next": f"{prefix}Wait"},
        f"{prefix}Wait": {"Type": "Wait", "Seconds": poll_s, "Next": f"{prefix}Get"},
        f"{prefix}Get": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ssm:getCommandInvocation",
            "Parameters": {"CommandId.$": f"$.{prefix}_command.CommandId", "InstanceId.$": "$.host.instance_id"},
            "ResultSelector": {
                "Status.$": "$.Status",
                "StandardOutputContent.$": "$.StandardOutputContent",
                "StandardErrorContent.$": "$.StandardErrorContent",
                "ResponseCode.$": "$.ResponseCode",
            },
            "ResultPath": inv,
            "Retry": [
                {"ErrorEquals": ["Ssm.InvocationDoesNotExistException"], "IntervalSeconds": 1, "MaxAttempts": 5,
                 "BackoffRate": 2},
                {"ErrorEquals": ["Ssm.ThrottlingException"], "IntervalSeconds": 2, "MaxAttempts": 3,
                 "BackoffRate": 2},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": inv, "Next": f"{prefix}Unsent"}],
            "Next": f"{prefix}Status",
        },
        f"{prefix}Status": {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"{inv}.Status", "StringEquals": "Success", "Next": on_success},
                {"Or": [{"Variable": f"{inv}.Status", "StringEquals": s} for s in PENDING],
                 "Next": f"{prefix}Count"},
            ],
            "Default": on_other,
        },
        f"{prefix}Count": {
            "Type": "Pass",
            "Parameters": {"count.$": f"States.MathAdd($.{prefix}_poll.count, 1)"},
            "ResultPath": f"$.{prefix}_poll",
            "Next": f"{prefix}PollLimit",
        },
        f"{prefix}PollLimit": {
            "Type": "Choice",
            "Choices": [{"Variable": f"$.{prefix}_poll.count", "NumericGreaterThanEquals": max_polls,
                         "Next": f"{prefix}PollTimeout"}],
            "Default": f"{prefix}Wait",
        },
        f"{prefix}PollTimeout": {
            "Type": "Pass",
            "Parameters": {"Status": "PollTimeout", "StandardOutputContent": "", "StandardErrorContent":
                           f"no terminal status after {max_polls * poll_s} s", "ResponseCode": -1},
            "ResultPath": inv,
            "Next": on_other,
        },
    }


def _host_by_tags(on_found: str, on_none: str) -> dict[str, Any]:
    """host.instance_tags on AWS: the running instance with those tags (EC2 DescribeInstances, filters made by
    gatewatch.steps.execution_input). Exactly one match -> its id becomes $.host.instance_id and the on-box checks
    run there; none or several -> no on-box facts (as the local SSM runner: several must be told apart by tags),
    with the reason in $.host.resolve. One host is diagnosed per incident, so no SendCommand to every match."""
    return {
        "HostByTags": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ec2:describeInstances",
            "Parameters": {"Filters.$": "$.host.instance_filters", "MaxResults": 5},
            "ResultSelector": {"ids.$": "$.Reservations[*].Instances[*].InstanceId"},
            "ResultPath": "$.host_found",
            "Retry": [{"ErrorEquals": ["Ec2.RequestLimitExceeded", "Ec2.Ec2Exception"], "IntervalSeconds": 2,
                       "MaxAttempts": 2, "BackoffRate": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.host.resolve", "Next": on_none}],
            "Next": "HostByTagsCount",
        },
        "HostByTagsCount": {
            "Type": "Pass",
            "Parameters": {"count.$": "States.ArrayLength($.host_found.ids)", "ids.$": "$.host_found.ids"},
            "ResultPath": "$.host_found",
            "Next": "HostByTagsOne",
        },
        "HostByTagsOne": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.host_found.count", "NumericEquals": 1, "Next": "HostByTagsChosen"}],
            "Default": "HostByTagsNone",
        },
        "HostByTagsChosen": {
            "Type": "Pass",
            "Parameters": {"instance_id.$": "States.ArrayGetItem($.host_found.ids, 0)",
                           "instance_filters.$": "$.host.instance_filters"},
            "ResultPath": "$.host",
            "Next": on_found,
        },
        "HostByTagsNone": {
            "Type": "Pass",
            "Parameters": {"instance_filters.$": "$.host.instance_filters",
                           "resolve.$": "States.Format('{} running instances have these tags (need exactly one): "
                                        "{}', $.host_found.count, $.host_found.ids)"},
            "ResultPath": "$.host",
            "Next": on_none,
        },
    }


def build_definition(tree: Tree) -> dict[str, Any]:
    states: dict[str, Any] = {
        "HasHost": {
            "Type": "Choice",
            "Comment": "On-box checks need an SSM-managed instance; without one the tree works from the outside.",
            "Choices": [{"And": [{"Variable": "$.host.instance_id", "IsPresent": True},
                                 {"Variable": "$.host.instance_id", "IsString": True}],
                         "Next": "OnboxSend"},
                        {"Variable": "$.host.instance_filters", "IsPresent": True, "Next": "HostByTags"}],
            "Default": "Facts",
        },
    }
    states |= _host_by_tags("OnboxSend", "Facts")
    states |= _ssm_poll("Onbox", "OnboxDocumentName", {"Params.$": "States.Array($.onbox_params)"}, 60,
                        POLL_SECONDS, MAX_POLLS, "Facts", "Facts")
    states["Facts"] = _lambda_task(
        "FactsFunctionArn",
        {"facts.$": "$.Payload.facts", "signals.$": "$.Payload.signals"},
        "$.diag",
        "WalkStart",
        "FactsFailed",
    )
    states["FactsFailed"] = {
        "Type": "Pass",
        "Parameters": {"leaf": UNKNOWN_LEAF, "trail": "", "error.$": "$.error.Cause"},
        "ResultPath": "$.decision",
        "Next": "Record",
    }
    states["WalkStart"] = {"Type": "Pass", "Result": {"trail": ""}, "ResultPath": "$.walk",
                           "Next": _target(tree, tree.start)}
    for node_id in tree.order:
        node = tree.nodes[node_id]
        states[_state_name("Visit", node_id)] = {
            "Type": "Pass",
            "Parameters": {"trail.$": f"States.Format('{{}} {{}}', $.walk.trail, '{node_id}')"},
            "ResultPath": "$.walk",
            "Next": _state_name("Ask", node_id),
        }
        states[_state_name("Ask", node_id)] = {
            "Type": "Choice",
            "Comment": node.question,
            "Choices": [choice_rule(node.signal, node.op, node.value) | {"Next": _target(tree, node.yes)}],
            "Default": _target(tree, node.no),
        }
    for leaf_id, leaf in tree.leaves.items():
        states[_state_name("Leaf", leaf_id)] = {
            "Type": "Pass",
            "Parameters": {"leaf": leaf_id, "category": leaf.category, "trail.$": "$.walk.trail"},
            "ResultPath": "$.decision",
            "Next": "Record",
        }
    states["Record"] = _lambda_task(
        "RecordFunctionArn",
        {"verdict.$": "$.Payload.verdict", "notification.$": "$.Payload.notification",
         "remediation_candidate.$": "$.Payload.remediation_candidate"},
        "$.record",
        "RemediationCandidate",
        "NotifyFailure",
    )
    states["RemediationCandidate"] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.record.remediation_candidate", "BooleanEquals": True, "Next": "Guard"}],
        "Default": "Notify",
    }
    states["Guard"] = _lambda_task(
        "GuardFunctionArn",
        {"allowed.$": "$.Payload.allowed", "parameters.$": "$.Payload.parameters",
         "settle_s.$": "$.Payload.settle_s", "decision.$": "$.Payload.decision"},
        "$.guard",
        "GuardAllowed",
        "Notify",
    )
    states["GuardAllowed"] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.guard.allowed", "BooleanEquals": True, "Next": "FixSend"}],
        "Default": "RecordOutcome",
    }
    # the GuardFunction returns the remediation document's parameters as SSM wants them: {Name: [value]}
    states |= _ssm_poll("Fix", "RemediationDocumentName", "$.guard.parameters", 120, REMEDIATION_POLL_SECONDS,
                        MAX_REMEDIATION_POLLS, "Settle", "RecordOutcome")
    states["Settle"] = {"Type": "Wait", "SecondsPath": "$.guard.settle_s", "Next": "VerifySend"}
    # verification: the on-box checks again (their local health check) and then the outside probe
    states |= _ssm_poll("Verify", "OnboxDocumentName", {"Params.$": "States.Array($.onbox_params)"}, 60,
                        POLL_SECONDS, MAX_POLLS, "Reprobe", "Reprobe")
    states["Reprobe"] = _lambda_task(
        "ReprobeFunctionArn", {"probe.$": "$.Payload.probe", "health.$": "$.Payload.health"}, "$.reprobe",
        "RecordOutcome", "RecordOutcome",
    )
    states["RecordOutcome"] = _lambda_task(
        "RecordFunctionArn",
        {"verdict.$": "$.Payload.verdict", "notification.$": "$.Payload.notification",
         "remediation_candidate.$": "$.Payload.remediation_candidate"},
        "$.record",
        "Notify",
        "NotifyFailure",
        payload={"mode": "outcome", "state.$": "$"},
    )
    states["Notify"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": "${TopicArn}",
            "Subject.$": "$.record.notification.subject",
            "Message.$": "$.record.notification.text",
            # the NotifyFunction routes on these (kind, target, incident) and reads the verdict from the table
            "MessageAttributes": _sns_attributes("$.record.notification.kind"),
        },
        "ResultPath": "$.notified",
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}],
        # a verdict that cannot be published (a rejected message, a topic error) still tells someone: the fixed
        # fallback publish, then the execution fails, which DiagnosisFailedAlarm watches
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NotifyFailure"}],
        "Next": "Done",
    }
    states["NotifyFailure"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": "${TopicArn}",
            "Subject.$": "States.Format('gatewatch: {} is down; diagnosis failed', $.target)",
            "Message.$": "States.Format('gatewatch could not finish diagnosing incident {} of {}. What is known: "
                         "the outside probe failed ({}). Error: {}', $.incident_id, $.target, "
                         "$.outside.probe.reason, $.error.Cause)",
            "MessageAttributes": _sns_attributes(None),
        },
        "ResultPath": "$.notified",
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}],
        "Next": "DiagnosisFailed",
    }
    states["Done"] = {"Type": "Succeed"}
    states["DiagnosisFailed"] = {"Type": "Fail", "Error": "DiagnosisFailed",
                                 "Cause": "see the notification and the execution history"}
    return {
        "Comment": "gatewatch diagnosis: on-box checks over SSM, the decision tree (generated from "
                   "gatewatch/tree/tree.yaml by `gatewatch tree --format asl`), record, remediate, notify.",
        "StartAt": "HasHost",
        "States": states,
    }


def to_asl(tree: Tree) -> str:
    return json.dumps(build_definition(tree), indent=2, sort_keys=False) + "\n"


def trail_nodes(trail: str) -> list[str]:
    """``$.walk.trail`` ("  a b c") back to node ids."""
    return [part for part in trail.split() if part]
