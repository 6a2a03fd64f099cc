"""IAM from the template, enforced by moto: every handler calls AWS with credentials of its own role.

* ``expanded_template()``: infra/template.yaml through the SAM translator (offline, fake region and account), so
  the roles are exactly what CloudFormation would create, policy templates expanded.
* ``role_statements(logical_id)``: the Allow statements of a function's or the state machine's role (inline
  policies plus the template's own managed policies; AWS managed policies such as AWSLambdaBasicExecutionRole
  are logs/X-Ray only and not used by our code).
* ``IamEnforcement``: creates each role in moto with the template's actions, assumes it through STS, and switches
  moto's IAM enforcement on. Handlers dispatched through ``lambda_dispatch`` and the probe run with their role's
  temporary credentials (a thread-local boto3 default session); the state machine's own service calls (Lambda
  invoke, SSM, SNS) run with the state machine role's. The harness's own calls (its fake keys) stay
  unrestricted. Every authorised action is recorded per role.

moto checks the Action element only: it evaluates requests against Resource ``*`` and cannot evaluate our
Conditions (an Allow with a Condition becomes a Deny in moto), so the roles created here keep each statement's
actions with Resource ``*`` and no Condition. Resource scoping is checked statically by test_iam.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import defaultdict
from functools import lru_cache
from typing import Any

import boto3

from gatewatch.aws.template_schema import REPO_ROOT, load_template

REGION, ACCOUNT = "us-east-1", "123456789012"
HARNESS_KEYS = ("testing", "FOOBARKEY")  # the fixtures' fake key, and the one mock_aws substitutes for it
AWS_MANAGED = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
}


class _PolicyLoader:
    def load(self) -> dict[str, str]:
        return dict(AWS_MANAGED)


@lru_cache(maxsize=1)
def expanded_template() -> dict[str, Any]:
    """The SAM template as plain CloudFormation (Transform applied offline)."""
    from samtranslator.translator.transform import transform

    template = load_template()
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = "s3://gatewatch-offline/code.zip"
        if "DefinitionUri" in props:
            props["Definition"] = json.loads((REPO_ROOT / "infra" / props.pop("DefinitionUri")).read_text())
    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION
    try:
        return transform(template, {}, _PolicyLoader())
    finally:
        if old is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = old


def _sub(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9_:]+)\}", lambda m: values.get(m.group(1), f"<{m.group(1)}>"), text)


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": "gw"}


def role_logical_id(owner: str) -> str:
    return f"{owner}Role"


def role_statements(owner: str) -> list[dict[str, Any]]:
    """Allow statements of ``owner``'s role (``ProbeFunction``, ``DiagnoseStateMachine`` ...), as in the template."""
    resources = expanded_template()["Resources"]
    props = resources[role_logical_id(owner)]["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in props.get("Policies", []):
        doc = policy["PolicyDocument"]
        statements += doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            doc = resources[arn["Ref"]]["Properties"]["PolicyDocument"]
            if isinstance(doc, dict) and "Fn::Sub" in doc:
                doc = json.loads(_sub(doc["Fn::Sub"], PSEUDO))
            statements += doc["Statement"]
        elif arn not in AWS_MANAGED.values():
            raise AssertionError(f"{owner}: unexpected managed policy {arn}")
    return [s for s in statements if s.get("Effect") == "Allow"]


def granted_actions(owner: str) -> set[str]:
    out: set[str] = set()
    for statement in role_statements(owner):
        actions = statement["Action"]
        out |= {actions} if isinstance(actions, str) else set(actions)
    return out


# moto names a few actions differently from IAM (its request's operation name): IAM name -> moto's name.
# TransactWriteItems is no IAM action (AWS authorises each Put as dynamodb:PutItem); moto checks it by that name.
MOTO_ACTION_NAMES = {"lambda:InvokeFunction": ["lambda:Invoke"], "dynamodb:PutItem": ["dynamodb:PutItem",
                                                                                     "dynamodb:TransactWriteItems"]}
IAM_ACTION_NAMES = {moto: iam for iam, motos in MOTO_ACTION_NAMES.items() for moto in motos}


def _moto_policy(owner: str) -> str:
    """What moto can enforce: the actions, on Resource "*", without Conditions."""
    actions = sorted({m for a in granted_actions(owner) for m in MOTO_ACTION_NAMES.get(a, [a])})
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}] if actions else
                       [{"Effect": "Deny", "Action": "none:Nothing", "Resource": "*"}]})


