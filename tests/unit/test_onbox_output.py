"""The script's guarantees, in-process: a broken or slow check cannot break the report; output stays bounded."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from gatewatch.onbox.checks import (
    applog,
    common,
    httpcheck,
    nginx,
    nginx_config,
    output,
    registry,
    resources,
    service,
    validate,
)


def _params(**extra):
    return validate.validate_params(dict({"service_manager": "command", "process_match": "gwtest-none"}, **extra))


@pytest.fixture
def only_checks(monkeypatch):
    registry.load_all()  # every family registered for good before the list is swapped for the test's own
    def install(*pairs):
        monkeypatch.setattr(registry, "CHECKS", list(pairs))

    return install


def test_a_check_that_raises_is_unknown_and_the_others_still_report(only_checks):
    def boom(ctx):
        raise RuntimeError("disk on fire")

    def fine(ctx):
        return registry.result("ok", {"x": 1}, ["fine"])

    only_checks(("boom", boom), ("fine", fine))
    report = registry.run_checks(_params())
    assert report["boom"] == {"status": "unknown", "value": {}, "evidence": [],
                              "error": "check raised RuntimeError: disk on fire"}
    assert report["fine"]["status"] == "ok"
    json.loads(output.bound_output(report))


def test_a_check_that_overruns_the_budget_is_unknown_timed_out(only_checks):
    def slow(ctx):
        time.sleep(5)
        return registry.result("ok", {})

    def waits_for_slow(ctx):
        other = ctx.wait_for("slow", reserve_s=0.2)
        return registry.result("ok", {"slow_seen": other is not None})

    only_checks(("slow", slow), ("waits", waits_for_slow))
    start = time.monotonic()
    report = registry.run_checks(_params(), budget_s=0.6)
    assert time.monotonic() - start < 2.0
    assert report["slow"] == {"status": "unknown", "value": {}, "evidence": [], "error": "timed out"}
    assert report["waits"]["value"] == {"slow_seen": False}
    assert report["meta"]["timed_out_checks"] == ["slow"]


def _huge_report():
    report = {"schema": 1, "meta": {"host": "h", "collected_at": "2026-11-25T13:00:00.000Z", "duration_ms": 1.0,
                                    "truncated": False, "python": "3.8.18"}}
    for name in ("service", "port", "app_log", "resources"):
        report[name] = {"status": "fail", "value": {"items": ["x" * 500] * 40, "note": "y" * 5000},
                        "evidence": ["e" * 2000] * 30, "error": "z" * 3000}
    report["nginx"] = {"status": "fail", "value": {"upstreams": [{"name": "u", "servers": ["s" * 300] * 50}]},
                       "evidence": ["n" * 900] * 20, "error": None, "primary_signature": "connection_refused",
                       "error_signatures": [{"signature": "other", "count": 1, "sample": "q" * 3000,
                                             "first": "", "last": "", "upstream": None}] * 19}
    return report


def test_oversized_reports_are_trimmed_evidence_first_and_stay_valid():
    text = output.bound_output(_huge_report())
    assert len(text) <= common.MAX_OUTPUT_CHARS
    doc = json.loads(text)
    assert doc["meta"]["truncated"] is True
    for name in ("service", "port", "app_log", "resources", "nginx"):
        assert {"status", "value", "evidence", "error"} <= set(doc[name])
        assert doc[name]["status"] == "fail"
    assert doc["nginx"]["primary_signature"] == "connection_refused"


def test_evidence_goes_before_values():
    report = _huge_report()
    for name in ("service", "port", "app_log", "resources"):
        report[name]["value"] = {"pid": 42}
        report[name]["error"] = None
    report["nginx"]["value"] = {"running": True}
    report["nginx"]["error_signatures"] = []
    doc = json.loads(output.bound_output(report))
    assert doc["meta"]["truncated"] is True
    assert doc["service"]["value"] == {"pid": 42}  # values untouched: trimming evidence was enough
    assert all(len(e) <= 200 for e in doc["service"]["evidence"])


def test_small_reports_are_untouched():
    report = {"schema": 1, "meta": {"truncated": False}, "service": registry.result("ok", {"pid": 1}, ["e"])}
    assert json.loads(output.bound_output(report)) == report


def test_params_defaults_match_the_config_defaults():
    from gatewatch.config import Host

    defaults = validate.validate_params({})
    host = Host()
    for key in ("service_manager", "backend_host", "backend_port", "health_path", "nginx_port", "nginx_bin",
                "nginx_error_log", "log_window_minutes"):
        assert defaults[key] == getattr(host, key), key


def test_localhost_upstream_matches_only_when_every_address_it_resolves_to_is_listened_on(monkeypatch):
    monkeypatch.setattr(nginx, "resolve_local", lambda name: ["::1", "127.0.0.1"] if name == "localhost" else [name])
    p = _params(backend_port=8000)
    target = {"host": "localhost", "port": 8000, "unix": None}
    assert nginx._target_matches(target, p, ["127.0.0.1"]) is False  # nginx also tries [::1]:8000 -> refused
    assert nginx._target_matches(target, p, ["127.0.0.1", "::1"]) is True
    assert nginx._target_matches(target, p, ["::"]) is True  # dual-stack wildcard
    assert nginx._target_matches({"host": "127.0.0.1", "port": 8000, "unix": None}, p, ["0.0.0.0"]) is True
    assert nginx._target_matches({"host": "127.0.0.1", "port": 8001, "unix": None}, p, ["0.0.0.0"]) is False
    # Backend down (no listeners known): compare with the configured address instead.
    assert nginx._target_matches({"host": "127.0.0.1", "port": 8000, "unix": None}, p, []) is True
    assert nginx._target_matches({"host": "10.0.0.5", "port": 8000, "unix": None}, p, []) is False


def test_pass_targets_expand_upstreams_and_parse_addresses():
    ups = [{"name": "app", "servers": ["127.0.0.1:8000", "[::1]:8000", "unix:/run/app.sock", "backend.internal"]}]
    assert nginx_config.pass_targets("http://app", ups) == [
        {"host": "127.0.0.1", "port": 8000, "unix": None}, {"host": "::1", "port": 8000, "unix": None},
        {"host": None, "port": None, "unix": "/run/app.sock"}, {"host": "backend.internal", "port": 80, "unix": None}]
    assert nginx_config.pass_targets("https://10.0.0.5/api/", ups) == [{"host": "10.0.0.5", "port": 443, "unix": None}]
    assert nginx_config.pass_targets("http://unix:/run/x.sock:/", ups) == [{"host": None, "port": None,
                                                                      "unix": "/run/x.sock"}]
    assert nginx_config.pass_targets("http://$upstream", ups)[0]["variable"] == "$upstream"


def test_app_log_scan_finds_the_runbook_causes():
    lines = [
        "INFO:     Started server process [1234]",
        "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address already in use",
    ]
    out = applog.scan_app_log(lines)
    assert out["address_in_use"] and out["last_exception"]["type"] == "OSError"
    out = applog.scan_app_log([
        "Traceback (most recent call last):",
        '  File "/srv/app/main.py", line 3, in <module>',
        "psycopg.OperationalError: connection failed: connection to server at \"127.0.0.1\", port 5432 failed: "
        "Connection refused",
    ])
    assert out["db_error"] and not out["address_in_use"] and not out["module_not_found"]
    assert out["last_exception"]["type"] == "OperationalError"
    assert out["last_exception"]["qualified_type"] == "psycopg.OperationalError"
    quiet = applog.scan_app_log(["INFO: all good"])
    assert {k: quiet[k] for k in ("last_exception", "address_in_use", "module_not_found", "db_error")} == {
        "last_exception": None, "address_in_use": False, "module_not_found": False, "db_error": False}
    assert quiet["worker_timeout"] is False and quiet["repeated_traceback"] is None and quiet["db_error_line"] is None


def test_a_crash_loop_that_ended_is_not_a_repeated_traceback():
    crash = ["Traceback (most recent call last):", '  File "/srv/app/main.py", line 1, in <module>',
             "ModuleNotFoundError: No module named 'gatewatch_lab_missing'"]
    healed = crash * 4 + ["INFO:     Started server process [42]", "INFO:     Waiting for application startup.",
                          "INFO:     Application startup complete."]
    assert applog.scan_app_log(healed)["repeated_traceback"] is None
    assert applog.scan_app_log(healed)["module_not_found"] is True  # what happened is still reported
    again = applog.scan_app_log(healed + ["INFO:     Shutting down", "INFO:     Finished server process [42]"]
                                + crash * 3)
    assert again["repeated_traceback"]["count"] == 3 and "ModuleNotFoundError" in again["repeated_traceback"]["line"]


def test_requests_failing_after_a_clean_start_are_not_a_crash_loop():
    request_error = ["ERROR:    Exception in ASGI application", "Traceback (most recent call last):",
                     '  File "/srv/app/main.py", line 9, in endpoint', "RuntimeError: boom"]
    lines = ["INFO:     Started server process [7]", "INFO:     Application startup complete."] + request_error * 5
    out = applog.scan_app_log(lines)
    assert out["repeated_traceback"] is None and out["last_exception"]["type"] == "RuntimeError"
    # the tail may not reach back to the start-up lines: the request's own header still tells
    chained = request_error[:-1] + ["KeyError: 'x'", "", "During handling of the above exception, another exception "
                                    "occurred:", "", "Traceback (most recent call last):", "RuntimeError: boom"]
    assert applog.scan_app_log((request_error + chained) * 3)["repeated_traceback"] is None


@pytest.mark.parametrize("line, pid, comm", [
    ("Out of memory: Killed process 4321 (uvicorn) total-vm:2097152kB, anon-rss:1048576kB, file-rss:0kB", 4321,
     "uvicorn"),
    ("Memory cgroup out of memory: Killed process 99 (python3) total-vm:10kB, anon-rss:5kB", 99, "python3"),
    ("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
     "task_memcg=/system.slice/app.service,task=gunicorn,pid=777,uid=33", 777, "gunicorn"),
])
def test_oom_kill_lines_name_the_victim(line, pid, comm):
    m = resources.OOM_RE.search(line)
    assert int(m.group(1) or m.group(4)) == pid and (m.group(2) or m.group(3)) == comm


def test_an_overrunning_check_keeps_what_it_had_found(only_checks):
    def slow(ctx):
        value, evidence = {"running": True, "found": ["a"]}, ["half way"]
        ctx.publish("slow", value, evidence)
        time.sleep(3)
        value["found"].append("b")
        return registry.result("ok", value, evidence)

    only_checks(("slow", slow))
    report = registry.run_checks(_params(), budget_s=0.4)
    assert report["slow"] == {"status": "unknown", "value": {"running": True, "found": ["a"]},
                              "evidence": ["half way"], "error": "timed out"}


@pytest.mark.parametrize("cmdline, conf, prefix, ours", [
    ("nginx: master process /usr/sbin/nginx -p /srv/lab/nginx -c conf/nginx.conf -g daemon off;",
     "/srv/lab/nginx/conf/nginx.conf", None, True),
    ("nginx: master process /usr/sbin/nginx -p /srv/lab/nginx/ -c conf/nginx.conf", None, "/srv/lab/nginx", True),
    ("nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf", "/etc/nginx/nginx.conf", None, True),
    ("nginx: master process /usr/sbin/nginx -p /srv/other/nginx -c conf/nginx.conf",
     "/srv/lab/nginx/conf/nginx.conf", "/srv/lab/nginx", False),
    ("nginx: master process /usr/sbin/nginx -g daemon on; master_process on;", "/srv/lab/nginx.conf", None, False),
])
def test_the_right_nginx_master_is_chosen(cmdline, conf, prefix, ours):
    assert nginx._master_is_ours(cmdline, conf, prefix) is ours


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on loopback with a throwaway self-signed certificate; yields (port, served SNI names)."""
    import http.server
    import shutil
    import ssl
    import subprocess
    import threading

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=api.example.com",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"host": self.headers["Host"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], names
    server.shutdown()
    server.server_close()


