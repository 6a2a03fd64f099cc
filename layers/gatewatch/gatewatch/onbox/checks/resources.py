"""Resources: disks, file descriptors, memory, and OOM kills of the backend."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import datetime as _dt
import os
import re
import time

from .common import FAIL, LOG_TAIL_BYTES, OK, UNKNOWN, _errtext, _short, read_file, run_cmd, utc_iso
from .procs import boot_time, descendants, pid_limits_fds
from .registry import check, result
from .service import supervisor_paths

OOM_RE = re.compile(r"(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)|"
                    r"oom-kill:.*?task=([^,\s]+),pid=(\d+)")
OOM_MATCH_S = 10  # a kill and the manager's record of a death this close together are one event
OOM_MEMCG_RE = re.compile(r"oom-kill:.*?task_memcg=([^,\s]*),task=([^,\s]+),pid=(\d+)")


def oom_kills(records, since: float) -> list:
    """[{pid, process, at, memcg}] of the kernel's OOM kills since ``since`` (records without a time count)."""
    kills = {}
    for when, text in records:
        m = OOM_RE.search(text)
        if not m or (when is not None and when < since):
            continue
        pid = int(m.group(1) or m.group(4))
        kill = kills.setdefault(pid, {"pid": pid, "process": m.group(2) or m.group(3), "memcg": None,
                                      "at": utc_iso(when) if when else None, "_when": when})
        cg = OOM_MEMCG_RE.search(text)
        if cg:
            kill["memcg"] = cg.group(1) or None
    out = list(kills.values())
    for kill in out:
        kill.pop("_when")
    return out


def _cgroup_of(pid: int):
    """The process's memory cgroup path: the v1 memory controller's line, else the v2 unified ('0::') line."""
    try:
        return parse_cgroup(read_file("/proc/%d/cgroup" % pid, 8192))
    except OSError:
        return None


def parse_cgroup(text: str):
    lines = text.splitlines()
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            return parts[2].strip()
    for line in lines:
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def _backend_identity(p, procs, backend_pids, svc_pid, service_value=None) -> dict:
    names = {procs[pid]["comm"] for pid in backend_pids if pid in procs}
    if p["process_match"]:
        names.add(os.path.basename(p["process_match"].split()[0])[:15])
    if p["service_manager"] == "supervisor" and p["supervisor_config"] and p["service"]:
        # The program's command names the process even while it is down (the usual state after an OOM kill).
        command = supervisor_paths(p["supervisor_config"], p["service"]).get("command")
        if command and command.split():
            names.add(os.path.basename(command.split()[0])[:15])
    cgroups = {cg for cg in (_cgroup_of(pid) for pid in backend_pids) if cg}
    started = [procs[pid]["start"] for pid in ([svc_pid] if svc_pid else []) if pid in procs]
    sv = service_value or {}
    return {"pids": set(backend_pids), "names": names, "cgroups": cgroups, "service": p["service"],
            "started": started[0] if started else None, "manager": p["service_manager"],
            "sigkill_exits_at": list(sv.get("sigkill_exits_at") or []), "result": sv.get("result")}