class IamEnforcement:
    """Roles from the template, assumed via STS, enforced by moto; see the module docstring."""

    def __init__(self, monkeypatch: Any, owners: list[str]):
        self.monkeypatch = monkeypatch
        self.used: dict[str, set[str]] = defaultdict(set)
        self.denied: list[tuple[str, str]] = []
        self._turn = threading.Condition()
        self._owner: str | None = None
        self._holders = 0
        self._local = threading.local()
        self._sessions: dict[str, boto3.Session] = {}
        self._role_of_key: dict[str, str] = {}
        iam, sts = boto3.client("iam", region_name=REGION), boto3.client("sts", region_name=REGION)
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
        for owner in owners:
            name = f"gw-{owner}"
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            iam.put_role_policy(RoleName=name, PolicyName="template", PolicyDocument=_moto_policy(owner))
            creds = sts.assume_role(RoleArn=arn, RoleSessionName=owner)["Credentials"]
            self._role_of_key[creds["AccessKeyId"]] = owner
            self._sessions[owner] = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"], region_name=REGION)
        self._patch()

    # -- moto: enforcement on, harness key exempt, actions recorded --------------------------------------------
    def _patch(self) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.iam.access_control import IAMRequest

        original_auth = ActionAuthenticatorMixin._authenticate_and_authorize_action
        original_check = IAMRequest.check_action_permitted
        enforcement = self

        def authenticate(mixin: Any, iam_request_cls: type, resource: str = "*") -> None:
            auth = mixin.headers.get("Authorization") or ""
            if any(f"Credential={key}/" in auth for key in HARNESS_KEYS):
                return None
            return original_auth(mixin, iam_request_cls, resource)

        def check(request: Any, resource: str) -> None:
            owner = enforcement._role_of_key.get(getattr(request._access_key, "_access_key_id", ""), "?")
            try:
                original_check(request, resource)
            except Exception:
                enforcement.denied.append((owner, IAM_ACTION_NAMES.get(request._action, request._action)))
                raise
            enforcement.used[owner].add(IAM_ACTION_NAMES.get(request._action, request._action))

        self.monkeypatch.setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authenticate)
        self.monkeypatch.setattr(IAMRequest, "check_action_permitted", check)
        self.monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        self.monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)

        # boto3.client()/resource() inside our code: the current thread's role session, else the default.
        original_default = boto3._get_default_session

        def default_session() -> Any:
            session = getattr(enforcement._local, "session", None)
            return session if session is not None else original_default()

        self.monkeypatch.setattr(boto3, "_get_default_session", default_session)

        # Powertools builds its own boto3.session.Session() (parameters, idempotency): same thread-local role.
        original_session_cls = boto3.session.Session

        class RoleAwareSession(original_session_cls):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                role = getattr(enforcement._local, "session", None)
                if role is not None and not args and "aws_access_key_id" not in kwargs:
                    creds = role.get_credentials()
                    kwargs.update(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                                  aws_session_token=creds.token, region_name=kwargs.get("region_name") or REGION)
                super().__init__(*args, **kwargs)

        self.monkeypatch.setattr(boto3.session, "Session", RoleAwareSession)
        self.monkeypatch.setattr(boto3, "Session", RoleAwareSession)

        # The state machine's service integrations (moto builds them with the key "ak"): the state machine role.
        from moto.stepfunctions.parser.asl.utils import boto_client as sfn_boto_client

        machine = self._sessions.get("DiagnoseStateMachine")
        if machine is not None:
            class _MachineBoto3:
                @staticmethod
                def client(service_name: str, **kwargs: Any) -> Any:
                    kwargs.pop("aws_access_key_id", None)
                    kwargs.pop("aws_secret_access_key", None)
                    return machine.client(service_name, **kwargs)

            self.monkeypatch.setattr(sfn_boto_client, "boto3", _MachineBoto3)

    @contextlib.contextmanager
    def as_role(self, owner: str):
        """Run a handler as ``owner``: its role's credentials, fresh per-container caches (one at a time)."""
        from aws_lambda_powertools.utilities import parameters

        from gatewatch.aws import runtime

        # The per-container caches (runtime.store(), Powertools' SSM provider) are process globals here: a role
        # may run in several threads at once (two probes racing), but two different roles never share them.
        with self._turn:
            while self._owner not in (None, owner):
                self._turn.wait()
            if self._owner is None:
                runtime.reset()
                parameters.base.DEFAULT_PROVIDERS.clear()
            self._owner, self._holders = owner, self._holders + 1
        previous = getattr(self._local, "session", None)
        self._local.session = self._sessions[owner]
        try:
            yield
        finally:
            self._local.session = previous
            with self._turn:
                self._holders -= 1
                if self._holders == 0:
                    runtime.reset()
                    parameters.base.DEFAULT_PROVIDERS.clear()
                    self._owner = None
                    self._turn.notify_all()

    def wrap(self, owner: str, handler: Any) -> Any:
        def run(event: Any, context: Any) -> Any:
            with self.as_role(owner):
                return handler(event, context)

        return run