def test_https_to_nginx_on_443_speaks_tls_with_the_public_name(tls_server):
    port, names = tls_server
    h = httpcheck.http_check("127.0.0.1", port, "/x", host_header="api.example.com", tls=True, timeout=3)
    assert h["url"] == f"https://127.0.0.1:{port}/x"
    assert h["status"] == 200 and h["json"] == {"host": "api.example.com"}
    assert names == ["api.example.com"]
    plain = httpcheck.http_check("127.0.0.1", port, "/x", host_header="api.example.com", timeout=3)
    assert plain["status"] is None or plain["status"] == 400  # plain HTTP to a TLS port is not an answer


def test_tls_to_a_plain_http_port_is_a_tls_error():
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    h = httpcheck.http_check("127.0.0.1", srv.getsockname()[1], "/", tls=True, timeout=3)
    srv.close()
    assert h["status"] is None and h["error"].startswith("TLS failed")


def _kill(pid=4321, process="python3", memcg=None, at="2026-11-25T13:00:00.000Z"):
    return {"pid": pid, "process": process, "memcg": memcg, "at": at}


def _backend(started=None, cgroups=(), service=None, pids=(1,), manager="command", sigkills=(), result=None):
    return {"pids": set(pids), "names": {"python3"}, "cgroups": set(cgroups), "service": service, "started": started,
            "manager": manager, "sigkill_exits_at": list(sigkills), "result": result}


