"""Trust on the host: what a non-root user can write is never executed, read as configuration, or believed.

The checks run as root. A file is trusted only when it and every directory on the way to it (symlinks followed,
each link's own directory checked too) is owned by root (or by the user the checks run as) and writable by no one
else; a world-writable directory counts only when it is sticky and the entry in it is owned by root (no one else
can then replace it). A process is nginx's master only when /proc/PID/exe is an nginx binary and it runs as root
(or as this user). Its command line is never what decides.
"""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os
import stat

from .allowlist import NGINX_BIN_NAME, NGINX_BIN_PATHS, NGINX_EXE_NAMES, log_path_problem, log_root_problem

MAX_LINKS = 16


class Untrusted(Exception):
    """Why a path may not be used (a short sentence naming the offending path)."""


def _trusted_uids() -> tuple:
    return (0, os.geteuid())


def _check_dir(path: str, st) -> bool:
    """Is this directory safe to traverse? Returns whether it is sticky-and-open (the next entry must be ours)."""
    if not stat.S_ISDIR(st.st_mode):
        raise Untrusted("%s is not a directory" % path)
    if st.st_uid not in _trusted_uids():
        raise Untrusted("%s is owned by uid %d, not root" % (path, st.st_uid))
    group_w = bool(st.st_mode & stat.S_IWGRP) and st.st_gid != 0
    other_w = bool(st.st_mode & stat.S_IWOTH)
    if group_w or other_w:
        if st.st_mode & stat.S_ISVTX:
            return True
        raise Untrusted("%s is writable by %s" % (path, "everyone" if other_w else "group %d" % st.st_gid))
    return False


def _check_entry(path: str, st, sticky_parent: bool) -> None:
    if sticky_parent and st.st_uid not in _trusted_uids():
        raise Untrusted("%s is owned by uid %d in a world-writable directory" % (path, st.st_uid))


def trusted_path(path: str, want_dir: bool = False) -> str:
    """The real path of ``path`` when no non-root user could have written it or anything leading to it.

    ``want_dir``: ``path`` is a directory whose entries will be used (a glob, a prefix): no one else may write in
    it at all, sticky or not (they could add an entry between this check and its use).

    Raises Untrusted (or OSError when it does not exist or cannot be examined).
    """
    if not path.startswith("/"):
        raise Untrusted("%s is not an absolute path" % path)
    todo = [c for c in path.split("/") if c not in ("", ".")]
    current = "/"
    sticky = _check_dir("/", os.lstat("/"))
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            current = os.path.dirname(current) or "/"
            sticky = _check_dir(current, os.lstat(current))
            continue
        candidate = os.path.join(current, part)
        st = os.lstat(candidate)
        _check_entry(candidate, st, sticky)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise Untrusted("%s: too many symbolic links" % path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
                sticky = _check_dir("/", os.lstat("/"))
            todo = [c for c in target.split("/") if c not in ("", ".")] + todo
            continue
        if todo:
            sticky = _check_dir(candidate, st)
        elif want_dir:
            if _check_dir(candidate, st):
                raise Untrusted("%s is writable by everyone" % candidate)
        else:
            if stat.S_ISDIR(st.st_mode):
                raise Untrusted("%s is a directory" % candidate)
            if st.st_uid not in _trusted_uids():
                raise Untrusted("%s is owned by uid %d, not root" % (candidate, st.st_uid))
            if (st.st_mode & stat.S_IWGRP and st.st_gid != 0) or st.st_mode & stat.S_IWOTH:
                raise Untrusted("%s is writable by a non-root user" % candidate)
        current = candidate
    return current


def why_untrusted(path: str, want_dir: bool = False):
    """None when ``path`` is trusted, else the reason (missing files are a reason too)."""
    try:
        trusted_path(path, want_dir)
        return None
    except Untrusted as exc:
        return str(exc)
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def nginx_binary(name: str, which):
    """(path, None) for the nginx binary to run, or (None, reason): one of NGINX_BIN_PATHS, trusted."""
    if name == NGINX_BIN_NAME:
        found = which(name)
        if not found:
            return None, "%s not found" % name
    elif name in NGINX_BIN_PATHS:
        found = name
        if not os.path.exists(found):
            return None, "%s not found" % name
    else:
        return None, "%s is not one of the allowed nginx locations" % name
    real = os.path.realpath(found)
    if not any(_same_file(real, allowed) for allowed in NGINX_BIN_PATHS):
        return None, "%s resolves to %s, not one of the allowed nginx locations" % (found, real)
    reason = why_untrusted(found)
    if reason:
        return None, "not running %s: %s" % (found, reason)
    return found, None


def process_uids(pid: int):
    """The real, effective, saved and filesystem uids of a process (None when unreadable)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return tuple(int(x) for x in line.split()[1:5])
    except (OSError, ValueError):
        return None
    return None


def process_exe(pid: int):
    """What /proc/PID/exe points to (a replaced binary keeps its old path), or None when unreadable."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None
    return exe[: -len(" (deleted)")] if exe.endswith(" (deleted)") else exe


def is_nginx_exe(exe) -> bool:
    if not exe:
        return False
    return os.path.basename(exe) in NGINX_EXE_NAMES or exe in NGINX_BIN_PATHS


def verified_nginx_master(pid: int):
    """(True, None) when pid runs an nginx binary as root (or as this user); else (False, reason)."""
    uids = process_uids(pid)
    if uids is None:
        return False, "pid %d: uid unreadable" % pid
    if any(u not in _trusted_uids() for u in uids):
        return False, "pid %d runs as uid %d, not root" % (pid, uids[0])
    exe = process_exe(pid)
    if exe is None:
        if os.geteuid() != 0 and uids[0] == 0:
            return True, None  # we may not look inside root's process; a root process's argv is root's
        return False, "pid %d: executable unreadable" % pid
    if not is_nginx_exe(exe):
        return False, "pid %d runs %s, not nginx" % (pid, exe)
    return True, None


def allowed_log(path: str, roots=()) -> str | None:
    """None when a configured log path may be read (under /var/log or a trusted log root), else the reason."""
    good_roots = [r for r in roots if log_root_problem(r) is None and why_untrusted(r, want_dir=True) is None]
    problem = log_path_problem(path, good_roots)
    if problem:
        return problem
    real = os.path.realpath(path)
    if real != path and log_path_problem(real, [os.path.realpath(r) for r in good_roots]):
        return "%s resolves to %s, outside the log roots" % (path, real)
    return None
