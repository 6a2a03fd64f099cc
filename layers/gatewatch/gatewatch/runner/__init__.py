"""The command-runner port and its adapters."""

from gatewatch.runner.base import (
    CANCELLED,
    ERROR,
    FAILED,
    NOT_REGISTERED,
    STATUSES,
    SUCCESS,
    TIMED_OUT,
    UNDELIVERABLE,
    CommandRunner,
    RunResult,
)
from gatewatch.runner.exceptions import RunnerError
from gatewatch.runner.local import LocalRunner

__all__ = [
    "CANCELLED",
    "ERROR",
    "FAILED",
    "NOT_REGISTERED",
    "STATUSES",
    "SUCCESS",
    "TIMED_OUT",
    "UNDELIVERABLE",
    "CommandRunner",
    "LocalRunner",
    "RunResult",
    "RunnerError",
]