# -- what each role's code calls: derived by reading the code paths named here, checked two ways ------------------
# test_iam.py: every role grants exactly the union of its code paths' actions (a grant no code uses fails).
# test_aws_pipeline.py: every action a role was seen using under enforcement is declared here (no under-declaring).
LOG_DELIVERY = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"}
CODE_PATHS: dict[str, set[str]] = {
    # gatewatch.aws.runtime.load_targets: Powertools parameters.get_parameter (decrypt=True: the targets are a
    # SecureString under the stack's key, decrypted through SSM; moto cannot show the KMS call); with TARGETS_BUCKET
    # the S3 object (gatewatch.aws.targets_store: GetObject, SSE-KMS with the same key, decrypted through S3)
    "targets": {"ssm:GetParameter", "kms:Decrypt", "s3:GetObject"},
    # pipeline round via DynamoDBStore: get_state/get_incident (GetItem), put_state/record_probe (conditional
    # PutItem), open_incident (TransactWriteItems of two Puts: authorised as PutItem), update_incident
    # (UpdateItem SET), list_incidents(open_only) (Query on GSI2)
    "store.round": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"},
    # steps.record_step / record_outcome_step: get_incident, create_incident (if missing), update_incident;
    # conclude (record_outcome_step) releases the host lease: release_lock is a conditional DeleteItem
    "store.record": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    # remediation guards: acquire_lock/claim (PutItem), release_lock (DeleteItem), update_claim (UpdateItem),
    # cooldown/daily cap list_actions (Query), get_claim/get_lock (GetItem); Powertools idempotency uses
    # GetItem/PutItem/UpdateItem/DeleteItem on the same table
    "store.guardrails": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                         "dynamodb:Query"},
    # gatewatch.views.status.publish_status_page: get_state (GetItem), probes_between, list_incidents (Query)
    "store.status_page": {"dynamodb:GetItem", "dynamodb:Query"},
    "status_page.write": {"s3:PutObject"},
    # gatewatch.notify.aws.notify_step: put_notification (PutItem), list_notifications (Query), the incident of a
    # state-machine notification (get_incident: GetItem)
    "store.notifications": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"},
    # gatewatch.notify.secrets.SecretEnvironment: SecureString parameters and Secrets Manager
    "notify.secrets": {"ssm:GetParameter", "secretsmanager:GetSecretValue"},
    # gatewatch.aws.runtime.start_execution
    "diagnosis.start": {"states:StartExecution"},
    # functions/probe/app.py _fan_out: a sharded round invokes ProbeFunction itself once per further shard
    "probe.fanout": {"lambda:InvokeFunction"},
    # gatewatch.notify.sns.SNSNotifier.publish on a topic encrypted with TopicKey
    "notify.sns": {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"},
    # not our code: the Lambda service sends a failed async event to the DeadLetterQueue with the function's role
    "lambda.dlq": {"sqs:SendMessage"},
    # the state machine (infra/statemachine/diagnose.asl.json): lambda:invoke tasks, sns:publish tasks
    "sfn.steps": {"lambda:InvokeFunction"},
    "sfn.notify": {"sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"},
    # aws-sdk:ssm:sendCommand / getCommandInvocation tasks
    "sfn.ssm": {"ssm:SendCommand", "ssm:GetCommandInvocation"},
    # HostByTags (gatewatch.tree.asl._host_by_tags): aws-sdk:ec2:describeInstances for host.instance_tags
    "sfn.ec2": {"ec2:DescribeInstances"},
    # Logging: Level ALL on the state machine (Step Functions delivers the logs with the role's permissions)
    "sfn.logging": LOG_DELIVERY,
}
ROLE_CODE_PATHS: dict[str, list[str]] = {
    "ProbeFunction": ["targets", "store.round", "diagnosis.start", "notify.sns", "lambda.dlq", "probe.fanout"],
    "FactsFunction": [],
    "RecordFunction": ["targets", "store.record"],
    "GuardFunction": ["targets", "store.guardrails"],
    "ReprobeFunction": ["targets"],
    "NotifyFunction": ["targets", "store.notifications", "notify.secrets", "lambda.dlq"],
    "StatusPageFunction": ["targets", "store.status_page", "status_page.write"],
    "DiagnoseStateMachine": ["sfn.steps", "sfn.notify", "sfn.ssm", "sfn.ec2", "sfn.logging"],
}
# Granted and needed, but moto cannot show their use (docs/aws.md lists them): KMS for the encrypted topic (moto's
# SNS does not encrypt), log delivery (moto's Step Functions writes no logs), the DLQ (moto's Lambda has none).
NOT_ENFORCEABLE_IN_MOTO = {"kms:GenerateDataKey", "kms:Decrypt", "sqs:SendMessage"} | LOG_DELIVERY


def declared_actions(owner: str) -> set[str]:
    out: set[str] = set()
    for path in ROLE_CODE_PATHS[owner]:
        out |= CODE_PATHS[path]
    return out