def _oom_victim_is_backend(kill: dict, backend: dict) -> bool:
    """Only on evidence that ties the kill to the backend: its pid; its memory cgroup (the unit's name in it, or
    the backend's own); its manager's record of the death (supervisord logged a SIGKILL exit within seconds of
    the kill; systemd's Result=oom-kill); or, with no manager to ask, a same-named backend restarted within
    seconds after the kill. A process name alone (python3) is not enough: other programs have it too."""
    if kill["pid"] in backend["pids"]:
        return True
    memcg = kill.get("memcg")
    if memcg and ((backend["service"] and backend["service"].split(".")[0] in memcg)
                  or (memcg in backend["cgroups"] and memcg != "/")):
        return True
    if kill["process"] not in backend["names"] and kill["process"] != (backend["service"] or "")[:15]:
        return False
    killed_at = None
    if kill["at"]:
        killed_at = _dt.datetime.strptime(kill["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=_dt.timezone.utc).timestamp()  # noqa: UP017 - the script runs on python 3.8
    if backend["manager"] == "supervisor":
        return killed_at is not None and any(abs(t - killed_at) <= OOM_MATCH_S for t in backend["sigkill_exits_at"])
    if backend["manager"] == "systemd":
        return backend.get("result") == "oom-kill"
    return killed_at is not None and backend["started"] is not None and \
        killed_at - 1 <= backend["started"] <= killed_at + OOM_MATCH_S


def read_kernel_messages(ctx, max_records: int = 50000):
    """(source, [(epoch or None, text)]) from /dev/kmsg (non-blocking), dmesg or journalctl -k."""
    btime = None
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        first_error = "/dev/kmsg: %s" % _errtext(exc)
    else:
        records = []
        try:
            btime = boot_time()
            os.lseek(fd, 0, os.SEEK_SET)
            while len(records) < max_records and ctx.remaining() > 1.0:
                try:
                    rec = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == 32:  # EPIPE: overwritten record; keep reading
                        continue
                    raise
                if not rec:
                    break
                head, _, msg = rec.decode("utf-8", "replace").partition(";")
                fields = head.split(",")
                when = btime + int(fields[2]) / 1e6 if len(fields) > 2 and fields[2].isdigit() else None
                records.append((when, msg.split("\n")[0]))
            return "/dev/kmsg", records
        except OSError as exc:
            first_error = "/dev/kmsg: %s" % _errtext(exc)
        finally:
            os.close(fd)
    res = run_cmd(ctx, ["dmesg"], timeout=2.0, max_chars=LOG_TAIL_BYTES)
    if res.ok:
        return "dmesg", [(None, line) for line in res.out.splitlines()]
    res2 = run_cmd(ctx, ["journalctl", "-k", "-n", "2000", "--no-pager", "-o", "cat"], timeout=2.0)
    if res2.ok:
        return "journalctl -k", [(None, line) for line in res2.out.splitlines()]
    raise OSError("kernel log unreadable: %s; dmesg: %s; journalctl: %s" % (
        first_error, res.error or _short(res.text(), 80), res2.error or _short(res2.text(), 80)))


@check("resources")
def check_resources(ctx):
    p = ctx.p
    value = {"mem_available_mb": None, "mem_total_mb": None, "swap_used_pct": None, "oom_kills": [],
             "oom_killed_backend": False, "disks": [], "disk_full": False, "fds": {"backend": None, "nginx": None},
             "fd_exhausted": False, "load1": None, "cores": None}
    evidence, errors = [], []
    ctx.publish("resources", value, evidence)
    try:
        mem = {}
        for line in read_file("/proc/meminfo").splitlines():
            k, _, v = line.partition(":")
            if v.strip().split()[0].isdigit():
                mem[k] = int(v.strip().split()[0])
        value["mem_total_mb"] = round(mem.get("MemTotal", 0) / 1024.0, 1)
        value["mem_available_mb"] = round(mem.get("MemAvailable", mem.get("MemFree", 0)) / 1024.0, 1)
        if mem.get("SwapTotal"):
            value["swap_used_pct"] = round(100.0 * (mem["SwapTotal"] - mem.get("SwapFree", 0)) / mem["SwapTotal"], 1)
        else:
            value["swap_used_pct"] = 0.0
        evidence.append("memory: %.0f MB available of %.0f MB" % (value["mem_available_mb"], value["mem_total_mb"]))
    except (OSError, ValueError, IndexError) as exc:
        errors.append("meminfo: %s" % _errtext(exc))
    try:
        load = read_file("/proc/loadavg").split()
        value["load1"] = float(load[0])
    except (OSError, ValueError, IndexError) as exc:
        errors.append("loadavg: %s" % _errtext(exc))
    try:
        value["cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        value["cores"] = os.cpu_count()
    # Disks: / plus the log and app directories and any configured paths, each filesystem once.
    paths = ["/", os.path.dirname(p["nginx_error_log"])]
    if p["app_log"]:
        paths.append(os.path.dirname(p["app_log"]))
    paths += p["extra_paths"]
    seen_dev = set()
    for path in paths:
        probe = path
        while probe != "/" and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        try:
            st = os.stat(probe)
            if st.st_dev in seen_dev:
                continue
            seen_dev.add(st.st_dev)
            vfs = os.statvfs(probe)
        except OSError as exc:
            errors.append("statvfs %s: %s" % (path, _errtext(exc)))
            continue
        used = vfs.f_blocks - vfs.f_bfree
        usable = used + vfs.f_bavail
        used_pct = round(100.0 * used / usable, 1) if usable else 0.0
        inodes_pct = round(100.0 * (vfs.f_files - vfs.f_ffree) / vfs.f_files, 1) if vfs.f_files else 0.0
        free_mb = round(vfs.f_bavail * vfs.f_frsize / 1048576.0, 1)
        full = used_pct >= 98 or inodes_pct >= 98 or (free_mb < 50 and vfs.f_blocks * vfs.f_frsize > 1 << 30)
        value["disks"].append({"path": probe, "used_pct": used_pct, "inodes_used_pct": inodes_pct,
                               "free_mb": free_mb, "full": full})
        if full:
            value["disk_full"] = True
            evidence.append("disk %s: %.1f%% used, %.1f%% inodes, %.0f MB free" % (probe, used_pct, inodes_pct,
                                                                                    free_mb))
    # File descriptors of the backend (all its processes) and nginx (master and workers), against their limits.
    service = ctx.wait_for("service")
    port = ctx.wait_for("port", reserve_s=0.8)
    backend_pids = set()
    svc_pid = ((service or {}).get("value") or {}).get("pid")
    try:
        procs = ctx.processes()
        if svc_pid:
            backend_pids |= descendants(procs, svc_pid)
        backend_pids |= set(((port or {}).get("value") or {}).get("pids") or [])
        nginx_pids = {pr["pid"] for pr in procs.values() if pr["cmdline"].startswith("nginx: ")}
    except OSError as exc:
        procs, nginx_pids = {}, set()
        errors.append("processes: %s" % _errtext(exc))
    for label, pids in (("backend", backend_pids), ("nginx", nginx_pids)):
        worst = None
        for pid in sorted(pids):
            try:
                open_fds, limit = pid_limits_fds(pid)
            except OSError as exc:
                errors.append("fds of %s pid %d: %s" % (label, pid, _errtext(exc)))
                continue
            ratio = open_fds / float(limit) if limit else 0.0
            if worst is None or ratio > worst[0]:
                worst = (ratio, {"pid": pid, "open": open_fds, "limit": limit})
        if worst:
            value["fds"][label] = worst[1]
            if worst[0] >= 0.95:
                value["fd_exhausted"] = True
                evidence.append("%s pid %d has %d of %s file descriptors open" % (
                    label, worst[1]["pid"], worst[1]["open"], worst[1]["limit"]))
    # OOM kills in the kernel log within the window, and whether the victim was the backend.
    try:
        source, records = read_kernel_messages(ctx)
        value["kernel_log"] = source
        kills = oom_kills(records, time.time() - p["log_window_minutes"] * 60)
        backend = _backend_identity(p, procs, backend_pids, svc_pid, ((service or {}).get("value") or {}))
        for kill in kills:
            kill["backend"] = _oom_victim_is_backend(kill, backend)
        value["oom_kills"] = kills[-10:]
        value["oom_killed_backend"] = any(k["backend"] for k in value["oom_kills"])
        if value["oom_kills"]:
            evidence.append("OOM kills: %s" % ", ".join("%s(%d)%s" % (k["process"], k["pid"], " = backend"
                                                                       if k["backend"] else "")
                                                         for k in value["oom_kills"]))
    except OSError as exc:
        value["oom_kills"] = None
        errors.append(_errtext(exc))
    if value["load1"] is not None and value["cores"]:
        evidence.append("load %.2f on %d core(s)" % (value["load1"], value["cores"]))
    low_memory = value["mem_total_mb"] and value["mem_available_mb"] is not None and \
        value["mem_available_mb"] < 0.03 * value["mem_total_mb"]
    bad = value["disk_full"] or value["fd_exhausted"] or value["oom_killed_backend"] or low_memory
    status = FAIL if bad else (OK if value["mem_total_mb"] is not None else UNKNOWN)
    return result(status, value, evidence, "; ".join(errors)[:600] or None)
