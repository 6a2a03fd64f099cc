"""Finding 5 (AWS side): whoever can write the targets store chooses what runs as root on every tagged host, so
no gatewatch function may write it, and it is encrypted with the stack's own key (the functions decrypt it only
through SSM). Read from infra/template.yaml, as deployed."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from gatewatch.aws.template_schema import load_template

TARGETS_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${TargetsParameterName}"
WRITES = ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:LabelParameterVersion",
          "ssm:UnlabelParameterVersion", "ssm:AddTagsToResource", "ssm:RemoveTagsFromResource",
          "kms:Encrypt", "kms:ReEncryptTo", "kms:GenerateDataKey")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(resource: Any) -> str:
    if isinstance(resource, dict):
        inner = resource.get("Fn::Sub") or resource.get("Fn::GetAtt") or resource.get("Ref") or resource
        return str(inner[0] if isinstance(inner, list) else inner)
    return str(resource)


def _function_statements(template) -> list[tuple[str, Any, dict[str, Any]]]:
    """(function, policy item, statement) for every inline statement; policy templates as (function, name, {})."""
    out = []
    for name, res in template["Resources"].items():
        if res["Type"] not in ("AWS::Serverless::Function", "AWS::IAM::Role", "AWS::IAM::Policy"):
            continue
        props = res.get("Properties", {})
        policies = _list(props.get("Policies", []))
        if res["Type"] == "AWS::IAM::Policy":
            policies = [props.get("PolicyDocument", {})]
        for policy in policies:
            doc = policy.get("PolicyDocument", policy) if isinstance(policy, dict) else {}
            if isinstance(policy, dict) and "Statement" not in doc:
                out += [(name, key, {}) for key in policy]  # a SAM policy template
                continue
            if isinstance(policy, str):
                out.append((name, policy, {}))
                continue
            out += [(name, None, s) for s in _list(doc.get("Statement", []))]
    return out


def test_no_function_can_write_the_targets_parameter(template):
    offenders = []
    for function, template_name, statement in _function_statements(template):
        if template_name and "SSMParameter" in str(template_name) and "Read" not in str(template_name):
            offenders.append((function, template_name))
        if statement.get("Effect") != "Allow":
            continue
        actions = _list(statement.get("Action", []))
        resources = [_text(r) for r in _list(statement.get("Resource", []))]
        writes = [a for a in actions for w in WRITES if fnmatch.fnmatchcase(w.lower(), str(a).lower())]
        if writes and any(r in ("*", TARGETS_ARN) or "parameter" in r for r in resources):
            offenders.append((function, statement.get("Sid"), writes))
    assert offenders == []


def test_the_targets_parameter_is_decrypted_with_the_stack_key_through_ssm_only(template):
    key = template["Resources"]["TopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    readers = {}
    for function, _, statement in _function_statements(template):
        if statement.get("Sid") == "ReadTargets":
            assert _list(statement["Action"]) == ["ssm:GetParameter"]
            readers.setdefault(function, []).append("read")
        if statement.get("Sid") == "DecryptTargets":
            assert statement["Action"] == "kms:Decrypt"
            assert statement["Resource"] == {"Fn::GetAtt": ["TopicKey", "Arn"]}
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert via == [{"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"},  # the legacy SecureString parameter
                           {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}]  # the TargetsBucket object (awscfg)
            readers.setdefault(function, []).append("decrypt")
    assert readers and all(sorted(v) == ["decrypt", "read"] for v in readers.values()), readers
    outputs = template["Outputs"]
    assert outputs["TargetsKeyArn"]["Value"] == {"Fn::GetAtt": ["TopicKey", "Arn"]}
