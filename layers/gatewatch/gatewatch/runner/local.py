"""The local command runner: gatewatch's fixed programs as subprocesses on this machine.

Used by ``gatewatch check``, the lab and tests. A host with ``netns`` set runs inside that network namespace
(``ip netns exec NAME ...``), which is how the lab makes a namespace look like a separate machine. Output is
bounded like SSM's (stdout 24,000 and stderr 8,000 characters) so both adapters hand the diagnosis the same shape.
No shell is ever involved: argv lists only.
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404 - argv lists only, never a shell; see run_argv
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from gatewatch.clock import Clock
from gatewatch.onbox.params import encode_params
from gatewatch.runner.base import ERROR, FAILED, SUCCESS, TIMED_OUT, CommandRunner, RunResult
from gatewatch.runner.exceptions import RunnerError

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
_READ_CHUNK = 65536


class LocalRunner(CommandRunner):
    def __init__(self, python: str = "python3", clock: Clock | None = None):
        self.python = python
        self.clock = clock or Clock()

    def prefix(self, host: Any) -> list[str]:
        """``ip netns exec NAME`` for a host in a network namespace, else nothing."""
        if host is not None and (getattr(host, "instance_id", None) or getattr(host, "instance_tags", None)):
            raise RunnerError("this host is remote (instance_id/instance_tags): use the SSM runner, not the local one")
        netns = getattr(host, "netns", None) if host is not None else None
        return ["ip", "netns", "exec", netns] if netns else []

    def run_onbox(self, host: Any, params: dict[str, Any], timeout_s: float = 30.0) -> RunResult:
        from gatewatch.onbox import script_path

        return self.run_argv(host, [self.python, str(script_path()), encode_params(params)], timeout_s)

    def run_remediation(self, host: Any, action: str, params: dict[str, Any], timeout_s: float = 60.0) -> RunResult:
        """One catalogued action: the remediation package rebuilds its argv and checks, then ``run_argv`` runs them."""
        from gatewatch.remediation.commands import run_catalogued

        return run_catalogued(self.run_argv, host, action, timeout_s)

    def run_argv(self, host: Any, argv: Sequence[str], timeout_s: float = 60.0) -> RunResult:
        """The hook for fixed programs (the on-box checks, a catalogued remediation's argv).

        Runs ``[*prefix(host), *argv]`` without a shell in its own process group; on timeout the whole group is
        killed and the status is TimedOut. Exit 0 is Success, any other exit Failed; a program that cannot be
        started is Error. stdout/stderr keep their first 24,000/8,000 characters, as SSM does.
        """
        if not argv or not all(isinstance(a, str) for a in argv):
            raise RunnerError("argv must be a non-empty list of strings")
        if timeout_s <= 0:
            raise RunnerError(f"timeout_s must be positive (got {timeout_s})")
        full = [*self.prefix(host), *argv]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(  # nosec B603 - argv built from validated config, no shell
                full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, env=child_env(),
            )
        except OSError as exc:
            return RunResult(status=ERROR, error=f"cannot start {full[0]}: {exc.strerror or exc}",
                             duration_ms=_ms(start))
        out, err = _BoundedReader(proc.stdout, STDOUT_LIMIT), _BoundedReader(proc.stderr, STDERR_LIMIT)
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        out.join(2.0)
        err.join(2.0)
        stdout, stderr = out.text(), err.text()
        if timed_out:
            return RunResult(status=TIMED_OUT, exit_code=None, stdout=stdout, stderr=stderr, duration_ms=_ms(start),
                             error=f"{os.path.basename(argv[0])} did not finish within {timeout_s:g}s; killed")
        code = proc.returncode
        status = SUCCESS if code == 0 else FAILED
        error = None if code == 0 else f"exit code {code}" + (f" (signal {-code})" if code < 0 else "")
        return RunResult(status=status, exit_code=code, stdout=stdout, stderr=stderr, duration_ms=_ms(start),
                         error=error)


class _BoundedReader:
    """Drains a pipe to the end (so the child never blocks on a full pipe) but keeps only the first ``limit``."""

    def __init__(self, pipe, limit: int):
        self._pipe, self._limit = pipe, limit
        self._kept = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := self._pipe.read1(_READ_CHUNK):
                room = self._limit * 4 - len(self._kept)  # bytes; trimmed to characters after decoding
                if room > 0:
                    self._kept += chunk[:room]
        except (OSError, ValueError):
            pass
        finally:
            self._pipe.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        return bytes(self._kept).decode("utf-8", errors="replace")[: self._limit]


def child_env() -> dict[str, str]:
    """This environment, with gatewatch's own bin directory last on PATH: tools installed beside gatewatch (the
    lab's supervisorctl in the venv) are found, and the host's own tools still win."""
    env = dict(os.environ)
    own = os.path.dirname(os.path.abspath(sys.executable))
    parts = [p for p in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p]
    if own not in parts:
        parts.append(own)
    for extra in ("/usr/sbin", "/sbin"):  # nginx, ip and iptables live here on Debian; a non-login PATH can lack them
        if extra not in parts:
            parts.append(extra)
    env["PATH"] = os.pathsep.join(parts)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000.0, 1)
