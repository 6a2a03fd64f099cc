"""Process and service: systemd, supervisor, or a plain process matched by its command line."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import configparser
import datetime as _dt
import glob
import os
import re
import stat
import time

from .common import FAIL, LOG_TAIL_BYTES, OK, UNKNOWN, _errtext, _short, now_local, read_tail, run_cmd
from .procs import descendants, own_lineage, read_processes
from .registry import check, result
from .trust import process_exe, why_untrusted

SUPERVISOR_STATUS_RE = re.compile(r"^(\S+)\s+(RUNNING|STOPPED|STARTING|BACKOFF|STOPPING|EXITED|FATAL|UNKNOWN)\b\s*"
                                  r"(.*)$")
UPTIME_RE = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
SUPERVISORD_LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ (.*)$")
YOUNG_PROCESS_S = 10
CRASH_LOOP_RESTARTS = 2


def _supervisor_config(conf: str):
    """Parse a supervisord config with its includes; None when unreadable."""
    parser = configparser.RawConfigParser(strict=False)
    try:
        if not parser.read(conf):
            return None
    except configparser.Error:
        return None
    here = os.path.dirname(conf)
    if parser.has_section("include") and parser.has_option("include", "files"):
        for pattern in parser.get("include", "files").split():
            pattern = pattern.replace("%(here)s", here)
            if not pattern.startswith("/"):
                pattern = os.path.join(here, pattern)
            try:
                parser.read([f for f in sorted(glob.glob(pattern)) if why_untrusted(f) is None])
            except configparser.Error:
                pass
    return parser


def _supervisor_expand(value: str, here: str, program: str) -> str:
    value = value.replace("%(here)s", here).replace("%(program_name)s", program)
    value = re.sub(r"%\(process_num\)0?\d*d", "0", value)
    return re.sub(r"%\(ENV_(\w+)\)s", lambda m: os.environ.get(m.group(1), ""), value)


def _own_regular_file(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid())


def supervisor_paths(conf: str, program: str) -> dict:
    """Where supervisord writes its own log and the program's stderr (or merged stdout) log."""
    out = {"supervisord_log": None, "stderr_log": None, "command": None}
    parser = _supervisor_config(conf) if conf and why_untrusted(conf) is None else None
    if parser is None:
        return out
    here = os.path.dirname(conf)
    if parser.has_option("supervisord", "logfile"):
        out["supervisord_log"] = _supervisor_expand(parser.get("supervisord", "logfile"), here, program)
    section = "program:%s" % program.split(":")[-1]
    if parser.has_section(section):
        out["command"] = parser.get(section, "command", fallback=None)
        redirect = parser.get(section, "redirect_stderr", fallback="false").lower() in ("true", "1", "yes")
        key = "stdout_logfile" if redirect else "stderr_logfile"
        value = parser.get(section, key, fallback="AUTO")
        if value.upper() == "AUTO":
            childlogdir = parser.get("supervisord", "childlogdir", fallback="/tmp")  # noqa: S108  # nosec B108 - supervisor's
            childlogdir = _supervisor_expand(childlogdir, here, program)
            kind = "stdout" if redirect else "stderr"
            # AUTO logs have a random suffix: only files supervisord itself could have made (owned by root, or
            # by us), never one planted by another user in a shared directory such as /tmp.
            matches = [m for m in glob.glob(os.path.join(childlogdir, "%s-%s---supervisor-*.log" % (program, kind)))
                       if _own_regular_file(m)]
            value = max(matches, key=lambda p: os.path.getmtime(p)) if matches else None
        elif value.upper() == "NONE":
            value = None
        out["stderr_log"] = _supervisor_expand(value, here, program) if value else None
    return out


