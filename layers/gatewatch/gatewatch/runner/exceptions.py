"""Errors of the command-runner port (configuration mistakes only: a down host is a RunResult, not an error)."""


class RunnerError(Exception):
    """The runner cannot be used for this host (e.g. no instance id for SSM, no python3 locally)."""
