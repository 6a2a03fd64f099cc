"""The application's log: exceptions, bind failures, missing modules, database errors."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os
import re
import time

from .common import APP_LOG_LINES, APP_LOG_TAIL_BYTES, FAIL, OK, UNKNOWN, _errtext, _short, read_tail, run_cmd
from .registry import check, result
from .service import supervisor_paths
from .trust import allowed_log

EXC_LINE_RE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Failure|Interrupt|Refused|Timeout))"
                         r"(?::\s*(.*))?$")
ADDRESS_IN_USE_RE = re.compile(r"address already in use|\[Errno 98\]|EADDRINUSE", re.I)
MODULE_NOT_FOUND_RE = re.compile(r"ModuleNotFoundError|No module named|ImportError", re.I)
DB_ERROR_RE = re.compile(r"OperationalError|InterfaceError|could not connect to server|connection to server at|"
                         r"password authentication failed|database \"[^\"]*\" does not exist|"
                         r"the database system is (starting up|shutting down)|too many clients already|"
                         r"asyncpg\.exceptions|psycopg\S*: connection|database: disconnected", re.I)
# gunicorn's arbiter: a worker that did not answer within --timeout, one that died, one booted (again).
GUNICORN_TIMEOUT_RE = re.compile(r"\bWORKER TIMEOUT \(pid:\d+\)")
GUNICORN_GONE_RE = re.compile(r"Worker \(pid:\d+\) (?:was sent \w+|exited)|\bWorker exiting \(pid: \d+\)")
GUNICORN_BOOT_RE = re.compile(r"\bBooting worker with pid: \d+")
WORKER_CHURN_BOOTS = 2  # workers booted again after a timeout or a death
UVICORN_BIND_RE = re.compile(r"\[Errno (\d+)\] (error while attempting to bind on address .*)$")


# uvicorn, and gunicorn's uvicorn workers, print this once the app has imported and its startup has run; the other
# lines mark a process ending or a new one beginning, before its app is imported
STARTUP_COMPLETE = "Application startup complete."
# a request's traceback follows one of these (uvicorn, gunicorn); a start-up traceback follows none
REQUEST_ERROR_RE = re.compile(r"Exception in ASGI application|Error handling request|Exception on /")
LOG_RECORD_RE = re.compile(r"^(?:INFO|WARNING|ERROR|DEBUG|CRITICAL):|^\[\d{4}-")
PROCESS_BOUNDARY_RE = re.compile(r"Finished server process|Started server process|Booting worker with pid|"
                                 r"Starting gunicorn|Shutting down")


def scan_app_log(lines) -> dict:
    """The last exception, the runbook's tell-tale causes, gunicorn's worker signals and repeated tracebacks."""
    out = {"last_exception": None, "address_in_use": False, "module_not_found": False, "db_error": False,
           "db_error_line": None, "worker_timeout": False, "worker_timeouts": 0, "workers_booted": 0,
           "worker_reboots": 0, "worker_churn": False, "repeated_traceback": None}
    # A crash loop repeats a start-up traceback; a request that fails logs one after a clean start-up, and must not
    # read as a loop: only tracebacks between a process boundary and the next clean start-up are counted.
    tracebacks, in_traceback, trouble_seen, started_ok, in_request = {}, False, False, False, False
    for line in lines:
        text = line.rstrip()
        if ADDRESS_IN_USE_RE.search(text):
            out["address_in_use"] = True
        if MODULE_NOT_FOUND_RE.search(text):
            out["module_not_found"] = True
        if DB_ERROR_RE.search(text):
            out["db_error"] = True
            out["db_error_line"] = _short(text.strip(), 300)
        if GUNICORN_TIMEOUT_RE.search(text):
            out["worker_timeout"] = True
            out["worker_timeouts"] += 1
            trouble_seen = True
        elif GUNICORN_GONE_RE.search(text):
            trouble_seen = True
        elif GUNICORN_BOOT_RE.search(text):
            out["workers_booted"] += 1
            out["worker_reboots"] += 1 if trouble_seen else 0
        if REQUEST_ERROR_RE.search(text):
            in_request = True  # until the next log record: chained tracebacks of one request stay the request's
        elif LOG_RECORD_RE.match(text):
            in_request = False
        if STARTUP_COMPLETE in text:
            # the app started cleanly after them: the tracebacks before this line are a loop that has ended
            tracebacks, in_traceback, started_ok = {}, False, True
        elif PROCESS_BOUNDARY_RE.search(text):
            started_ok = False
        if text.strip() == "Traceback (most recent call last):":
            in_traceback = True
        m = EXC_LINE_RE.match(text)
        if m and in_traceback and not started_ok and not in_request:
            key = _short(text.strip(), 300)
            tracebacks[key] = tracebacks.get(key, 0) + 1
        if m:
            in_traceback = False
            out["last_exception"] = {"type": m.group(1).split(".")[-1], "qualified_type": m.group(1),
                                     "message": _short(m.group(2) or "", 300), "line": _short(text.strip(), 400)}
            continue
        m = UVICORN_BIND_RE.search(text)
        if m:
            out["last_exception"] = {"type": "OSError", "qualified_type": "OSError",
                                     "message": _short("[Errno %s] %s" % (m.group(1), m.group(2)), 300),
                                     "line": _short(text.strip(), 400)}
    out["worker_churn"] = out["worker_reboots"] >= WORKER_CHURN_BOOTS
    if tracebacks:
        line, count = max(tracebacks.items(), key=lambda kv: kv[1])
        out["repeated_traceback"] = {"line": line, "count": count}
    return out


@check("app_log")
def check_app_log(ctx):
    p = ctx.p
    value = {"source": None, "last_exception": None, "address_in_use": False, "module_not_found": False,
             "db_error": False, "stale": None}
    evidence = []
    ctx.publish("app_log", value, evidence)
    lines, error = None, None
    window_s = p["log_window_minutes"] * 60
    candidates = []
    if p["app_log"]:
        why = allowed_log(p["app_log"], p["log_roots"])
        if why:
            error = "app_log not read: %s" % why
            evidence.append(error)
        else:
            candidates.append(("file", p["app_log"]))
    if p["service_manager"] == "supervisor" and p["service"]:
        paths = supervisor_paths(p["supervisor_config"], p["service"]) if p["supervisor_config"] else {}
        if paths.get("stderr_log"):
            candidates.append(("file", paths["stderr_log"]))
        candidates.append(("supervisorctl", p["service"]))
    if p["service_manager"] == "systemd" and p["service"]:
        candidates.append(("journalctl", p["service"]))
    for kind, where in candidates:
        if kind == "file":
            try:
                text, size = read_tail(where, APP_LOG_TAIL_BYTES)
                value["stale"] = time.time() - os.stat(where).st_mtime > window_s
            except OSError as exc:
                error = "cannot read %s: %s" % (where, _errtext(exc))
                evidence.append(error)
                continue
            lines, value["source"] = text.splitlines()[-APP_LOG_LINES:], where
            break
        if kind == "supervisorctl":
            conf = ["-c", p["supervisor_config"]] if p["supervisor_config"] else []
            res = run_cmd(ctx, ["supervisorctl"] + conf + ["tail", "-%d" % APP_LOG_TAIL_BYTES, where, "stderr"],
                          timeout=3.0, max_chars=APP_LOG_TAIL_BYTES)
            if res.ok:
                lines, value["source"] = res.out.splitlines()[-APP_LOG_LINES:], "supervisorctl tail %s stderr" % where
                break
            error = "supervisorctl tail: %s" % (res.error or _short(res.text(), 200))
        if kind == "journalctl":
            res = run_cmd(ctx, ["journalctl", "-u", where, "--since", "-%dmin" % p["log_window_minutes"], "-n",
                                str(APP_LOG_LINES), "--no-pager", "-o", "cat"], timeout=3.0)
            if res.ok:
                lines, value["source"] = res.out.splitlines(), "journalctl -u %s" % where
                value["stale"] = False
                break
            error = "journalctl: %s" % (res.error or _short(res.text(), 200))
    if lines is None:
        return result(UNKNOWN, value, evidence, error or "no app_log configured and no service manager log")
    found = scan_app_log(lines)
    evidence.append("%s: %d line(s) scanned" % (value["source"], len(lines)))
    if value["stale"]:
        evidence.append("%s not written in the last %d min: flags ignored" % (value["source"],
                                                                               p["log_window_minutes"]))
        value["last_exception"] = found["last_exception"]
        return result(OK, value, evidence)
    value.update(found)
    if found["last_exception"]:
        evidence.append("last exception: %s" % found["last_exception"]["line"])
    flags = [k for k in ("address_in_use", "module_not_found", "db_error", "worker_timeout") if found[k]]
    if flags:
        evidence.append("flags: %s" % ", ".join(flags))
    return result(FAIL if (flags or found["last_exception"]) else OK, value, evidence)
