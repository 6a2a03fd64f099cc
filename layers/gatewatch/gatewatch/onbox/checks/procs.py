"""The process table from /proc: processes, their trees, this script's own lineage, fd usage."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os

from .common import read_file


def boot_time() -> float:
    for line in read_file("/proc/stat", 1 << 20).splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def read_processes() -> dict:
    """pid -> {pid, ppid, comm, state, cmdline, start (epoch s)} from /proc; processes we cannot read are skipped."""
    clk = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    btime = boot_time()
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            stat = read_file("/proc/%d/stat" % pid, 4096)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read(4096)
        except OSError:
            continue
        right = stat.rfind(")")
        rest = stat[right + 2:].split()
        if len(rest) < 20:
            continue
        procs[pid] = {
            "pid": pid,
            "ppid": int(rest[1]),
            "comm": stat[stat.find("(") + 1: right],
            "state": rest[0],
            "cmdline": cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
            "start": btime + int(rest[19]) / float(clk),
        }
    return procs


def descendants(procs: dict, root: int) -> set:
    children = {}
    for p in procs.values():
        children.setdefault(p["ppid"], []).append(p["pid"])
    seen, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def own_lineage(procs: dict) -> set:
    """This process and its ancestors: never mistaken for the backend by a process match."""
    pids, pid = set(), os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = procs.get(pid, {}).get("ppid", 0)
    return pids


def pid_limits_fds(pid: int):
    """(open fds, soft limit) of a process; raises OSError without permission."""
    open_fds = len(os.listdir("/proc/%d/fd" % pid))
    limit = None
    for line in read_file("/proc/%d/limits" % pid).splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files"):].split()[0]
            limit = None if soft == "unlimited" else int(soft)
    return open_fds, limit
