"""The optional StatusPageFunction in moto: the real handler reads the targets parameter and the table and writes
the three files to a bucket set up as the template sets it up (private, encrypted); nothing private is in them.
The template keeps it off by default and grants the function read on the table and PutObject on its bucket only."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from gatewatch.aws import runtime
from gatewatch.clock import iso
from gatewatch.store import ActionRecord, Incident, ProbeRecord, TargetState
from gatewatch.tree import diagnose
from tests.sfn_harness import lambda_context
from tests.webstore import facts_for, private_strings

TARGETS = """
targets:
  - name: api
    display_name: Payments API
    url: https://backend.example.com/api/v1/auth/demo-login
  - name: blog
    url: https://blog.example.com/
"""
# Its own name: Powertools caches parameters by name for 5 minutes across tests (runtime.reset does not clear it).
PARAMETER = "/gatewatch/status-page-test/targets"
RESOURCES = ("StatusPageBucket", "StatusPageBucketPolicy", "StatusPageFunction")


@pytest.fixture
def bucket(aws, template) -> str:
    s3 = aws.client("s3")
    props = template["Resources"]["StatusPageBucket"]["Properties"]
    s3.create_bucket(Bucket="gatewatch-status")
    s3.put_public_access_block(Bucket="gatewatch-status",
                               PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    s3.put_bucket_encryption(Bucket="gatewatch-status",
                             ServerSideEncryptionConfiguration={"Rules": [  # CloudFormation's names -> the API's
                                 {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                                 for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]})
    return "gatewatch-status"


def test_status_page_function_writes_the_public_site_to_the_private_bucket(aws, table, dynamo_store, bucket,
                                                                           monkeypatch):
    now = datetime.now(UTC)
    aws.client("ssm").put_parameter(Name=PARAMETER, Value=TARGETS, Type="String")
    for i in range(6):
        at = iso(now - timedelta(minutes=10 * (6 - i)))
        dynamo_store.record_probe(ProbeRecord("api", at, "down" if i >= 4 else "up", None, 20.0, {}))
        dynamo_store.record_probe(ProbeRecord("blog", at, "up", None, 30.0, {}))
    facts = facts_for("backend_stopped", "api")
    verdict = diagnose(facts)
    opened = iso(now - timedelta(minutes=20))
    dynamo_store.create_incident(Incident("api-20260101T000000Z", "api", opened, category=verdict["category"],
                                          title=verdict["title"], verdict=verdict, facts=facts,
                                          outside=facts["outside"]))
    dynamo_store.record_action(ActionRecord("api-20260101T000000Z", "api", "restart_backend", "refused", "mode",
                                            opened, {"reason": "remediation.mode is off"}))
    dynamo_store.put_state(TargetState("api", "DOWN", 2, 0, "api-20260101T000000Z", opened), 0)
    dynamo_store.put_state(TargetState("blog"), 0)

    monkeypatch.setenv("TABLE_NAME", table)
    monkeypatch.setenv("STATUS_BUCKET", bucket)
    monkeypatch.setenv("TARGETS_PARAMETER", PARAMETER)
    runtime.reset()
    try:
        handler = importlib.import_module("functions.status_page.app").handler
        out = handler({}, lambda_context("status-page"))
    finally:
        runtime.reset()
    assert out["state"] == "partial outage" and out["targets"] == 2 and out["incidents"] == 1

    s3 = aws.client("s3")
    objects = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert objects == {"index.html", "status.css", "status.json"}
    html = s3.get_object(Bucket=bucket, Key="index.html")
    assert html["ContentType"] == "text/html; charset=utf-8"
    doc = json.loads(s3.get_object(Bucket=bucket, Key="status.json")["Body"].read())
    assert [(t["name"], t["state"]) for t in doc["targets"]] == [("Payments API", "down"), ("blog", "up")]
    assert doc["incidents"][0]["title"] == "Payments API: Service unavailable"
    secrets = private_strings(dynamo_store, {"incidents": {"api": "api-20260101T000000Z"}}) | {"backend.example"}
    for key in objects:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert sorted(s for s in secrets if s in body) == [], key
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())


def test_template_keeps_the_status_page_off_by_default_and_least_privileged(template):
    assert template["Parameters"]["StatusPage"]["Default"] == "false"
    for name in RESOURCES:
        assert template["Resources"][name]["Condition"] == "StatusPageEnabled", name
    assert template["Outputs"]["StatusPageBucketName"]["Condition"] == "StatusPageEnabled"
    bucket = template["Resources"]["StatusPageBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policies = template["Resources"]["StatusPageFunction"]["Properties"]["Policies"]
    actions = set()
    for policy in policies:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        if "DynamoDBReadPolicy" in policy:  # the SAM template's read-only grant (no writes)
            actions |= {"dynamodb:GetItem", "dynamodb:Query"}
    # read the targets and the table, write three objects: nothing else (no table writes, no bucket reads/deletes)
    # (s3:GetObject: the targets object in TargetsBucket only, see test_targets_store.py)
    assert actions == {"s3:PutObject", "ssm:GetParameter", "kms:Decrypt", "dynamodb:GetItem", "dynamodb:Query",
                       "s3:GetObject"}
    deny = template["Resources"]["StatusPageBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
