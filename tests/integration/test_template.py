"""infra/template.yaml keeps the promises the issue asks for; cfn-lint, sam validate and checkov (make infra-lint)
check the syntax and the usual security rules, these tests check what is specific to gatewatch."""

from __future__ import annotations

import json
import re

import pytest

from gatewatch.aws.template_schema import REPO_ROOT

FUNCTIONS = {"ProbeFunction": "probe", "FactsFunction": "facts", "RecordFunction": "record",
             "GuardFunction": "guard", "ReprobeFunction": "reprobe"}
# Read-only or resource-less APIs where IAM supports no resource scoping; each is justified in the template.
STAR_RESOURCE_ACTIONS = {
    "ssm:GetCommandInvocation", "ec2:DescribeInstances",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
    "xray:GetSamplingTargets", "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def resources(template, type_=None):
    return {k: v for k, v in template["Resources"].items() if type_ is None or v["Type"] == type_}


def statements(template):
    """Every IAM statement: inline function/state-machine policies and managed policies (JSON strings too)."""
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties", {})
        for policy in props.get("Policies", []) or []:
            if isinstance(policy, dict) and "Statement" in policy:
                for st in policy["Statement"]:
                    yield logical_id, st
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            doc = props["PolicyDocument"]
            if isinstance(doc, dict) and "Fn::Sub" in doc:
                doc = json.loads(re.sub(r"\$\{[^}]+\}", "X", doc["Fn::Sub"]))
            for st in doc["Statement"]:
                yield logical_id, st


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_parameters_and_their_defaults(template):
    p = template["Parameters"]
    assert set(p) >= {"AlertEmail", "ProbeSchedule", "TargetsParameterName", "RemediationModeCeiling",
                      "InstanceTagKey", "InstanceTagValue", "LogRetentionDays"}
    assert p["ProbeSchedule"]["Default"] == "rate(1 minute)"
    assert p["RemediationModeCeiling"]["AllowedValues"] == ["off", "suggest", "auto"]
    assert p["RemediationModeCeiling"]["Default"] == "suggest"
    assert (p["InstanceTagKey"]["Default"], p["InstanceTagValue"]["Default"]) == ("gatewatch", "enabled")


def test_globals_runtime_architecture_tracing_layer_and_environment(template):
    fn = template["Globals"]["Function"]
    assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"]
    # no handler adds segments: Active tracing would bill a trace per invocation to show only Lambda's timeline
    assert fn["Tracing"] == {"Ref": "FunctionTracing"}
    assert template["Parameters"]["FunctionTracing"]["Default"] == "PassThrough"
    assert fn["Layers"] == [{"Ref": "GatewatchLayer"}]
    env = fn["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "gatewatch" and env["POWERTOOLS_METRICS_NAMESPACE"] == "Gatewatch"
    assert {"TABLE_NAME", "TOPIC_ARN", "TARGETS_PARAMETER", "REMEDIATION_CEILING"} <= set(env)
    layer = template["Resources"]["GatewatchLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert (REPO_ROOT / "layers" / "gatewatch" / "Makefile").read_text().count("build-GatewatchLayer:") == 1
    assert (REPO_ROOT / "infra" / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()


@pytest.mark.parametrize("logical_id,folder", FUNCTIONS.items())
def test_each_function_points_at_its_handler(template, logical_id, folder):
    props = template["Resources"][logical_id]["Properties"]
    assert props["CodeUri"] == f"../functions/{folder}/"
    app = REPO_ROOT / "infra" / props["CodeUri"] / "app.py"
    assert app.is_file() and re.search(r"^def handler\(", app.read_text(), re.M)


def test_the_prober_is_scheduled_alone_with_a_dead_letter_queue(template):
    props = template["Resources"]["ProbeFunction"]["Properties"]
    assert props["Events"]["Schedule"]["Properties"]["Schedule"] == {"Ref": "ProbeSchedule"}
    # no reservation unless asked for (accounts with a low concurrency quota reject one)
    assert props["ReservedConcurrentExecutions"] == {"Fn::If": ["ProbeConcurrencyReserved",
                                                                {"Ref": "ProbeReservedConcurrency"},
                                                                {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["ProbeReservedConcurrency"]["Default"] == -1
    assert props["DeadLetterQueue"]["TargetArn"] == {"Fn::GetAtt": ["ProbeDeadLetterQueue", "Arn"]}
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert template["Resources"]["ProbeDeadLetterQueue"]["Properties"]["KmsMasterKeyId"]


def test_state_machine_substitutions_cover_every_placeholder_in_the_definition(template):
    props = template["Resources"]["DiagnoseStateMachine"]["Properties"]
    asl = REPO_ROOT / "infra" / props["DefinitionUri"]
    assert asl.is_file()
    used = set(re.findall(r"\$\{(\w+)\}", asl.read_text()))
    given = set(props["DefinitionSubstitutions"])
    assert used <= given, f"placeholders without a substitution: {used - given}"
    assert given == {"OnboxDocumentName", "RemediationDocumentName", "FactsFunctionArn", "RecordFunctionArn",
                     "GuardFunctionArn", "ReprobeFunctionArn", "TopicArn"}
    assert props["Logging"]["Level"] == "ALL" and props["Logging"]["IncludeExecutionData"] is True
    assert props["Tracing"] == {"Enabled": True}
    [invoke] = [st for p in props["Policies"] if isinstance(p, dict) for st in p.get("Statement", [])
                if st.get("Action") == "lambda:InvokeFunction"]
    invoked = {r["Fn::GetAtt"][0] for r in invoke["Resource"]}
    assert invoked == set(FUNCTIONS) - {"ProbeFunction", "StatusPageFunction"}


def test_no_wildcard_actions_and_star_resources_only_where_iam_has_no_resource_type(template):
    seen = 0
    for logical_id, st in statements(template):
        seen += 1
        for action in as_list(st["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{logical_id}: wildcard action {action}"
        if "*" in as_list(st.get("Resource")):
            assert set(as_list(st["Action"])) <= STAR_RESOURCE_ACTIONS, f"{logical_id}: {st['Action']} on *"
    assert seen >= 8


def test_send_command_is_limited_to_our_documents_and_tagged_instances(template):
    doc = template["Resources"]["SendCommandPolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"]
    policy = json.loads(doc)
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    assert all(st["Action"] == "ssm:SendCommand" for st in policy["Statement"])
    assert [r.rsplit("/", 1)[1] for r in by_sid["OnlyOurDocuments"]["Resource"]] == [
        "${OnboxDocument}", "${RemediationDocument}"]
    assert "Condition" not in by_sid["OnlyOurDocuments"]
    assert by_sid["OnlyTaggedInstances"]["Condition"] == {
        "StringEquals": {"ssm:resourceTag/${InstanceTagKey}": "${InstanceTagValue}"}}
    machine_policies = template["Resources"]["DiagnoseStateMachine"]["Properties"]["Policies"]
    assert {"Ref": "SendCommandPolicy"} in machine_policies


def test_table_topic_and_documents(template):
    table = template["Resources"]["GatewatchTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # PITR is a cost switch (PointInTimeRecovery parameter, off by default; benchmarks/cost_model.py prices it)
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] == {
        "Fn::If": ["PitrEnabled", True, False]}
    assert table["SSESpecification"]["SSEEnabled"] is True
    topic = template["Resources"]["IncidentTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "TopicKey"}
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlertEmail"}}]
    for doc in ("OnboxDocument", "RemediationDocument"):
        assert template["Resources"][doc]["Properties"]["DocumentType"] == "Command"


def test_alarms_watch_the_metrics_the_prober_emits(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    down, silent = alarms["TargetsDownAlarm"]["Properties"], alarms["ProberSilentAlarm"]["Properties"]
    assert (down["Namespace"], down["MetricName"], down["Threshold"]) == ("Gatewatch", "TargetsDown", 1)
    assert down["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # every round emits TargetsDown: its sample count is the heartbeat (no separate Heartbeat metric to pay for)
    assert (silent["MetricName"], silent["Statistic"], silent["TreatMissingData"]) == (
        "TargetsDown", "SampleCount", "breaching")
    for props in (down, silent):
        assert props["Dimensions"] == [{"Name": "service", "Value": "gatewatch"}]
        assert props["AlarmActions"] == [{"Ref": "IncidentTopic"}]
    dlq = alarms["ProbeDeadLettersAlarm"]["Properties"]
    assert (dlq["MetricName"], dlq["Statistic"]) == ("NumberOfMessagesSent", "Sum")  # new messages, not a backlog
    failed = {m["MetricStat"]["Metric"]["MetricName"] for m in alarms["DiagnosisFailedAlarm"]["Properties"]["Metrics"]
              if "MetricStat" in m}
    assert failed == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for keep in ("GatewatchTable", "TopicKey"):
        assert template["Resources"][keep]["DeletionPolicy"] == "Retain"
    assert template["Resources"]["GatewatchTable"]["Properties"]["DeletionProtectionEnabled"] is True
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in ("ProbeSuccess", "Latency", "OpenIncidents", "TargetsDown"):
        assert metric in body
    json.loads(re.sub(r"\$\{[^}]+\}", "X", body))  # the dashboard body is valid JSON


def test_every_checkov_skip_says_why(template):
    skips = [(k, s) for k, r in template["Resources"].items()
             for s in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]) and len(skip.get("comment", "")) > 20, logical_id


def test_outputs(template):
    assert {"TableName", "TopicArn", "StateMachineArn", "OnboxDocumentName", "RemediationDocumentName"} <= set(
        template["Outputs"])
