"""One total deadline per attempt.

Each socket operation first checks the *remaining* budget (a per-recv timeout alone would let a server that
trickles one byte a second keep a probe alive for ever), and a single shared watchdog thread shuts the socket
down when the deadline passes, which wakes any call still blocked on it. The sockets block (``transport.py`` says
why), so the watchdog is what ends a stuck call. A call that began just after the shutdown (the budget checked,
then the deadline passed, then the call) is not woken by it: the watchdog shuts the socket down again every
``REFIRE_S`` for as long as it stays armed.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time


class DeadlineExceeded(Exception):
    """The attempt's total budget is spent."""


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def budget(self) -> float:
        """The timeout for the next blocking operation; raises when nothing is left."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded
        return left

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.start) * 1000


class SocketGuard:
    """Holds the attempt's current socket so the watchdog can shut it down; disarm before closing it.

    Disarming under the lock means the watchdog can never touch a file descriptor that was closed and reused.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.fired = False

    def arm(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shutdown(sock)

    def disarm(self) -> None:
        with self._lock:
            self._sock = None

    def close(self) -> None:
        """Disarm and close whatever socket is armed: the engine's last word, so no failure path leaks one."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def fire(self) -> bool:
        """Shuts the armed socket down; True while one is armed (the watchdog then fires again)."""
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shutdown(self._sock)
                return True
            return False


def _shutdown(sock: socket.socket) -> None:
    try:
        # The base-class method: SSLSocket.shutdown would also drop its SSL object under a reader's feet.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Watchdog:
    """One daemon thread and a heap of (when, token): cheap enough for thousands of attempts."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._pending: dict[int, object] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, callback) -> int:
        with self._cond:
            token = next(self._ids)
            self._pending[token] = callback
            heapq.heappush(self._heap, (when, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gatewatch-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == token:
                # Only a new earliest deadline needs the thread awake; deadlines mostly arrive in order, and
                # waking it for each probe cost a GIL hand-off a probe (benchmarks/README.md, HTTPS CPU).
                self._cond.notify()
            return token

    def cancel(self, token: int) -> None:
        with self._cond:
            self._pending.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._pending:
                    heapq.heappop(self._heap)  # cancelled
                if not self._heap:
                    self._cond.wait(5.0)
                    continue
                when, token = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                callback = self._pending.pop(token)
            try:
                again = callback()  # outside the lock; SocketGuard.fire takes its own lock
            except Exception:  # noqa: BLE001 - a failing callback must not stop the watchdog for everyone
                again = False
            if again is True:  # still armed: a call that started after the shutdown is ended by the next one
                self.schedule(time.monotonic() + REFIRE_S, callback)


WATCHDOG = Watchdog()
REFIRE_S = 0.1  # how often the watchdog shuts an expired attempt's socket down again while it stays armed


def guard_until(deadline: Deadline) -> tuple[SocketGuard, int]:
    guard = SocketGuard()
    token = WATCHDOG.schedule(deadline.end, guard.fire)  # the sockets block: the watchdog is what ends a stuck call
    return guard, token
