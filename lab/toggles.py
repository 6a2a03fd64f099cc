"""Lab switches as files in the lab directory: the backend reads them per request (or at import), so injecting
and healing an application fault needs no restart unless the fault is about starting."""

from __future__ import annotations

from pathlib import Path

# name -> what the backend does while the file exists
TOGGLES = {
    "huge_header": "demo-login answers with a 16 KB X-Lab-Padding header (bigger than nginx's proxy buffer)",
    "raise_500": "demo-login raises an unhandled exception (500)",
    "crash_on_import": "the app imports a module that does not exist, so it dies at start-up",
    "fd_leak": "demo-login opens files until the process runs out of descriptors",
    "listen_unix": "the backend listens on a unix socket instead of 127.0.0.1:8000",
    "listen_wrong_port": "the backend listens on 127.0.0.1:8001 instead of 8000",
    "listen_moved": "the backend moved: 127.0.0.1:8001, or <dir>/run/sock/backend-v2.sock in the unix topologies",
    "block_loop": "every request blocks the server's event loop (time.sleep): accepted, never answered",
    "memory_hog": "the backend starts in the lab's memory cgroup; demo-login allocates until the OOM killer acts",
}


class Toggles:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def on(self, name: str) -> bool:
        return (self.directory / name).exists()

    def set(self, name: str, value: bool = True) -> None:
        if name not in TOGGLES:
            raise KeyError(f"unknown lab toggle {name!r}; known: {', '.join(TOGGLES)}")
        path = self.directory / name
        if value:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text("on\n")
        else:
            path.unlink(missing_ok=True)

    def active(self) -> list[str]:
        return [n for n in TOGGLES if self.on(n)]

    def clear(self) -> None:
        for name in TOGGLES:
            self.set(name, False)
