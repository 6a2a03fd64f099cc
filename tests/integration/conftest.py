"""Fixtures for AWS-level tests, offline: moto as the AWS APIs, with the parts moto fakes made real.

* ``aws``: ``mock_aws`` with Step Functions executing definitions and Lambda without Docker; fake credentials.
* ``template``: infra/template.yaml parsed (CloudFormation tags kept as ``{"Ref": ...}`` / ``{"Fn::X": ...}``).
* ``table``: the results table created from the template's own properties; ``dynamo_store`` wraps it.
* ``topic_and_queue``: an SNS topic with an SQS queue subscribed, and a reader of what was delivered.
* ``ssm_executor``: SendCommand really runs a document's ``aws:runShellScript`` steps locally (in a thread, with
  ``{{ Param }}`` substituted after SSM's own parameter checks), optionally under an argv prefix such as
  ``ip netns exec gwlab``; GetCommandInvocation reports InProgress, then the real status, exit code and bounded
  output. Unknown or offline instances get ``InvalidInstanceId`` from SendCommand, as from real SSM (moto itself
  accepts any instance id and answers Success with empty output).
* ``lambda_dispatch``: Lambda Invoke runs registered Python callables in-process (also from a state machine's
  execution thread); a raised exception becomes Lambda's ``Unhandled`` function error with errorType/errorMessage,
  so ASL ``Catch`` on the exception name works.
* ``moto_server``: moto over real HTTP on 127.0.0.1 (an ephemeral port), with execution enabled.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gatewatch.aws.template_schema import REPO_ROOT, create_table_from_template, load_template
from gatewatch.store import DynamoDBStore

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
SSM_STDOUT_LIMIT, SSM_STDERR_LIMIT = 24_000, 8_000
ONBOX_DOCUMENT, REMEDIATION_DOCUMENT = "gatewatch-onbox", "gatewatch-remediation"


def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)


@dataclass
class Aws:
    region: str = REGION
    endpoint_url: str | None = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)


@pytest.fixture
def aws(monkeypatch) -> Aws:
    _fake_credentials(monkeypatch)
    with mock_aws(config=MOTO_CONFIG):
        yield Aws()


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def table(aws, template) -> str:
    return create_table_from_template(aws.client("dynamodb"), template, "gatewatch-test")


@pytest.fixture
def dynamo_store(aws, table) -> DynamoDBStore:
    return DynamoDBStore(table, client=aws.client("dynamodb"))


# -- SNS -> SQS ---------------------------------------------------------------------------------------------------
@dataclass
class TopicAndQueue:
    topic_arn: str
    queue_url: str
    sqs: Any

    def read(self, expect: int = 1, wait_s: float = 5.0) -> list[dict[str, Any]]:
        """Delivered notifications (SNS's envelope: Subject, Message, MessageAttributes), at least ``expect``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while len(got) < expect and time.monotonic() < deadline:
            out = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for m in out.get("Messages", []):
                got.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
            if len(got) < expect:
                time.sleep(0.05)
        return got


@pytest.fixture
def topic_and_queue(aws) -> TopicAndQueue:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic_arn = sns.create_topic(Name="gatewatch-incidents")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="gatewatch-incidents-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return TopicAndQueue(topic_arn, queue_url, sqs)


# -- SSM that runs commands ---------------------------------------------------------------------------------------
@dataclass
class Instance:
    instance_id: str
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", "gwlab")
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    online: bool = True


@dataclass
class Run:
    command_id: str
    instance_id: str
    document: str
    parameters: dict[str, list[str]]
    invocation: dict[str, Any]
    thread: threading.Thread | None = None


class SSMExecutor:
    """State for the patched SSM backend; see the module docstring."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.instances: dict[str, Instance] = {}
        self.runs: list[Run] = []
        self.missing_polls = 0  # GetCommandInvocation answers InvocationDoesNotExist this many times first
        self.max_step_timeout_s: float | None = None  # cap the documents' own timeoutSeconds (tests)
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._closed = False

    def add_instance(self, instance_id: str, prefix: Sequence[str] = (), env: dict[str, str] | None = None,
                     online: bool = True) -> Instance:
        inst = Instance(instance_id, tuple(prefix), dict(env or {}), online)
        self.instances[instance_id] = inst
        return inst

    def create_document(self, ssm: Any, name: str, content: dict[str, Any] | str) -> str:
        text = content if isinstance(content, str) else json.dumps(content)
        ssm.create_document(Name=name, Content=text, DocumentType="Command", DocumentFormat="JSON")
        return name

    def create_gatewatch_documents(self, ssm: Any) -> tuple[str, str]:
        """The committed, generated documents under their default names (what SSMRunner uses by default)."""
        ssm_dir = REPO_ROOT / "infra" / "ssm"
        self.create_document(ssm, ONBOX_DOCUMENT, (ssm_dir / "gatewatch-onbox.json").read_text())
        self.create_document(ssm, REMEDIATION_DOCUMENT, (ssm_dir / "gatewatch-remediation.json").read_text())
        return ONBOX_DOCUMENT, REMEDIATION_DOCUMENT

    def wait(self, timeout_s: float = 30.0) -> None:
        for run in list(self.runs):
            if run.thread:
                run.thread.join(timeout_s)

    def close(self) -> None:
        """Kill whatever a test left running (a command its runner gave up on), then reap the threads."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.wait(timeout_s=10)

    # -- what SSM checks before it accepts a command ---------------------------------------------------------
    @staticmethod
    def resolve_parameters(document: dict[str, Any], given: dict[str, list[str]]) -> dict[str, str]:
        from moto.ssm.exceptions import SSMException

        declared = document.get("parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise SSMException("InvalidParameters", f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in given:
                value = given[name]
                if not isinstance(value, list) or len(value) != 1:
                    raise SSMException("InvalidParameters", f"parameter {name} takes one String value")
                value = value[0]
            elif "default" in spec:
                value = spec["default"]
            else:
                raise SSMException("InvalidParameters", f"parameter {name} is required")
            if "allowedValues" in spec and value not in spec["allowedValues"]:
                raise SSMException("InvalidParameters", f"parameter {name} is not one of its allowed values")
            if "allowedPattern" in spec and not re.search(spec["allowedPattern"], value):
                raise SSMException("InvalidParameters", f"parameter {name} does not match its allowed pattern")
            values[name] = value
        return values

    @staticmethod
    def substitute(line: str, values: dict[str, str]) -> str:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m.group(1)], line)

    # -- running ---------------------------------------------------------------------------------------------
    def execute(self, run: Run, document: dict[str, Any], values: dict[str, str]) -> None:
        inv = run.invocation
        inst = self.instances[run.instance_id]
        stdout, stderr, status, details, code = "", "", "Success", "Success", 0
        inv.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
        for step in document.get("mainSteps", []):
            if step.get("action") != "aws:runShellScript":
                status, details, code = "Failed", "Failed", -1
                stderr += f"ssm_executor: unsupported action {step.get('action')}\n"
                break
            lines = [self.substitute(line, values) for line in step["inputs"]["runCommand"]]
            timeout = float(step["inputs"].get("timeoutSeconds", 3600))
            if self.max_step_timeout_s is not None:
                timeout = min(timeout, self.max_step_timeout_s)
            out, err, code, timed_out = self._run_script("\n".join(lines) + "\n", inst, timeout)
            stdout, stderr = stdout + out, stderr + err
            if timed_out:
                status, details, code = "TimedOut", "ExecutionTimedOut", -1
                break
            if code != 0:
                status, details = "Failed", "Failed"
                break
        inv.update(
            Status=status, StatusDetails=details, ResponseCode=code,
            StandardOutputContent=stdout[:SSM_STDOUT_LIMIT], StandardErrorContent=stderr[:SSM_STDERR_LIMIT],
        )

    def _run_script(self, script: str, inst: Instance, timeout_s: float) -> tuple[str, str, int, bool]:
        fd, path = tempfile.mkstemp(prefix="_script-", suffix=".sh", dir=self.workdir)
        with os.fdopen(fd, "w") as fh:
            fh.write(script)
        env = {**os.environ, **inst.env}
        with self._lock:  # a command that starts after the test ended is never run
            if self._closed:
                return "", "ssm_executor: closed\n", -1, True
            proc = subprocess.Popen(
                [*inst.prefix, "/bin/sh", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd=self.workdir, start_new_session=True,
            )
            self._procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), proc.returncode, timed_out