def test_oom_victim_attribution_needs_evidence_beyond_the_name():
    killed_at = datetime(2026, 11, 25, 13, 0, tzinfo=UTC).timestamp()
    is_backend = resources._oom_victim_is_backend
    assert is_backend(_kill(pid=1), _backend())  # by pid
    # By memory cgroup: the unit's name in it, or the backend's own (not the root) cgroup.
    assert is_backend(_kill(memcg="/system.slice/app.service"), _backend(service="app.service"))
    assert is_backend(_kill(memcg="/lab/app"), _backend(cgroups=["/lab/app"]))
    assert not is_backend(_kill(memcg="/"), _backend(cgroups=["/"]))
    # supervisor: the program's SIGKILL exit logged within seconds of the kill.
    assert is_backend(_kill(), _backend(manager="supervisor", sigkills=[killed_at + 1.0]))
    assert not is_backend(_kill(), _backend(manager="supervisor", sigkills=[killed_at + 300]))
    assert not is_backend(_kill(), _backend(manager="supervisor"))  # stopped by hand: someone else's python3
    # systemd: the unit's own Result says so.
    assert is_backend(_kill(), _backend(manager="systemd", result="oom-kill"))
    assert not is_backend(_kill(), _backend(manager="systemd", result="success"))
    # No manager: a same-named backend restarted right after the kill.
    assert is_backend(_kill(), _backend(started=killed_at + 2))
    assert not is_backend(_kill(), _backend(started=killed_at - 600))
    assert not is_backend(_kill(), _backend(started=killed_at + 600))
    assert not is_backend(_kill(), _backend(started=None))
    assert not is_backend(_kill(process="postgres"), _backend(started=killed_at + 2))


