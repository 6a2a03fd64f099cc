"""Targets whose host is named by ``instance_tags``, on AWS (moto, IAM enforced): the targets file comes from the
S3 bucket, the ProbeFunction opens an incident, the state machine finds the one running instance with those tags
(HostByTags: ec2:DescribeInstances) and runs the on-box document there; several matches -> no on-box run."""

from __future__ import annotations

import json
from types import SimpleNamespace

from gatewatch.aws import runtime
from tests.integration import test_aws_pipeline
from tests.integration.conftest import ONBOX_DOCUMENT
from tests.servers import Reply, http_server
from tests.sfn_harness import lambda_context

BUCKET = "gw-targets"
deployed = test_aws_pipeline.deployed  # the stack, IAM enforced (fixture)
wait_for_execution = test_aws_pipeline.wait_for_execution


def tagged_instance(ec2, **tags: str) -> str:
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=spec)["Instances"][0]["InstanceId"]


def push_targets(aws, monkeypatch, url: str, backend_port: int) -> None:
    s3 = aws.client("s3")
    key = aws.client("kms").create_key(Description="stack key")["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
    s3.put_object(Bucket=BUCKET, Key="targets.yaml", Body=f"""
targets:
  - name: api
    url: {url}
    timeout_s: 3
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
    host:
      instance_tags: {{role: api, env: test}}
      service: gatewatch-test-backend
      service_manager: command
      process_match: gatewatch-test-no-such-process
      backend_port: {backend_port}
      nginx_port: 1
      nginx_error_log: /nonexistent/gatewatch/error.log
      log_roots: [/nonexistent]
""".encode())
    monkeypatch.setenv("TARGETS_BUCKET", BUCKET)
    monkeypatch.setenv("TARGETS_KEY", "targets.yaml")
    runtime.reset()


def probe_round(deployed, aws, monkeypatch):
    probe = SimpleNamespace(handler=deployed.handler("probe"))
    with http_server({"/": Reply(502, "<html>502 Bad Gateway</html>", {"Server": "nginx"})}) as site:
        push_targets(aws, monkeypatch, site.url("/"), site.port)
        result = probe.handler({}, lambda_context("probe"))
        desc = wait_for_execution(deployed.sfn, deployed.machine)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [opened] = [e for e in result["events"] if e["event"] == "opened"]
    return runtime.store().get_incident(opened["incident_id"])


def test_the_one_instance_with_the_tags_gets_the_onbox_checks(deployed, aws, monkeypatch):
    ec2 = aws.client("ec2")
    tagged_instance(ec2, role="web", env="test")  # another service's host: not chosen
    chosen = tagged_instance(ec2, role="api", env="test")
    deployed.executor.add_instance(chosen)
    incident = probe_round(deployed, aws, monkeypatch)
    [run] = [r for r in deployed.executor.runs if r.document == ONBOX_DOCUMENT]
    assert run.instance_id == chosen and run.invocation["Status"] == "Success"
    assert json.loads(run.invocation["StandardOutputContent"])["schema"] == 1
    assert incident.facts["onbox"]["schema"] == 1 and incident.verdict


def test_tags_matching_several_instances_run_nothing_on_any_of_them(deployed, aws, monkeypatch):
    ec2 = aws.client("ec2")
    for _ in range(2):
        deployed.executor.add_instance(tagged_instance(ec2, role="api", env="test"))
    incident = probe_round(deployed, aws, monkeypatch)
    assert not [r for r in deployed.executor.runs if r.document == ONBOX_DOCUMENT]
    assert incident.facts["onbox"] is None and incident.verdict  # diagnosed from the outside only
