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


def __getattr__(name: str):
    """``LocalRunner`` loads on first use: it pulls in the config models, which a Lambda handler importing the
    port (``gatewatch.runner.base``) should not pay for at cold start."""
    if name == "LocalRunner":
        from gatewatch.runner.local import LocalRunner

        return LocalRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
