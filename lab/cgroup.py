"""A memory cgroup for the lab's backend, so the oom_kill fault is a real kernel OOM kill of a bounded process.

cgroup v1 (``/sys/fs/cgroup/memory``) or v2 (``/sys/fs/cgroup`` with the memory controller). The group is named
after the lab's namespace, holds only the lab's backend, and is removed on heal and down.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIX = "gatewatch-lab-"


class CgroupError(Exception):
    """No usable memory cgroup on this machine, or the kernel refused a write."""


class MemoryCgroup:
    def __init__(self, name: str):
        if not name.startswith(NAME_PREFIX):
            raise CgroupError(f"lab cgroups are named {NAME_PREFIX}*, got {name!r}")
        if (V1_ROOT / "memory.limit_in_bytes").exists():
            self.path, self.limit_file = V1_ROOT / name, "memory.limit_in_bytes"
        elif "memory" in _read(V2_ROOT / "cgroup.controllers").split():
            self.path, self.limit_file = V2_ROOT / name, "memory.max"
        else:
            raise CgroupError("no memory cgroup controller here (neither v1 /sys/fs/cgroup/memory nor v2 memory)")

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def create(self, limit_bytes: int) -> None:
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / self.limit_file).write_text(str(limit_bytes))
        except OSError as exc:
            raise CgroupError(f"cannot set up {self.path}: {exc}") from None

    def remove(self) -> None:
        """Remove the group once it is empty (a group with live processes cannot be removed)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()


def join(name: str, pid: int, mount_dir: Path) -> None:
    """Move ``pid`` into the lab cgroup ``name``.

    Inside ``ip netns exec`` the cgroup filesystems are not visible (it mounts a fresh /sys), so the hierarchy is
    mounted again at ``mount_dir``, in that private mount namespace only (the host's mount table never sees it).
    """
    if not name.startswith(NAME_PREFIX) or "/" in name:
        raise CgroupError(f"not a lab cgroup: {name!r}")
    for root in (V1_ROOT, V2_ROOT, mount_dir):
        procs = root / name / "cgroup.procs"
        if procs.exists():
            procs.write_text(f"{pid}\n")
            return
    v1 = any(line.split(":")[1] == "memory" for line in _read(Path("/proc/self/cgroup")).splitlines()
             if line.count(":") >= 2)
    argv = ["mount", "-t", "cgroup", "-o", "memory", "gatewatch-lab", str(mount_dir)] if v1 else \
        ["mount", "-t", "cgroup2", "gatewatch-lab", str(mount_dir)]
    mount_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    procs = mount_dir / name / "cgroup.procs"
    if done.returncode != 0 or not procs.exists():
        raise CgroupError(f"cannot reach cgroup {name}: {' '.join(argv)}: {done.stderr.strip() or 'not found'}")
    procs.write_text(f"{pid}\n")


def in_lab_cgroup() -> bool:
    """Whether this process is inside a lab memory cgroup (the memory hog refuses to run anywhere else)."""
    return NAME_PREFIX in _read(Path("/proc/self/cgroup"))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