def test_oom_kills_merge_the_two_kernel_lines_of_one_kill():
    records = [
        (1000.0, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/gwtest,"
                 "task_memcg=/gwtest,task=python3,pid=18586,uid=0"),
        (1000.0, "Memory cgroup out of memory: Killed process 18586 (python3) total-vm:78044kB, anon-rss:65152kB"),
        (10.0, "Out of memory: Killed process 7 (old) total-vm:1kB"),
    ]
    assert resources.oom_kills(records, since=500.0) == [
        {"pid": 18586, "process": "python3", "memcg": "/gwtest", "at": "1970-01-01T00:16:40.000Z"}]


def test_a_down_supervisor_program_is_named_by_its_command_for_oom_attribution(tmp_path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[supervisord]\nlogfile=%(here)s/supervisord.log\n[program:app]\n"
                    "command=/srv/venv/bin/python3 -m uvicorn main:app\nstderr_logfile=%(here)s/%(program_name)s.err\n")
    assert service.supervisor_paths(str(conf), "app") == {
        "supervisord_log": f"{tmp_path}/supervisord.log", "stderr_log": f"{tmp_path}/app.err",
        "command": "/srv/venv/bin/python3 -m uvicorn main:app"}
    p = validate.validate_params({"service_manager": "supervisor", "service": "app", "supervisor_config": str(conf)})
    killed_at = datetime(2026, 11, 25, 13, 0, tzinfo=UTC).timestamp()
    backend = resources._backend_identity(p, {}, set(), None, {"sigkill_exits_at": [killed_at + 0.5]})
    assert backend["names"] == {"python3"} and backend["started"] is None
    assert resources._oom_victim_is_backend(_kill(memcg="/lab"), backend)
    nobody = resources._backend_identity(p, {}, set(), None, {})
    assert not resources._oom_victim_is_backend(_kill(memcg="/lab"), nobody)


def test_memory_cgroup_of_a_process_on_v1_and_v2_hosts():
    v1 = "9:name=systemd:/\n4:memory:/gatewatch-lab-1/app\n0::/\n"
    v1_joined = "5:cpuacct,cpu:/\n3:memory,hugetlb:/system.slice/app.service\n"
    v2 = "0::/system.slice/app.service\n"
    assert resources.parse_cgroup(v1) == "/gatewatch-lab-1/app"
    assert resources.parse_cgroup(v1_joined) == "/system.slice/app.service"
    assert resources.parse_cgroup(v2) == "/system.slice/app.service"
    assert resources.parse_cgroup("") is None
