"""Shared pieces of the on-box checks: limits, statuses, bounded commands and file reads, time."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import signal
import subprocess  # nosec B404 - argv lists only, never a shell
import sys
import threading

SCHEMA = 1
VERSION = "1"
MAX_OUTPUT_CHARS = 23_500  # SSM keeps 24,000; leave room for a trailing newline and safety
GLOBAL_BUDGET_S = 8.0  # every check finishes (or is abandoned) by then; the whole run stays under 10 s
LOG_TAIL_BYTES = 2 * 1024 * 1024
APP_LOG_TAIL_BYTES = 512 * 1024
APP_LOG_LINES = 400
HTTP_MAX_BYTES = 256 * 1024
HEALTH_TIMEOUT_S = 3.0
ENDPOINT_TIMEOUT_S = 4.0
DB_CONNECT_TIMEOUT_S = 2.0
CMD_TIMEOUT_S = 3.0
EVIDENCE_ITEMS = 8
EVIDENCE_CHARS = 300

EXIT_REPORT, EXIT_BAD_PARAMS, EXIT_INTERNAL = 0, 2, 3

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


# ---------------------------------------------------------------------------------------------------------------
# Small helpers: bounded commands, bounded file reads, /proc.

_CHILDREN = set()
_CHILDREN_LOCK = threading.Lock()


def _short(text, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


# Python tools that may live in the same virtualenv as the interpreter running this script, not on PATH.
BESIDE_PYTHON = ("supervisorctl",)


def which(name: str):
    """A tool on PATH (or, for supervisorctl, next to this interpreter); None when the host lacks it."""
    if name.startswith("/"):
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name)
    if found or name not in BESIDE_PYTHON:
        return found
    beside = os.path.join(os.path.dirname(sys.executable or ""), name)
    return beside if sys.executable and os.access(beside, os.X_OK) else None


class CommandResult:
    def __init__(self, argv, rc, out, err, error=None, timed_out=False):
        self.argv, self.rc, self.out, self.err, self.error, self.timed_out = argv, rc, out, err, error, timed_out

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def text(self) -> str:
        return (self.out + ("\n" if self.out and self.err else "") + self.err).strip()


def run_cmd(ctx, argv, timeout=CMD_TIMEOUT_S, max_chars=200_000, env=None) -> CommandResult:
    """Run a fixed argv (never a shell) in its own process group; killed when its timeout or the budget ends."""
    tool = which(argv[0])
    if tool is None:
        return CommandResult(argv, None, "", "", error="%s not found" % argv[0])
    budget = min(timeout, ctx.remaining() - 0.2) if ctx else timeout
    if budget <= 0:
        return CommandResult(argv, None, "", "", error="no time left", timed_out=True)
    run_env = dict(os.environ, LC_ALL="C", LANG="C")
    if env:
        run_env.update(env)
    try:
        proc = subprocess.Popen([tool] + list(argv[1:]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # nosec B603 - a fixed tool, validated argv, no shell
                                stderr=subprocess.PIPE, start_new_session=True, env=run_env)
    except OSError as exc:
        return CommandResult(argv, None, "", "", error="%s: %s" % (argv[0], exc.strerror or exc))
    with _CHILDREN_LOCK:
        _CHILDREN.add(proc)
    try:
        out, err = proc.communicate(timeout=budget)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
    out_s = out[:max_chars].decode("utf-8", "replace")
    err_s = err[:max_chars].decode("utf-8", "replace")
    if timed_out:
        return CommandResult(argv, None, out_s, err_s, error="%s timed out after %.1fs" % (argv[0], budget),
                             timed_out=True)
    return CommandResult(argv, proc.returncode, out_s, err_s)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def kill_leftover_children() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for proc in procs:
        if proc.poll() is None:
            _kill_group(proc)


def read_file(path: str, limit: int = 65536) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def read_tail(path: str, limit: int):
    """The last ``limit`` bytes of a file (however large), starting at a line boundary; and the file size."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
    return data.decode("utf-8", "replace"), size


# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides: a log line or a request
# field must not move a terminal's cursor, colour a notification or reorder what a person reads.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``, ``\\u202e``)."""
    return _CONTROL_RE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100
                           else "\\u%04x" % ord(m.group()), text)


def escape_controls(node):
    """Every string in a JSON-like document, ``printable``; keys too."""
    if isinstance(node, str):
        return printable(node)
    if isinstance(node, list):
        return [escape_controls(x) for x in node]
    if isinstance(node, dict):
        return {printable(k) if isinstance(k, str) else k: escape_controls(v) for k, v in node.items()}
    return node


def _errtext(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return "%s%s" % (exc.strerror, (": " + exc.filename) if exc.filename else "")
    return "%s: %s" % (type(exc).__name__, exc)


class Shared:
    """Facts several checks need (process table, listeners), computed once under a lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}

    def get(self, key, fn):
        with self._lock:
            if key not in self._values:
                try:
                    self._values[key] = (fn(), None)
                except Exception as exc:  # noqa: BLE001 - recorded and reported by the caller
                    self._values[key] = (None, exc)
            value, exc = self._values[key]
        if exc is not None:
            raise exc
        return value


def now_local() -> _dt.datetime:
    return _dt.datetime.now()


def utc_iso(ts: float) -> str:
    moment = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)  # noqa: UP017 - the script runs on python 3.8
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


# ---------------------------------------------------------------------------------------------------------------
