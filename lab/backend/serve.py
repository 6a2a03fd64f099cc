"""Start the lab backend under uvicorn, listening where the lab's toggles say (normally 127.0.0.1:8000).

Supervisor runs ``python -m lab.backend.serve``; it replaces itself with uvicorn (``exec``), so the supervised pid
is the server's pid, as with a plain ``uvicorn`` command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lab.layout import BACKEND_PORT, WRONG_PORT, LabPaths, lab_dir
from lab.toggles import Toggles


def uvicorn_argv(paths: LabPaths, python: str = sys.executable) -> list[str]:
    toggles = Toggles(paths.toggles)
    repo_root = Path(__file__).resolve().parents[2]
    argv = [python, "-m", "uvicorn", "lab.backend.app:app", "--app-dir", str(repo_root), "--no-access-log"]
    if toggles.on("listen_unix"):
        return [*argv, "--uds", str(paths.app_socket)]
    port = WRONG_PORT if toggles.on("listen_wrong_port") else BACKEND_PORT
    return [*argv, "--host", "127.0.0.1", "--port", str(port)]


def main() -> None:
    paths = LabPaths(lab_dir())
    if Toggles(paths.toggles).on("memory_hog") and paths.memory_cgroup_file.exists():
        from lab.cgroup import join

        # uvicorn (exec'd below) inherits the cgroup, and so does every restart supervisor makes
        join(paths.memory_cgroup_file.read_text().strip(), os.getpid(), paths.run / "cgmem")
    argv = uvicorn_argv(paths)
    if "--uds" in argv:
        paths.app_socket.unlink(missing_ok=True)  # a stale socket file would make the bind fail
    os.execv(argv[0], argv)  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    main()