def supervisor_exits(log_path: str, program: str, window_minutes: int):
    """(count, [epoch of each SIGKILL death]) of ``program``'s unexpected exits in supervisord's log, in the window."""
    text, _ = read_tail(log_path, LOG_TAIL_BYTES)
    since = now_local() - _dt.timedelta(minutes=window_minutes)
    needle = "exited: %s (" % program.split(":")[-1]
    count, killed = 0, []
    for line in text.splitlines():
        m = SUPERVISORD_LOG_RE.match(line)
        if not m or needle not in m.group(2) or "not expected" not in m.group(2):
            continue
        try:
            when = _dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
        if when >= since:
            count += 1
            if "SIGKILL" in m.group(2):
                killed.append(time.mktime(when.timetuple()))  # supervisord writes local time
    return count, killed


def _service_supervisor(ctx, p, value, evidence):
    conf = p["supervisor_config"]
    reason = why_untrusted(conf) if conf else None
    if reason:
        return UNKNOWN, "supervisor_config not used: %s" % reason
    argv = ["supervisorctl"] + (["-c", conf] if conf else []) + ["status", p["service"]]
    res = run_cmd(ctx, argv, timeout=3.0)
    if res.error:
        return UNKNOWN, res.error
    line = ""
    for candidate in res.out.splitlines():
        m = SUPERVISOR_STATUS_RE.match(candidate.strip())
        if m and m.group(1).split(":")[-1] == p["service"].split(":")[-1]:
            line = candidate.strip()
            break
    evidence.append("supervisorctl status: %s" % (line or _short(res.text(), 200)))
    m = SUPERVISOR_STATUS_RE.match(line) if line else None
    if not m:
        return UNKNOWN, "supervisorctl gave no status for %s: %s" % (p["service"], _short(res.text(), 200))
    state, detail = m.group(2), m.group(3)
    value["state"] = state
    value["running"] = state == "RUNNING"
    pid_m = re.search(r"pid (\d+)", detail)
    value["pid"] = int(pid_m.group(1)) if pid_m else None
    if state == "STARTING" and value["pid"] is None:
        # status shows no pid while starting, but the process exists: ownership of the port depends on it.
        res_pid = run_cmd(ctx, argv[:-2] + ["pid", p["service"]], timeout=2.0)
        if res_pid.out.strip().isdigit() and int(res_pid.out.strip()) > 0:
            value["pid"] = int(res_pid.out.strip())
    up = UPTIME_RE.search(detail)
    if up:
        days = int(up.group(1) or 0)
        value["uptime_s"] = days * 86400 + int(up.group(2)) * 3600 + int(up.group(3)) * 60 + int(up.group(4))
    value["detail"] = _short(detail, 200)
    paths = supervisor_paths(conf, p["service"]) if conf else {"supervisord_log": None}
    value["supervisord_log"] = paths.get("supervisord_log")
    if paths.get("supervisord_log"):
        try:
            value["restarts_recent"], value["sigkill_exits_at"] = supervisor_exits(
                paths["supervisord_log"], p["service"], p["log_window_minutes"])
            value["sigkill_exits_at"] = value["sigkill_exits_at"][-5:]
            evidence.append("supervisord log: %d unexpected exit(s) of %s in the last %d min"
                            % (value["restarts_recent"], p["service"], p["log_window_minutes"]))
        except OSError as exc:
            evidence.append("supervisord log unreadable: %s" % _errtext(exc))
    restarts = value.get("restarts_recent") or 0
    young = value.get("uptime_s") is not None and value["uptime_s"] < YOUNG_PROCESS_S
    value["crash_loop"] = state in ("BACKOFF", "FATAL") or (state in ("STARTING", "EXITED") and restarts >= 1) \
        or (young and restarts >= 1) or (restarts >= CRASH_LOOP_RESTARTS and (value.get("uptime_s") or 0) < 60)
    return None, None


def _systemd_show(ctx, name):
    res = run_cmd(ctx, ["systemctl", "show", name, "--no-pager",
                        "-p", "ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStartTimestamp"], timeout=3.0)
    if res.error or not res.ok:
        return None, res.error or _short(res.text(), 200)
    props = dict(line.split("=", 1) for line in res.out.splitlines() if "=" in line)
    return props, None