@pytest.fixture
def ssm_executor(monkeypatch, tmp_path) -> SSMExecutor:
    from moto.ssm.exceptions import SSMException
    from moto.ssm.models import SimpleSystemManagerBackend

    executor = SSMExecutor(tmp_path)
    original_send = SimpleSystemManagerBackend.send_command
    original_get = SimpleSystemManagerBackend.get_command_invocation

    def send_command(self, **kwargs):
        name = kwargs["document_name"]
        document = self._get_documents(name).get_default_version().content_json
        values = executor.resolve_parameters(document, kwargs.get("parameters") or {})
        ids = list(kwargs.get("instance_ids") or [])
        bad = [i for i in ids if i not in executor.instances or not executor.instances[i].online]
        if not ids or bad:
            raise SSMException(
                "InvalidInstanceId", f"Instances [{bad or ids}] not in a valid state for account {ACCOUNT_ID}"
            )
        command = original_send(self, **kwargs)
        command.invocations = []
        for instance_id in ids:
            invocation = command.invocation_response(instance_id, "aws:runShellScript")
            invocation.update(Status="Pending", StatusDetails="Pending", ResponseCode=-1)
            command.invocations.append(invocation)
            run = Run(command.command_id, instance_id, name, kwargs.get("parameters") or {}, invocation)
            run.thread = threading.Thread(target=executor.execute, args=(run, document, values), daemon=True)
            with executor._lock:
                executor.runs.append(run)
            run.thread.start()
        return command

    def get_command_invocation(self, command_id, instance_id, plugin_name):
        with executor._lock:
            seen = executor._polls.get(command_id, 0)
            executor._polls[command_id] = seen + 1
        if seen < executor.missing_polls:
            raise SSMException("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist)")
        return original_get(self, command_id, instance_id, plugin_name)

    monkeypatch.setattr(SimpleSystemManagerBackend, "send_command", send_command)
    monkeypatch.setattr(SimpleSystemManagerBackend, "get_command_invocation", get_command_invocation)
    yield executor
    executor.close()


