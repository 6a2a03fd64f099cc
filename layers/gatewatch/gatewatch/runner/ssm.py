"""The SSM command runner: gatewatch's two fixed documents on an EC2 or managed instance, over Run Command.

``SendCommand`` then ``GetCommandInvocation`` with exponential backoff (on the injected clock, so tests do not
wait) until a terminal status or the overall deadline. What a down or unknown host looks like is a RunResult, not
an exception: ``InvalidInstanceId`` (unknown instance, or its agent is offline) is ``NotRegistered``; no terminal
status by the deadline is ``TimedOut`` (and the command is cancelled). ``InvocationDoesNotExist`` right after
``SendCommand`` is SSM's normal eventual consistency and is retried a few times.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from gatewatch.aws.ssm_documents import (
    ACTIONS,
    MANAGERS,
    NGINX_BIN_PATTERN,
    PARAMS_PATTERN,
    PATH_OR_EMPTY_PATTERN,
    SERVICE_OR_EMPTY_PATTERN,
)
from gatewatch.clock import Clock
from gatewatch.onbox.params import encode_params
from gatewatch.runner.base import (
    CANCELLED,
    ERROR,
    FAILED,
    NOT_REGISTERED,
    SUCCESS,
    TIMED_OUT,
    UNDELIVERABLE,
    CommandRunner,
    RunResult,
)
from gatewatch.runner.exceptions import RunnerError

STDOUT_LIMIT, STDERR_LIMIT = 24_000, 8_000  # what GetCommandInvocation returns at most
DEFAULT_ONBOX_DOCUMENT, DEFAULT_REMEDIATION_DOCUMENT = "gatewatch-onbox", "gatewatch-remediation"
RUNNING = {"Pending", "InProgress", "Delayed", "Cancelling"}
_STATUS = {"Success": SUCCESS, "Failed": FAILED, "TimedOut": TIMED_OUT, "Cancelled": CANCELLED,
           "Undeliverable": UNDELIVERABLE, "Terminated": FAILED}
_NOT_REGISTERED_CODES = {"InvalidInstanceId", "UnsupportedPlatformType"}


@dataclass
class SSMRunResult(RunResult):
    """A RunResult plus what only SSM knows: the command id and whether SSM cut the output at its limits."""

    truncated: bool = False
    command_id: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 5.0

    def delays(self):
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


def _aws_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    )


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "") or type(exc).__name__


def _check(field: str, value: str, pattern: str) -> str:
    if not re.fullmatch(pattern, value):
        raise RunnerError(f"{field} {value!r} does not match the SSM document's pattern {pattern}")
    return value


class SSMRunner(CommandRunner):
    def __init__(
        self,
        client: Any = None,
        clock: Clock | None = None,
        onbox_document: str | None = None,
        remediation_document: str | None = None,
        poll_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        ec2_client: Any = None,
        missing_invocation_retries: int = 5,
    ):
        self._client = client
        self._ec2 = ec2_client
        self.clock = clock or Clock()
        self.onbox_document = onbox_document or os.environ.get("ONBOX_DOCUMENT") or DEFAULT_ONBOX_DOCUMENT
        self.remediation_document = (
            remediation_document or os.environ.get("REMEDIATION_DOCUMENT") or DEFAULT_REMEDIATION_DOCUMENT
        )
        self.poll_timeout_s = poll_timeout_s
        self.backoff = backoff or Backoff()
        self.missing_invocation_retries = missing_invocation_retries

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _aws_client("ssm")
        return self._client

    # -- the port ----------------------------------------------------------------------------------------------
    def run_onbox(self, host: Any, params: dict[str, Any], timeout_s: float = 30.0) -> RunResult:
        word = encode_params(params)
        if not re.fullmatch(PARAMS_PATTERN, word):
            return SSMRunResult(ERROR, error=f"on-box parameters encode to {len(word)} characters; SSM takes 8,004")
        return self._run(host, self.onbox_document, {"Params": [word]}, timeout_s)

    def run_remediation(self, host: Any, action: str, params: dict[str, Any], timeout_s: float = 60.0) -> RunResult:
        return self._run(host, self.remediation_document, self.remediation_parameters(host, action, params), timeout_s)

    @staticmethod
    def remediation_parameters(host: Any, action: str, params: dict[str, Any] | None = None) -> dict[str, list[str]]:
        """The remediation document's parameters: fixed fields, each checked against the document's own pattern."""
        params = params or {}
        if action not in ACTIONS:
            raise RunnerError(f"action must be one of {', '.join(ACTIONS)} (got {action!r})")

        def pick(key: str, attr: str, default: str = "") -> str:
            value = params.get(key)
            if value is None:
                value = getattr(host, attr, None)
            return default if value is None else str(value)

        manager = pick("service_manager", "service_manager", "systemd")
        if manager not in MANAGERS:
            raise RunnerError(f"service_manager {manager!r} cannot run over SSM (the document takes systemd or "
                              "supervisor; 'command' hosts are local only)")
        values = {
            "Action": action,
            "ServiceManager": manager,
            "Service": _check("service", pick("service", "service"), SERVICE_OR_EMPTY_PATTERN),
            "ProxyService": _check("proxy_service", pick("proxy_service", "proxy_service", "nginx"),
                                   SERVICE_OR_EMPTY_PATTERN),
            "SupervisorConfig": _check("supervisor_config", pick("supervisor_config", "supervisor_config"),
                                       PATH_OR_EMPTY_PATTERN),
            "NginxBin": _check("nginx_bin", pick("nginx_bin", "nginx_bin", "nginx"), NGINX_BIN_PATTERN),
            "NginxConf": _check("nginx_conf", pick("nginx_conf", "nginx_conf"), PATH_OR_EMPTY_PATTERN),
            "NginxPrefix": _check("nginx_prefix", pick("nginx_prefix", "nginx_prefix"), PATH_OR_EMPTY_PATTERN),
        }
        if action == "restart_backend" and not values["Service"]:
            raise RunnerError("restart_backend needs host.service (the backend's unit or supervisor program)")
        return {k: [v] for k, v in values.items()}

    def instance_id_for(self, host: Any) -> str:
        """The instance a host is, tags resolved: the remediation lease is keyed on it (one machine, one lease)."""
        instance_id, why = self.resolve_instance(host)
        if not instance_id:
            raise RunnerError(why or "no instance")
        return instance_id

    # -- the work ----------------------------------------------------------------------------------------------
    def resolve_instance(self, host: Any) -> tuple[str | None, str | None]:
        """(instance id, None) or (None, why not). ``instance_tags`` must match exactly one running instance."""
        if host is None:
            raise RunnerError("the SSM runner needs a host with instance_id or instance_tags")
        instance_id = getattr(host, "instance_id", None)
        if instance_id:
            return instance_id, None
        tags = getattr(host, "instance_tags", None)
        if not tags:
            raise RunnerError("the SSM runner needs host.instance_id or host.instance_tags")
        if self._ec2 is None:
            self._ec2 = _aws_client("ec2")
        filters = [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(tags.items())]
        filters.append({"Name": "instance-state-name", "Values": ["running"]})
        ids: list[str] = []
        kwargs: dict[str, Any] = {"Filters": filters, "MaxResults": 50}
        while True:
            out = self._ec2.describe_instances(**kwargs)
            ids += [i["InstanceId"] for r in out.get("Reservations", []) for i in r.get("Instances", [])]
            if not out.get("NextToken") or len(ids) > 1:
                break
            kwargs["NextToken"] = out["NextToken"]
        described = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        if not ids:
            return None, f"no running instance has the tags {described}"
        if len(ids) > 1:
            return None, f"the tags {described} match more than one instance ({', '.join(ids[:5])}); name one"
        return ids[0], None

    def _run(self, host: Any, document: str, parameters: dict[str, list[str]], timeout_s: float) -> RunResult:
        started = self.clock.now()

        def done(status: str, **kw: Any) -> SSMRunResult:
            elapsed = (self.clock.now() - started).total_seconds() * 1000
            return SSMRunResult(status, duration_ms=round(elapsed, 1), **kw)

        try:
            instance_id, why = self.resolve_instance(host)
        except RunnerError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore errors and transport failures are results here
            return done(ERROR, error=f"could not resolve the instance from its tags: {_error_code(exc)}: {exc}")
        if instance_id is None:
            return done(NOT_REGISTERED, error=why)

        try:
            sent = self.client.send_command(
                DocumentName=document,
                InstanceIds=[instance_id],
                Parameters=parameters,
                TimeoutSeconds=max(30, int(timeout_s)),  # delivery timeout: SSM's minimum is 30
                Comment=f"gatewatch {document}"[:100],
            )
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            status = NOT_REGISTERED if code in _NOT_REGISTERED_CODES else ERROR
            return done(status, error=f"SendCommand {document} to {instance_id}: {code}: {exc}",
                        instance_id=instance_id)
        command_id = sent["Command"]["CommandId"]

        budget = timeout_s + 30 if self.poll_timeout_s is None else self.poll_timeout_s
        deadline = (started.timestamp() + budget)
        missing = 0
        delays = self.backoff.delays()
        while True:
            remaining = deadline - self.clock.now().timestamp()
            if remaining <= 0:
                self._cancel(command_id, instance_id)
                return done(TIMED_OUT, error=f"no terminal status from SSM after {budget:.0f} s (command cancelled)",
                            command_id=command_id, instance_id=instance_id)
            self.clock.sleep(min(next(delays), remaining))
            try:
                inv = self.client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except Exception as exc:  # noqa: BLE001
                code = _error_code(exc)
                if code == "InvocationDoesNotExist" and missing < self.missing_invocation_retries:
                    missing += 1
                    continue
                return done(ERROR, error=f"GetCommandInvocation: {code}: {exc}", command_id=command_id,
                            instance_id=instance_id)
            status = inv.get("Status", "")
            if status in RUNNING:
                continue
            return self._result(done, inv, command_id, instance_id)

    @staticmethod
    def _result(done, inv: dict[str, Any], command_id: str, instance_id: str) -> SSMRunResult:
        status, details = inv.get("Status", ""), inv.get("StatusDetails", "")
        mapped = _STATUS.get(status, ERROR)
        if details == "DeliveryTimedOut":
            mapped = UNDELIVERABLE  # never reached the agent: the host is down or its agent offline
        elif details == "ExecutionTimedOut":
            mapped = TIMED_OUT
        stdout = inv.get("StandardOutputContent") or ""
        stderr = inv.get("StandardErrorContent") or ""
        code = inv.get("ResponseCode")
        error = None
        if mapped != SUCCESS:
            error = f"SSM status {status}" + (f" ({details})" if details and details != status else "")
            if code not in (None, -1):
                error += f", exit {code}"
        return done(
            mapped,
            exit_code=None if code in (None, -1) else int(code),
            stdout=stdout,
            stderr=stderr,
            error=error,
            truncated=len(stdout) >= STDOUT_LIMIT or len(stderr) >= STDERR_LIMIT,
            command_id=command_id,
            instance_id=instance_id,
        )

    def _cancel(self, command_id: str, instance_id: str) -> None:
        try:
            self.client.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
        except Exception:  # noqa: BLE001, S110 - best effort: the deadline already decided the result
            pass  # nosec B110 - cancelling is best effort; the result is already decided