def _service_systemd(ctx, p, value, evidence):
    props, err = _systemd_show(ctx, p["service"])
    if props is None:
        return UNKNOWN, "systemctl show failed: %s" % err
    evidence.append("systemctl show %s: %s" % (p["service"], " ".join("%s=%s" % kv for kv in sorted(props.items()))))
    state = "%s/%s" % (props.get("ActiveState"), props.get("SubState"))
    value["state"] = state
    value["running"] = props.get("ActiveState") == "active" and props.get("SubState") in ("running", "exited")
    pid = props.get("MainPID", "0")
    value["pid"] = int(pid) if pid.isdigit() and pid != "0" else None
    restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else None
    value["restarts_total"] = restarts
    value["result"] = props.get("Result")
    grew = False
    if not value["running"] or props.get("SubState") in ("auto-restart", "activating"):
        # One more look shortly after: a restart counter that moves is a loop in progress.
        time.sleep(min(1.5, max(0.0, ctx.remaining() - 2.0)))
        again, _ = _systemd_show(ctx, p["service"])
        if again and again.get("NRestarts", "").isdigit() and restarts is not None:
            grew = int(again["NRestarts"]) > restarts
            value["restarts_recent"] = int(again["NRestarts"]) - restarts
    value["crash_loop"] = props.get("SubState") == "auto-restart" or grew or \
        (props.get("ActiveState") == "failed" and (restarts or 0) >= 3)
    return None, None


def _match_process(ctx, pattern, fresh=False):
    procs = read_processes() if fresh else ctx.processes()
    mine = own_lineage(procs)
    # A shell is never the backend (a restart loop's own command line may contain the pattern too).
    matches = [pr for pid, pr in procs.items() if pattern in pr["cmdline"] and pid not in mine
               and pr["comm"] not in SHELLS]
    if not matches:
        return None, []
    pids = {pr["pid"] for pr in matches}
    roots = [pr for pr in matches if pr["ppid"] not in pids]
    root = min(roots or matches, key=lambda pr: (pr["start"], pr["pid"]))
    return root, matches


APP_SERVERS = ("gunicorn", "uvicorn", "hypercorn")
SHELLS = ("sh", "bash", "dash", "zsh", "ash", "ksh", "busybox")
CRASH_SAMPLES, CRASH_SAMPLE_GAP_S = 4, 0.5
REPEATED_TRACEBACKS = 3


def app_server(procs: dict, root: dict) -> dict:
    """What runs the backend, when it is python: gunicorn (master and workers), uvicorn or hypercorn.

    /proc/PID/exe must be a python; argv then only names the server (it chooses nothing that is run or read).
    """
    exe = process_exe(root["pid"]) or ""
    if not os.path.basename(exe).startswith("python"):
        return {"app_server": None}
    words = [w.rsplit("/", 1)[-1] for w in root["cmdline"].split()[:4]]
    name = next((s for s in APP_SERVERS if s in words or any(w.startswith(s + ":") for w in words)), None)
    out = {"app_server": name}
    if name in ("gunicorn", "uvicorn", "hypercorn"):
        children = [pr for pr in procs.values() if pr["ppid"] == root["pid"]]
        out["workers"] = len(children)
    if name == "gunicorn":
        kind = re.search(r"(?:-k|--worker-class)[ =](\S+)", root["cmdline"])
        out["worker_class"] = kind.group(1) if kind else "sync"
    return out


def _sample_restarts(ctx, pattern, first) -> list:
    """Sample the matched process a few times within the budget: a new pid or start time is a restart."""
    seen, notes = [(first["pid"], first["start"]) if first else None], []
    for _ in range(CRASH_SAMPLES - 1):
        if ctx.remaining() < 3.0:
            break
        time.sleep(CRASH_SAMPLE_GAP_S)
        root, _ = _match_process(ctx, pattern, fresh=True)
        now = (root["pid"], root["start"]) if root else None
        if now != seen[-1]:
            notes.append("process %s became %s within %.1fs" % (
                "pid %d" % seen[-1][0] if seen[-1] else "none", "pid %d" % now[0] if now else "none",
                CRASH_SAMPLE_GAP_S * len(seen)))
        seen.append(now)
    return notes


