"""Output helpers every command shares: colour on a terminal only, aligned rows, timestamps, progress, examples.

Colour and the progress line appear only when the stream is a terminal and ``NO_COLOR`` is unset (and ``TERM`` is not
``dumb``); piped output is plain text, one record per line, and ``--json`` output never carries either.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from gatewatch.cli import EXIT_USAGE

_STYLES = {"ok": "32", "down": "1;31", "warn": "33", "dim": "2", "bold": "1"}
# Words the tables colour by meaning (probe and target statuses, incident states, check results).
_STATUS_STYLE = {
    "up": "ok", "ok": "ok", "healthy": "ok", "resolved": "ok", "verified": "ok",
    "down": "down", "fail": "down", "failed": "down", "open": "down", "error": "down",
    "degraded": "warn", "diagnosing": "warn", "transient": "warn", "unknown": "warn", "refused": "warn",
}


def is_tty(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def use_colour(stream: TextIO | None = None) -> bool:
    """True only on a terminal, without ``NO_COLOR`` (https://no-color.org) and with a ``TERM`` that can show it."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream)


def paint(text: str, style: str, stream: TextIO | None = None) -> str:
    """``text`` in a style (ok, down, warn, dim, bold) when ``stream`` shows colour, else unchanged."""
    code = _STYLES.get(style)
    return f"\033[{code}m{text}\033[0m" if code and use_colour(stream) else text


def status(word: str, width: int = 0, stream: TextIO | None = None) -> str:
    """A status word padded to ``width`` and coloured by meaning (padding outside the colour, so columns align)."""
    pad = " " * max(0, width - len(word))
    style = _STATUS_STYLE.get(word.lower())
    return (paint(word, style, stream) if style else word) + pad


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, status_column: int | None = None,
          stream: TextIO | None = None) -> str:
    """Rows as aligned columns (two spaces apart). On a terminal the header is shown (bold) and ``status_column``
    is coloured; piped, each row is one plain line with no header, ready for grep and awk."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    header = header if is_tty(stream) else None
    every = ([list(header)] if header else []) + cells
    if not every:
        return ""
    widths = [max(len(r[i]) for r in every if i < len(r)) for i in range(max(len(r) for r in every))]
    out = []
    for n, row in enumerate(every):
        parts = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            if header and n == 0:
                parts.append(paint(cell, "bold", stream) + ("" if last else " " * (widths[i] - len(cell))))
            elif i == status_column:
                parts.append(status(cell, 0 if last else widths[i], stream))
            else:
                parts.append(cell if last else cell.ljust(widths[i]))
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def stamp(moment: datetime | None = None) -> str:
    """The UTC timestamp that starts every ``run --every`` line: 2026-11-28T19:05:00Z."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Stamped:
    """A text stream whose every write starts with the UTC time: the console notifications of ``run --every``
    (a block per write) get the same timestamp lead as the status lines around them."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(f"{stamp()} {text}" if text else text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return is_tty(self.stream)


def print_json(doc: Any, stream: TextIO | None = None) -> None:
    """``--json`` output: indented, stable key order as the producer gives it, datetimes as strings."""
    print(json.dumps(doc, indent=2, default=str), file=stream or sys.stdout)


def error(command: str, message: str, fix: str | None = None) -> int:
    """One line on stderr, ``gatewatch COMMAND: error: MESSAGE (FIX)``, and the usage exit code 2."""
    tail = f"; {fix}" if fix else ""
    print(f"gatewatch {command}: error: {message}{tail}", file=sys.stderr)
    return EXIT_USAGE


def examples(*lines: str) -> str:
    """The epilog every ``--help`` ends with: one or two commands a newcomer can copy."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class Progress:
    """A one-line spinner with a message on stderr, shown on a terminal only; ``update`` changes the message."""

    FRAMES = "|/-\\"

    def __init__(self, message: str, stream: TextIO | None = None, interval_s: float = 0.1):
        self.stream = stream or sys.stderr
        self.message = message
        self.interval_s = interval_s
        self.active = is_tty(self.stream) and not os.environ.get("NO_COLOR")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def update(self, message: str) -> None:
        self.message = message

    def _spin(self) -> None:
        n = 0
        while not self._stop.wait(self.interval_s):
            took = time.monotonic() - self._started
            self.stream.write(f"\r\033[K{self.FRAMES[n % 4]} {self.message} ({took:.0f}s)")
            self.stream.flush()
            n += 1

    def __enter__(self) -> Progress:
        if self.active:
            self._thread = threading.Thread(target=self._spin, name="gatewatch-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()


@contextmanager
def progress(message: str, stream: TextIO | None = None) -> Iterator[Progress]:
    """``with progress("probing 40 targets") as p: ...`` shows a spinner on a terminal, nothing when piped."""
    with Progress(message, stream) as p:
        yield p
