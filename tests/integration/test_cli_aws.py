"""The CLI against AWS with the user's credentials: moto for the APIs, env for what is missing.

Every AWS problem a newcomer meets (no region, no credentials, no table) is one line with its fix and exit 2.
"""

from __future__ import annotations

import json

import pytest

from gatewatch.cli import main
from gatewatch.store import ActionRecord, Incident

INSTANCE = "i-0123456789abcdef0"


@pytest.fixture
def bare_aws_env(monkeypatch, tmp_path):
    """No AWS configuration at all, no way to reach the instance metadata service, and nothing outside loopback
    even if a credential leaked in (a fresh boto3 default session; an endpoint on a closed loopback port)."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("argv", [["incidents", "--table", "gw"], ["history", "--table", "gw"],
                                  ["remediation", "audit", "x", "--table", "gw"]])
def test_no_region_is_one_line_with_the_fix(argv, bare_aws_env, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("gatewatch: error: no AWS region; set AWS_REGION (or AWS_DEFAULT_REGION, or region in your AWS "
                   "profile), or pass --region\n")


def test_no_credentials_is_one_line_with_the_fix(bare_aws_env, capsys):
    assert main(["incidents", "--table", "gw", "--region", "eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatewatch: error: no AWS credentials found; run `aws configure`") and err.count("\n") == 1


def test_missing_table_is_one_line_with_the_fix(aws, capsys):
    assert main(["incidents", "--table", "nope"]) == 2
    assert capsys.readouterr().err == (
        "gatewatch: error: table nope not found in us-east-1; use the TableName output of your stack "
        "(and its region: --region)\n")


def test_incidents_show_and_remediation_audit_read_the_table(aws, table, dynamo_store, capsys):
    dynamo_store.create_incident(Incident(id="api-1", target="api", opened_at="2026-11-28T19:00:00Z",
                                          category="backend_down", title="api: the backend is down",
                                          verdict={"category": "backend_down", "confidence": "high",
                                                   "title": "the backend is down", "explanation": "x",
                                                   "path": [{"node": "service_up", "answer": "no"}]}))
    dynamo_store.record_action(ActionRecord(incident_id="api-1", target="api", action="restart_backend",
                                            decision="refused", guard="cooldown", at="2026-11-28T19:00:01Z"))
    assert main(["incidents", "--table", table, "--open"]) == 1
    assert capsys.readouterr().out.startswith("api-1")
    assert main(["incidents", "show", "api-1", "--table", table]) == 0
    out = capsys.readouterr().out
    assert "verdict:    backend_down (high confidence)" in out
    assert "audit:      2026-11-28T19:00:01Z refused restart_backend [cooldown]" in out
    assert main(["remediation", "audit", "api-1", "--table", table, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["decision"], r["guard"]) for r in records] == [("restart_backend", "refused", "cooldown")]


def test_check_ssm_runs_the_onbox_checks_on_the_instance(aws, ssm_executor, tmp_path, capsys):
    ssm = aws.client("ssm")
    ssm_executor.add_instance(INSTANCE)
    onbox, _ = ssm_executor.create_gatewatch_documents(ssm)
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""
targets:
  - name: api
    url: https://api.example.test/
    host: {{instance_id: {INSTANCE}, service: api, service_manager: supervisor, backend_port: 1, nginx_port: 1,
            nginx_error_log: /nonexistent/gatewatch/error.log, log_roots: [/nonexistent]}}
""")
    code = main(["check", "--config", str(cfg), "--target", "api", "--ssm", "--document", onbox, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # nothing listens on port 1: the checks ran on the "instance" and found it down
    assert report["schema"] == 1 and report["port"]["value"]["listening"] is False
    assert [r.instance_id for r in ssm_executor.runs] == [INSTANCE]