# -- Lambda that runs our handlers --------------------------------------------------------------------------------
class LambdaDispatch:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self.calls: list[tuple[str, Any]] = []

    def register(self, name: str, handler: Callable[[Any, Any], Any]) -> None:
        self.handlers[name] = handler

    def __setitem__(self, name: str, handler: Callable[[Any, Any], Any]) -> None:
        self.register(name, handler)

    @staticmethod
    def function_name(name_or_arn: str) -> str:
        """``NAME``, ``NAME:qualifier`` or ``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:qualifier]`` -> NAME."""
        if name_or_arn.startswith("arn:"):
            return name_or_arn.split(":")[6]
        return name_or_arn.split(":")[0]

    def invoke(self, function_name: str, body: Any, response_headers: dict[str, Any]) -> bytes:
        name = self.function_name(function_name)
        raw = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
        event = json.loads(raw) if raw.strip() else {}
        self.calls.append((name, event))
        handler = self.handlers.get(name)
        context = SimpleNamespace(function_name=name, aws_request_id=str(uuid.uuid4()),
                                  invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
                                  memory_limit_in_mb=256, get_remaining_time_in_millis=lambda: 60_000)
        try:
            if handler is None:
                raise LookupError(f"lambda_dispatch: no handler registered for {name}")
            result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - Lambda reports any exception as an Unhandled function error
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                               "stackTrace": []}).encode("utf-8")
        return json.dumps(result, default=str).encode("utf-8")


@pytest.fixture
def lambda_dispatch(monkeypatch) -> LambdaDispatch:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    dispatch = LambdaDispatch()

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        return dispatch.invoke(function_name, body, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    return dispatch


# -- moto over HTTP -----------------------------------------------------------------------------------------------
def _post_json(url: str, payload: dict[str, Any] | None = None) -> None:
    data = json.dumps(payload or {}).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback moto server only
        response.read(65536)


@pytest.fixture
def moto_server(monkeypatch) -> Aws:
    """moto as a real HTTP server on 127.0.0.1:<ephemeral>; never combine with ``aws`` (that mocks in-process)."""
    from moto.server import ThreadedMotoServer

    _fake_credentials(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        _post_json(f"{endpoint}/moto-api/config", MOTO_CONFIG)
        yield Aws(endpoint_url=endpoint)
    finally:
        try:
            _post_json(f"{endpoint}/moto-api/reset")
        finally:
            server.stop()
