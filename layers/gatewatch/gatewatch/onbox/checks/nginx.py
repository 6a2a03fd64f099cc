"""The nginx check: master, configuration test, proxy targets against the backend, the error logs."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os
import re

from .common import FAIL, LOG_TAIL_BYTES, OK, UNKNOWN, _errtext, _short, read_tail, run_cmd, which
from .nginx_config import (
    MAX_ERROR_LOGS,
    _split_hostport,
    matching_server,
    parse_nginx_config,
    pass_targets,
    read_config_files,
    server_blocks,
)
from .nginx_log import classify_error_log
from .registry import check, result
from .sockets import covered, resolve_local
from .trust import allowed_log, nginx_binary, verified_nginx_master, why_untrusted
from .validate import _ip_or_localhost, _safe_path


def _nginx_processes(ctx):
    """(master, workers, number of nginx masters, why other "masters" were ignored).

    A command line only finds candidates (anyone can call a process "nginx: master process ... -c /tmp/x"); a
    master counts when /proc/PID/exe is an nginx binary and it runs as root (or as this user).
    """
    p = ctx.p
    procs = ctx.processes()
    masters, ignored = [], []
    for pr in sorted(procs.values(), key=lambda pr: pr["pid"]):
        if not pr["cmdline"].startswith("nginx: master process"):
            continue
        ok, why = verified_nginx_master(pr["pid"])
        if ok:
            masters.append(pr)
        else:
            ignored.append(why)
    if p["nginx_conf"] or p["nginx_prefix"]:
        chosen = [pr for pr in masters if _master_is_ours(pr["cmdline"], p["nginx_conf"], p["nginx_prefix"])]
    else:
        chosen = masters
    master = min(chosen, key=lambda pr: pr["pid"]) if chosen else None
    workers = []
    if master:
        workers = [pr for pr in procs.values() if pr["ppid"] == master["pid"] and
                   pr["cmdline"].startswith("nginx: worker process") and "shutting down" not in pr["cmdline"]]
    return master, workers, len(masters), ignored


def _master_paths(cmdline: str):
    """(prefix, config file) a master was started with, from "nginx: master process nginx -p P -c C ..."."""
    tokens = cmdline.split()
    prefix = conf = None
    for i, tok in enumerate(tokens[:-1]):
        if tok == "-p":
            prefix = tokens[i + 1]
        elif tok == "-c":
            conf = tokens[i + 1]
    if conf and not conf.startswith("/") and prefix:
        conf = os.path.join(prefix, conf)
    return prefix, conf


def _master_is_ours(cmdline: str, conf, prefix) -> bool:
    """Does this master run the configured nginx? Paths compare normalised (-p may lack its trailing slash)."""
    m_prefix, m_conf = _master_paths(cmdline)
    norm = os.path.normpath
    if conf and ((m_conf and norm(m_conf) == norm(conf)) or conf in cmdline):
        return True
    if prefix and ((m_prefix and norm(m_prefix) == norm(prefix)) or prefix in cmdline):
        return True
    return False


def _nginx_argv(p, master, binary=None):
    """nginx's -p/-c: the target's own (nginx_conf, nginx_prefix), else those of a verified master."""
    argv = [binary or p["nginx_bin"]]
    prefix, conf = p["nginx_prefix"], p["nginx_conf"]
    if master and not (prefix or conf):
        tokens = master["cmdline"].split()
        for flag in ("-p", "-c"):
            if flag in tokens[:-1]:
                val = tokens[tokens.index(flag) + 1]
                if _safe_path(val) or (flag == "-c" and re.fullmatch(r"[A-Za-z0-9._/+-]+", val)):
                    argv += [flag, val]
        return argv
    if prefix:
        argv += ["-p", prefix if prefix.endswith("/") else prefix + "/"]
    if conf:
        argv += ["-c", conf]
    return argv


def _target_matches(t, p, listen_ips):
    if t.get("unix") or t.get("host") is None or t.get("port") != p["backend_port"]:
        return False
    resolved = resolve_local(t["host"])
    if listen_ips:
        return bool(resolved) and all(covered(ip, listen_ips) for ip in resolved)
    backend = resolve_local(p["backend_host"])
    return t["host"] == p["backend_host"] or any(ip in backend for ip in resolved)


@check("nginx")
def check_nginx(ctx):
    p = ctx.p
    value = {"running": False, "master_pid": None, "workers": 0, "config_test_ok": None, "config_test_output": "",
             "upstreams": [], "proxy_pass": [], "targets": [], "matches_backend": None, "unix_sockets": [],
             "proxy_buffer_size": None, "config_newer_than_master": None, "listen": [], "config_files": []}
    evidence = []
    errors = []
    ctx.publish("nginx", value, evidence)
    try:
        master, workers, n_masters, ignored = _nginx_processes(ctx)
    except OSError as exc:
        master, workers, n_masters, ignored = None, [], 0, []
        errors.append("cannot read processes: %s" % _errtext(exc))
    if ignored:
        value["ignored_masters"] = ignored[:5]
        evidence.append("ignored %d process(es) titled nginx master: %s" % (len(ignored), ignored[0]))
    if master:
        value.update(running=True, master_pid=master["pid"], workers=len(workers),
                     master_cmdline=_short(master["cmdline"], 200))
        evidence.append("nginx master pid %d: %s (%d worker(s))" % (master["pid"], master["cmdline"], len(workers)))
    else:
        evidence.append("no nginx master process%s" % (" for this config (%d other master(s))" % n_masters
                                                         if n_masters else ""))
    binary, why_binary = nginx_binary(p["nginx_bin"], which)
    argv = _nginx_argv(p, master, binary)
    # Upstream errors go to the error_log of the server/location that proxied: read every log nginx writes to.
    log_paths = []
    why_log = allowed_log(p["nginx_error_log"], p["log_roots"])
    if why_log:
        errors.append("nginx_error_log not read: %s" % why_log)
    else:
        log_paths.append(p["nginx_error_log"])
    m_prefix = _master_paths(master["cmdline"])[0] if master else None
    if master and " -e " in master["cmdline"]:
        tokens = master["cmdline"].split()
        log_paths.append(tokens[tokens.index("-e") + 1])
    # Nothing a non-root user can write is run or read as configuration: the binary, the prefix, every file.
    prefix = argv[argv.index("-p") + 1] if "-p" in argv else None
    main = argv[argv.index("-c") + 1] if "-c" in argv else None
    if main is None and prefix is None and binary is not None:
        main = _compiled_conf_path(ctx, binary)
    main = main or (os.path.join(prefix, "conf/nginx.conf") if prefix else "/etc/nginx/nginx.conf")
    if not main.startswith("/") and prefix:
        main = os.path.join(prefix, main)
    refused = []
    if prefix:
        reason = why_untrusted(prefix, want_dir=True)
        if reason:
            refused.append(reason)
    files_text = read_config_files(main, prefix, refused=refused)
    conf_text = None
    if binary is None:
        errors.append("%s: config not tested" % why_binary)
    elif refused:
        value["untrusted_config"] = refused[:5]
        errors.append("nginx -t not run: %s" % refused[0])
        evidence.append("config not tested: %s" % refused[0])
    else:
        test = run_cmd(ctx, argv + ["-t"], timeout=3.0)
        if test.error:
            errors.append("nginx -t: %s" % test.error)
        elif not test.ok and "(13: Permission denied)" in test.text() and os.geteuid() != 0:
            # Not a broken config: this user may not open nginx's files. Say so instead of "invalid".
            value["config_test_output"] = _short(test.text(), 1000)
            errors.append("nginx -t needs root here (permission denied): config not judged")
        else:
            value["config_test_ok"] = test.ok
            value["config_test_output"] = _short(test.text(), 1000)
            evidence.append("nginx -t: %s" % _short(test.text().splitlines()[-1] if test.text() else "", 200))
            dump = run_cmd(ctx, argv + ["-T"], timeout=3.0, max_chars=1 << 20)
            if dump.ok:
                conf_text = dump.out
    if conf_text is None:
        # The same files nginx itself would read (only those no non-root user can write).
        conf_text = files_text
        if conf_text:
            evidence.append("config read from files (nginx -T unavailable)")
    if conf_text:
        conf = parse_nginx_config(conf_text)
        value["upstreams"] = conf["upstreams"][:20]
        value["proxy_pass"] = conf["proxy_pass"][:20]
        value["proxy_buffer_size"] = conf["proxy_buffer_size"]
        value["listen"] = conf["listen"][:10]
        value["config_files"] = conf["files"][:20]
        # Several sites: the one nginx picks for this Host and port decides (its error log, its proxy_pass).
        blocks = server_blocks(conf_text)
        site = matching_server(blocks, p["public_host"], p["nginx_port"])
        in_blocks = {log for b in blocks for log in b["error_logs"]}
        if site:
            value["server_block"] = {k: site[k] for k in ("server_name", "listen", "error_logs", "file")}
            log_paths = site["error_logs"] + log_paths
            evidence.append("site for %s:%d: server_name %s in %s" % (p["public_host"] or "*", p["nginx_port"],
                                                                     " ".join(site["server_name"][:3]) or "_",
                                                                     site["file"]))
        log_paths += [log for log in conf["error_logs"] if log not in in_blocks or not site]
        passes = site["proxy_pass"] if site and site["proxy_pass"] else conf["proxy_pass"]
        targets = []
        for url in passes:
            for t in pass_targets(url, conf["upstreams"]):
                if t not in targets:
                    targets.append(t)
        value["targets"] = targets[:20]
        port_result = ctx.wait_for("port", reserve_s=2.0)
        listen_ips = []
        if port_result and port_result["value"].get("listening"):
            listen_ips = [_split_hostport(a, 0)[0] for a in port_result["value"]["addresses"]]
        tcp_targets = [t for t in targets if t.get("host")]
        if p["backend_socket"]:
            # The backend is a unix socket: nginx must proxy to that very socket (unix:PATH), nothing else matches.
            want = os.path.realpath(p["backend_socket"])
            value["matches_backend"] = any(t.get("unix") and os.path.realpath(t["unix"]) == want for t in targets) \
                if targets else None
        elif tcp_targets:
            value["matches_backend"] = any(_target_matches(t, p, listen_ips) for t in tcp_targets)
        elif targets and all(t.get("unix") for t in targets):
            value["matches_backend"] = None
        else:
            value["matches_backend"] = False if not targets else None
        if any(t.get("host") == "localhost" for t in targets):
            value["localhost_resolves_to"] = resolve_local("localhost")
        for t in targets:
            if t.get("unix"):
                path = t["unix"]
                value["unix_sockets"].append({"path": path, "exists": os.path.exists(path)})
        shown = ", ".join(("unix:" + t["unix"]) if t.get("unix") else "%s:%s" % (t.get("host"), t.get("port"))
                          for t in targets[:5])
        evidence.append("proxies to %s; backend is %s" % (shown or "nothing", _backend_shown(p)))
        value["disk_upstreams"] = [_target_key(t) for t in targets if _target_key(t)][:10]
        if master:
            loaded_at = min([w["start"] for w in workers] or [master["start"]])
            newest = None
            for path in conf["files"]:
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                if newest is None or mtime > newest[0]:
                    newest = (mtime, path)
            if newest:
                value["config_newer_than_master"] = newest[0] > loaded_at + 1
                if value["config_newer_than_master"]:
                    evidence.append("%s changed after the running workers started: not loaded yet" % newest[1])
    # Read the error log last, after our own request through nginx: its error line is then evidence too.
    ctx.wait_for("local_endpoint", reserve_s=1.5)
    log = {"signatures": [], "primary": None}
    try:
        prefix = prefix or m_prefix
        log = _nginx_error_log(p, value, evidence, _log_candidates(log_paths, prefix))
    except Exception as exc:  # noqa: BLE001 - the log is one part; the rest of the check still reports
        value["error_log"] = {"path": p["nginx_error_log"], "readable": False, "error": _errtext(exc)}
    value["stale_config"] = stale_config(value, log.get("upstreams") or [])
    if value["stale_config"]["differs"]:
        evidence.append("the running nginx proxies to %s; the config on disk says %s" % (
            ", ".join(value["stale_config"]["running_upstreams"]), ", ".join(value["stale_config"]["disk_upstreams"])
            or "nothing"))
    failing = (not value["running"] or value["config_test_ok"] is False or value["matches_backend"] is False
               or any(not s["exists"] for s in value["unix_sockets"]))
    status = FAIL if failing else OK
    if not failing and value["config_test_ok"] is None and not conf_text:
        status = UNKNOWN
    return result(status, value, evidence, "; ".join(errors) or None,
                  error_signatures=log["signatures"], primary_signature=log["primary"])


def _backend_shown(p) -> str:
    return "unix:%s" % p["backend_socket"] if p["backend_socket"] else "%s:%d" % (p["backend_host"], p["backend_port"])


def _target_key(t):
    """``host:port`` or ``unix:PATH``: how the running config and the error log name an upstream alike."""
    if t.get("unix"):
        return "unix:" + t["unix"]
    if t.get("host") and t.get("port"):
        return "%s:%s" % (t["host"], t["port"])
    return None


def upstream_key(url: str):
    """The ``upstream: "..."`` of an error-log line as ``host:port`` or ``unix:PATH``."""
    rest = url.split("://", 1)[-1]
    if rest.startswith("unix:"):
        return "unix:" + rest[5:].split(":")[0]
    hostport = rest.split("/")[0]
    if not hostport:
        return None
    host, port = _split_hostport(hostport, 443 if url.startswith("https") else 80)
    return "%s:%s" % (host, port)


def stale_config(value: dict, log_upstreams: list) -> dict:
    """Is the running nginx using an older config than the one on disk? Its own words (the error log's upstream)
    against the disk (nginx -T), and the config files' mtimes against the workers' start."""
    running = []
    for url in log_upstreams:
        key = upstream_key(url)
        # Only addresses nginx dialled (an upstream block's name, as in "no live upstreams", says nothing)
        host = key.rsplit(":", 1)[0].strip("[]") if key else ""
        if key and key not in running and (key.startswith("unix:") or _ip_or_localhost(host)):
            running.append(key)
    disk = value.get("disk_upstreams") or []
    dialable = set()
    for key in disk:
        if key.startswith("unix:"):
            dialable.add(key)
            continue
        host, port = key.rsplit(":", 1)
        dialable.update("%s:%s" % (ip, port) for ip in resolve_local(host.strip("[]")) or [host])
    differs = bool(running and disk) and not any(r.replace("[", "").replace("]", "") in dialable for r in running)
    return {"config_newer_than_master": value.get("config_newer_than_master"), "running_upstreams": running[:5],
            "disk_upstreams": disk[:5], "differs": differs}


def _compiled_conf_path(ctx, binary):
    """The config file nginx reads without -c (``--conf-path`` of ``nginx -V``), or None."""
    res = run_cmd(ctx, [binary, "-V"], timeout=2.0)
    m = re.search(r"--conf-path=(\S+)", res.text()) if res.ok else None
    return m.group(1) if m and _safe_path(m.group(1)) else None


def _log_candidates(paths, prefix) -> list:
    """Distinct absolute, safe paths (relative ones are under the prefix), the configured one first."""
    out = []
    for path in paths:
        if not path.startswith("/"):
            if not prefix:
                continue
            path = os.path.join(prefix, path)
        path = os.path.normpath(path)
        if _safe_path(path) and path not in out:
            out.append(path)
    return out[:MAX_ERROR_LOGS]


def _nginx_error_log(p, value, evidence, paths):
    """Read and classify the error logs ``paths`` (already checked: configured under a log root, or nginx's own)."""
    info = {"path": paths[0] if paths else p["nginx_error_log"], "paths": [], "readable": False, "error": None,
            "lines_in_window": 0, "bytes_read": 0}
    value["error_log"] = info
    lines, errors = [], []
    for path in paths:
        try:
            text, size = read_tail(path, LOG_TAIL_BYTES)
        except OSError as exc:
            errors.append(_errtext(exc))
            continue
        if not info["readable"]:
            info.update(path=path, readable=True, size=size)
        info["paths"].append(path)
        info["bytes_read"] += min(size, LOG_TAIL_BYTES)
        lines += text.splitlines()
    if not info["readable"]:
        info["error"] = errors[0] if errors else "no error log"
        evidence.append("error log unreadable: %s" % info["error"])
        return {"signatures": [], "primary": None}
    if errors and p["nginx_error_log"] not in info["paths"]:
        info["error"] = errors[0]
    log = classify_error_log(lines, p["log_window_minutes"])
    info["lines_in_window"] = log["lines_in_window"]
    info["burst_start"] = log["burst_start"]
    if log["primary"]:
        first = [s for s in log["signatures"] if s["signature"] == log["primary"]][0]
        evidence.append("error log: %s x%d since %s: %s" % (log["primary"], first["count"], first["first"],
                                                            first["sample"]))
    return log
