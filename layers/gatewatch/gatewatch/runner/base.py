"""The command-runner port: run the on-box checks or a remediation action on a target's host.

Adapters: ``local`` (a subprocess on this machine, optionally inside a network namespace) and ``ssm``
(SSM Run Command). Both return a ``RunResult`` and never raise for a host that is down or slow: an unreachable
host is a fact the diagnosis needs, not an exception.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any

# Terminal statuses, named as SSM names them so both adapters speak one vocabulary.
SUCCESS = "Success"
FAILED = "Failed"
TIMED_OUT = "TimedOut"
CANCELLED = "Cancelled"
UNDELIVERABLE = "Undeliverable"
NOT_REGISTERED = "NotRegistered"  # the instance is unknown to SSM or its agent is offline
ERROR = "Error"  # the runner itself could not run the command (bad document, API error)
STATUSES = (SUCCESS, FAILED, TIMED_OUT, CANCELLED, UNDELIVERABLE, NOT_REGISTERED, ERROR)


@dataclass
class RunResult:
    status: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CommandRunner(abc.ABC):
    """Runs gatewatch's own fixed programs on a host; never a free-form command."""

    @abc.abstractmethod
    def run_onbox(self, host: Any, params: dict[str, Any], timeout_s: float = 30.0) -> RunResult:
        """Run the on-box checks with ``params`` (see ``gatewatch.onbox.params``); stdout is their JSON."""

    @abc.abstractmethod
    def run_remediation(self, host: Any, action: str, params: dict[str, Any], timeout_s: float = 60.0) -> RunResult:
        """Run one catalogued remediation ``action`` (see ``gatewatch.remediation``)."""
