"""Start the lab backend the way the lab's topology says (uvicorn or gunicorn with uvicorn workers, on TCP or a
unix socket), listening where the lab's toggles say (normally 127.0.0.1:8000 or ``<dir>/run/sock/backend.sock``).

Supervisor (or the shell launcher) runs ``python -m lab.backend.serve``; it replaces itself with the server
(``exec``), so the started pid is the server's pid (gunicorn's master), as with a plain command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lab.layout import BACKEND_PORT, WRONG_PORT, LabPaths, lab_dir
from lab.toggles import Toggles
from lab.topology import Topology
from lab.topology import get as get_topology

GUNICORN_WORKERS = 2
GUNICORN_TIMEOUT_S = 10  # a worker whose event loop is blocked this long is killed: WORKER TIMEOUT


def _bind(paths: LabPaths, topo: Topology, toggles: Toggles) -> tuple[str, str | int]:
    """("unix", path) or ("tcp", port)."""
    moved = toggles.on("listen_moved")
    if toggles.on("listen_unix"):
        return ("unix", str(paths.app_socket))
    if topo.unix:
        return ("unix", str(paths.moved_socket if moved else paths.backend_socket))
    port = WRONG_PORT if toggles.on("listen_wrong_port") or moved else BACKEND_PORT
    return ("tcp", port)


def server_argv(paths: LabPaths, topo: Topology | None = None, python: str = sys.executable) -> list[str]:
    topo = topo or get_topology(os.environ.get("GATEWATCH_LAB_TOPOLOGY"))
    toggles = Toggles(paths.toggles)
    repo_root = paths.app_dir if paths.app_dir.is_dir() else Path(__file__).resolve().parents[2]
    kind, where = _bind(paths, topo, toggles)
    if topo.app_server == "gunicorn":
        bind = f"unix:{where}" if kind == "unix" else f"127.0.0.1:{where}"
        return [python, "-m", "gunicorn", "lab.backend.app:app", "--chdir", str(repo_root),
                "--worker-class", "uvicorn.workers.UvicornWorker", "--workers", str(GUNICORN_WORKERS),
                "--bind", bind, "--timeout", str(GUNICORN_TIMEOUT_S), "--graceful-timeout", "3",
                "--error-logfile", "-", "--log-level", "info"]
    argv = [python, "-m", "uvicorn", "lab.backend.app:app", "--app-dir", str(repo_root), "--no-access-log"]
    if kind == "unix":
        return [*argv, "--uds", str(where)]
    return [*argv, "--host", "127.0.0.1", "--port", str(where)]


def main() -> None:
    paths = LabPaths(lab_dir())
    if Toggles(paths.toggles).on("memory_hog") and paths.memory_cgroup_file.exists():
        from lab.cgroup import join

        # the server (exec'd below) inherits the cgroup, and so does every restart supervisor makes
        join(paths.memory_cgroup_file.read_text().strip(), os.getpid(), paths.run / "cgmem")
    argv = server_argv(paths)
    for i, arg in enumerate(argv):
        if arg == "--uds":
            Path(argv[i + 1]).unlink(missing_ok=True)  # a stale socket file would make uvicorn's bind fail
    os.execv(argv[0], argv)  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    main()