def _crash_loop_without_manager(ctx, p, value, root):
    """A crash loop inferred from evidence when no manager counts restarts."""
    evidence = []
    young = root is not None and time.time() - root["start"] < YOUNG_PROCESS_S
    if young:
        evidence.append("pid %d is %.1fs old" % (root["pid"], time.time() - root["start"]))
    if root is None or young:  # an old process is not restarting every few seconds: no need to wait and see
        evidence += _sample_restarts(ctx, p["process_match"], root)
    app = ctx.wait_for("app_log", reserve_s=1.0)
    repeated = ((app or {}).get("value") or {}).get("repeated_traceback") if app else None
    fresh = app is not None and (app.get("value") or {}).get("stale") is not True
    if repeated and fresh and repeated["count"] >= REPEATED_TRACEBACKS:
        evidence.append("the same traceback %d times in the app log: %s" % (repeated["count"], repeated["line"]))
    restarts = [e for e in evidence if " became " in e]
    loop = bool(restarts) or (bool(repeated and fresh and repeated["count"] >= REPEATED_TRACEBACKS)
                              and (young or root is None))
    value["crash_loop"] = loop
    value["crash_loop_evidence"] = evidence[:5]
    value["restarts_recent"] = len(restarts) if restarts else value.get("restarts_recent")


@check("service")
def check_service(ctx):
    p = ctx.p
    manager = p["service_manager"]
    value = {"manager": manager, "name": p["service"], "running": None, "state": None, "pid": None,
             "restarts_recent": None, "crash_loop": False, "uptime_s": None}
    evidence = []
    ctx.publish("service", value, evidence)
    if not p["service"] and not p["process_match"]:
        return result(UNKNOWN, value, error="no service or process_match configured")
    status, error = UNKNOWN, None
    if manager == "supervisor":
        status, error = _service_supervisor(ctx, p, value, evidence)
    elif manager == "systemd" and p["service"]:
        status, error = _service_systemd(ctx, p, value, evidence)
    if p["process_match"] and (manager == "command" or not p["service"] or value["running"] is None
                               or (value["running"] and value["pid"] is None)):
        root, matches = _match_process(ctx, p["process_match"])
        value["process_match"] = p["process_match"]
        if root:
            value.update(running=True, pid=root["pid"], state=value["state"] or "running (process match)")
            value["matched_pids"] = sorted(pr["pid"] for pr in matches)[:10]
            evidence.append("process %d matches %r: %s" % (root["pid"], p["process_match"],
                                                           _short(root["cmdline"], 160)))
            status = None
        elif manager == "command" or value["running"] is None:
            value.update(running=False, state=value["state"] or "no matching process")
            evidence.append("no process matches %r" % p["process_match"])
            status = None
    if value["pid"] and value.get("uptime_s") is None:
        proc = ctx.processes().get(value["pid"])
        if proc:
            value["uptime_s"] = round(time.time() - proc["start"], 1)
    if value["pid"]:
        tree = descendants(ctx.processes(), value["pid"])
        value["tree_pids"] = sorted(tree)[:50]
        proc = ctx.processes().get(value["pid"])
        value["process"] = proc["comm"] if proc else None
        if proc:
            value.update(app_server(ctx.processes(), proc))
    if manager == "command" and p["process_match"]:
        root = ctx.processes().get(value["pid"]) if value["pid"] else None
        _crash_loop_without_manager(ctx, p, value, root)
        if value["crash_loop"]:
            evidence.append("crash loop: %s" % "; ".join(value["crash_loop_evidence"][:2]))
    if status == UNKNOWN:
        return result(UNKNOWN, value, evidence, error)
    healthy = value["running"] and not value["crash_loop"]
    return result(OK if healthy else FAIL, value, evidence, error)
