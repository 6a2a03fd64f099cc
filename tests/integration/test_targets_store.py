"""The targets file in S3 (moto): `gatewatch config push`, the functions' loader, a bad push rejected loudly.

The bucket is made like the template's TargetsBucket (versioned, SSE-KMS default encryption with a customer key).
"""

from __future__ import annotations

import json
import time

import pytest

from gatewatch.aws import runtime
from gatewatch.aws.targets_store import REJECTED_METRIC, TargetsSource
from gatewatch.cli import main
from gatewatch.config import ConfigError

BUCKET, KEY = "gw-targets", "targets.yaml"


def targets_yaml(n: int, prefix: str = "t") -> str:
    rows = [f"""  - name: {prefix}{i:04d}
    url: https://app{i}.example.com/health
    expect:
      status: [200, 204]
      body_contains: ok
      max_latency_ms: 1500
    headers:
      User-Agent: gatewatch
      Authorization: ${{GATEWATCH_API_TOKEN}}
    host:
      instance_id: i-{i:017x}
      backend_port: 8000
""" for i in range(n)]
    return "targets:\n" + "".join(rows)


@pytest.fixture
def bucket(aws, monkeypatch):
    key_id = aws.client("kms").create_key(Description="stack key")["KeyMetadata"]["Arn"]
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]})
    monkeypatch.setenv("GATEWATCH_API_TOKEN", "s3cret")
    monkeypatch.setenv("TARGETS_BUCKET", BUCKET)
    monkeypatch.setenv("TARGETS_KEY", KEY)
    runtime.reset()
    yield s3
    runtime.reset()


def push_file(tmp_path, text: str, *extra: str) -> int:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return main(["config", "push", str(path), "--bucket", BUCKET, *extra])


def test_push_uploads_a_validated_versioned_encrypted_object_and_the_functions_load_it(bucket, tmp_path, capsys):
    assert push_file(tmp_path, targets_yaml(3)) == 0
    out = capsys.readouterr().out
    assert f"to s3://{BUCKET}/{KEY}: 3 target(s)" in out and "version " in out
    head = bucket.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ServerSideEncryption"] == "aws:kms"
    config = runtime.load_targets()
    assert [t.name for t in config.targets] == ["t0000", "t0001", "t0002"]
    assert config.targets[0].headers["Authorization"] == "s3cret"  # ${VARS} resolved in the function
    assert push_file(tmp_path, targets_yaml(4)) == 0
    versions = bucket.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]
    assert len(versions) == 2  # every push is kept


def test_push_refuses_an_invalid_file_and_uploads_nothing(bucket, tmp_path, capsys):
    assert push_file(tmp_path, "targets:\n  - name: x\n    url: ftp://nope\n") == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "targets.yaml") in err and "url" in err
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)


def test_push_to_a_missing_bucket_is_one_line_with_the_fix(aws, tmp_path, capsys):
    assert push_file(tmp_path, targets_yaml(1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gatewatch config push: error: bucket {BUCKET} not found; use the TargetsBucketName output of "
                   "your stack (and its region: --region)"]


def test_push_without_a_bucket_says_how_to_name_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GATEWATCH_TARGETS_BUCKET", raising=False)
    path = tmp_path / "t.yaml"
    path.write_text(targets_yaml(1))
    assert main(["config", "push", str(path)]) == 2
    assert "no bucket" in capsys.readouterr().err


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bad_push_is_rejected_loudly_and_the_last_good_config_stays(bucket, capsys, caplog):
    bucket.put_object(Bucket=BUCKET, Key=KEY, Body=targets_yaml(2).encode())
    clock = Clock()
    source = TargetsSource(BUCKET, KEY, bucket, max_age_s=300, environ={"GATEWATCH_API_TOKEN": "x"}, clock=clock)
    good = source.get()
    assert len(good.targets) == 2
    bucket.put_object(Bucket=BUCKET, Key=KEY, Body=b"targets:\n  - name: broken\n")  # pushed around the CLI
    clock.now += 301
    with caplog.at_level("ERROR", logger="gatewatch.targets"):
        assert source.get() is good
    assert "rejected, keeping ETag" in caplog.text and "broken" not in [t.name for t in good.targets]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if REJECTED_METRIC in line]
    assert len(emf) == 1 and emf[0][REJECTED_METRIC] == 1
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": REJECTED_METRIC, "Unit": "Count"}]
    parses = source.parses
    clock.now += 301  # the same bad object: not downloaded nor parsed again, but still reported
    assert source.get() is good and source.parses == parses
    assert len([line for line in capsys.readouterr().out.splitlines() if REJECTED_METRIC in line]) == 1
    bucket.put_object(Bucket=BUCKET, Key=KEY, Body=targets_yaml(5).encode())  # a fixed push is taken up
    clock.now += 301
    assert len(source.get().targets) == 5


def test_a_cold_start_on_a_bad_object_fails_rather_than_probe_nothing(bucket):
    bucket.put_object(Bucket=BUCKET, Key=KEY, Body=b"targets: []\nbogus: 1\n")
    with pytest.raises(ConfigError):
        TargetsSource(BUCKET, KEY, bucket, environ={}).get()


def test_parsed_once_per_container_and_once_per_etag(bucket, monkeypatch):
    bucket.put_object(Bucket=BUCKET, Key=KEY, Body=targets_yaml(3).encode())
    calls = []
    real = bucket.get_object
    source = runtime.targets_source(BUCKET, KEY)
    counting = type("Counting", (), {"get_object": lambda _self, **kw: calls.append(kw) or real(**kw)})
    monkeypatch.setattr(source, "client", counting())
    first = runtime.load_targets()
    assert all(runtime.load_targets() is first for _ in range(50))  # 50 rounds inside max_age: no S3 call
    assert len(calls) == 1 and source.parses == 1
    source.checked_at -= runtime.CONFIG_MAX_AGE_S + 1  # refresh time: a conditional GET, 304, no parse
    assert runtime.load_targets() is first
    assert len(calls) == 2 and "IfNoneMatch" in calls[1] and source.parses == 1


def test_a_thousand_targets_fit_and_load_fast(bucket, tmp_path, capsys):
    text = targets_yaml(1000)
    assert push_file(tmp_path, text) == 0
    size = bucket.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"]
    assert size > 8192 * 20  # far beyond the SSM parameter's 8 KB
    started = time.perf_counter()
    config = runtime.load_targets()
    took = time.perf_counter() - started
    assert len(config.targets) == 1000
    print(f"1,000 targets: {size} B, first load {took:.2f} s", file=__import__("sys").stderr)


def test_the_template_encrypts_the_targets_bucket_with_the_stack_key_and_no_role_can_write_it(template):
    from tests.integration.iam import ROLE_CODE_PATHS, role_statements

    bucket = template["Resources"]["TargetsBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["TopicKey", "Arn"]}}
    assert all(props["PublicAccessBlockConfiguration"].values())
    readers = set()
    for owner in ROLE_CODE_PATHS:
        for statement in role_statements(owner):
            if "TargetsBucket" not in json.dumps(statement["Resource"]):
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert actions == ["s3:GetObject"], (owner, actions)
            readers.add(owner)
    assert {"ProbeFunction", "GuardFunction", "RecordFunction", "ReprobeFunction", "NotifyFunction",
            "StatusPageFunction"} <= readers
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["TARGETS_BUCKET"] == {"Ref": "TargetsBucket"} and env["TARGETS_KEY"] == "targets.yaml"
