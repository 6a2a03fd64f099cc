"""A small XML-RPC client for the lab's supervisord over its unix socket, with a deadline on every call.

``supervisorctl`` cannot start a program without waiting for it, and a crash-looping program is exactly the one
we must not wait for; the RPC interface can (``startProcess(name, False)``).
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from pathlib import Path
from typing import Any

RPC_TIMEOUT_S = 15.0
RUNNING_STATES = {"RUNNING"}


class SupervisorError(Exception):
    """supervisord is not reachable or refused a call (the message names the call and the fault string)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path, self._timeout = path, timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, self._timeout)


class Supervisor:
    def __init__(self, sock: Path, timeout_s: float = RPC_TIMEOUT_S):
        self.sock = Path(sock)
        self.timeout_s = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        proxy = xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=_UnixTransport(str(self.sock), self.timeout_s), allow_none=True
        )
        try:
            return getattr(proxy, method)(*args)
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"supervisor {method}{args}: {exc.faultString}") from None
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException) as exc:
            raise SupervisorError(f"supervisor {method}{args}: cannot reach {self.sock}: {exc}") from None

    def alive(self) -> bool:
        try:
            return self._call("supervisor.getState")["statename"] == "RUNNING"
        except SupervisorError:
            return False

    def programs(self) -> dict[str, dict[str, Any]]:
        """name -> {state, pid, description, exitstatus, spawnerr}"""
        out = {}
        for info in self._call("supervisor.getAllProcessInfo"):
            out[info["name"]] = {
                "state": info["statename"],
                "pid": info["pid"] or None,
                "description": info["description"],
                "exitstatus": info["exitstatus"],
                "spawnerr": info.get("spawnerr") or "",
            }
        return out

    def state(self, name: str) -> str:
        return self._call("supervisor.getProcessInfo", name)["statename"]

    def pid(self, name: str) -> int | None:
        return self._call("supervisor.getProcessInfo", name)["pid"] or None

    def start(self, name: str, wait: bool = True) -> None:
        """Start unless already running. ``wait=False`` returns at once (for programs expected to fail)."""
        try:
            self._call("supervisor.startProcess", name, wait)
        except SupervisorError as exc:
            if "ALREADY_STARTED" not in str(exc):
                raise

    def stop(self, name: str) -> None:
        try:
            self._call("supervisor.stopProcess", name, True)
        except SupervisorError as exc:
            if "NOT_RUNNING" not in str(exc):
                raise

    def restart(self, name: str, wait: bool = True) -> None:
        self.stop(name)
        self.start(name, wait)

    def signal(self, name: str, signal: str) -> None:
        self._call("supervisor.signalProcess", name, signal)

    def clear_log(self, name: str) -> None:
        self._call("supervisor.clearProcessLogs", name)

    def shutdown(self) -> None:
        self._call("supervisor.shutdown")
