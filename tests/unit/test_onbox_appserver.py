"""App servers found by process (issue 11): gunicorn (master + uvicorn or sync workers) and uvicorn, on a unix socket;
gunicorn's WORKER TIMEOUT / Booting worker churn read from its log; and a crash loop with no service manager (a shell
loop restarting a backend that dies on ModuleNotFoundError), inferred from the evidence."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.nginxconf import stop
from tests.unit.test_onbox_script import run_script

VENV_BIN = Path(sys.executable).parent
needs_gunicorn = pytest.mark.skipif(importlib.util.find_spec("gunicorn") is None, reason="needs gunicorn")

ASGI_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status": "healthy"}'})
'''

SLOW_WSGI_APP = '''
import time
def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(30)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"status": "healthy"}']
'''


def wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def params(tmp_path: Path, marker: str, sock: Path, **extra) -> dict:
    return dict({"service_manager": "command", "process_match": marker, "backend_socket": str(sock),
                 "nginx_conf": str(tmp_path / "none.conf"), "nginx_error_log": str(tmp_path / "none.log"),
                 "log_roots": [str(tmp_path)]}, **extra)


@needs_gunicorn
@pytest.mark.parametrize("server", ["gunicorn-uvicorn", "uvicorn"])
def test_gunicorn_with_uvicorn_workers_and_uvicorn_are_recognised(tmp_path, server):
    module = f"gwapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(ASGI_APP)
    sock = tmp_path / "app.sock"
    if server == "uvicorn":
        argv = [str(VENV_BIN / "uvicorn"), "--app-dir", str(tmp_path), "--uds", str(sock), f"{module}:app"]
    else:
        argv = [str(VENV_BIN / "gunicorn"), "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "--chdir",
                str(tmp_path), "--bind", f"unix:{sock}", f"{module}:app"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists)
        time.sleep(1.0 if server == "uvicorn" else 2.0)  # workers up, and older than a crash-looping process
        code, report, _ = run_script(params(tmp_path, module, sock))
    finally:
        stop(proc)
    sv = report["service"]["value"]
    assert sv["running"] is True and sv["pid"] == proc.pid, sv
    if server == "uvicorn":
        assert sv["app_server"] == "uvicorn"
    else:
        assert sv["app_server"] == "gunicorn" and sv["workers"] == 2
        assert sv["worker_class"] == "uvicorn.workers.UvicornWorker"
    assert sv["crash_loop"] is False
    assert report["local_health"]["status"] == "ok"
    assert report["port"]["value"]["owned_by_service"] is True


@needs_gunicorn
def test_gunicorn_worker_timeouts_and_reboots_are_read_from_its_log(tmp_path):
    module = f"gwslow_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(SLOW_WSGI_APP)
    sock, log = tmp_path / "app.sock", tmp_path / "gunicorn.log"
    proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-w", "1", "--timeout", "1", "--graceful-timeout", "1",
                             "--chdir", str(tmp_path), "--bind", f"unix:{sock}", "--error-logfile", str(log),
                             f"{module}:app"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists)
        for n in (1, 2):  # each request hangs its only worker: the arbiter kills it and boots another
            subprocess.run(["curl", "-s", "-m", "4", "--unix-socket", str(sock), "http://localhost/slow"],
                           capture_output=True, timeout=10)
            wait_for(lambda n=n: log.read_text().count("Booting worker") >= n + 1)
        code, report, _ = run_script(params(tmp_path, module, sock, app_log=str(log)))
    finally:
        stop(proc)
    av = report["app_log"]["value"]
    assert av["worker_timeout"] is True and av["worker_timeouts"] >= 2, av
    assert av["worker_reboots"] >= 2 and av["worker_churn"] is True
    assert report["app_log"]["status"] == "fail"


def test_a_crash_loop_without_a_service_manager_is_inferred(tmp_path):
    marker = f"gw_missing_{uuid.uuid4().hex[:8]}"
    log = tmp_path / "app.log"
    loop = tmp_path / "run.sh"  # a shell restart loop, as hosts without a manager have
    loop.write_text(f"while true; do {sys.executable} -c 'import {marker}' 2>>{log}; sleep 0.3; done\n")
    proc = subprocess.Popen(["sh", str(loop)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: log.exists() and log.read_text().count("ModuleNotFoundError") >= 3)
        code, report, _ = run_script(params(tmp_path, marker, tmp_path / "app.sock", app_log=str(log)))
    finally:
        stop(proc)
    sv = report["service"]["value"]
    assert sv["crash_loop"] is True, sv
    assert any("same traceback" in e or "became" in e for e in sv["crash_loop_evidence"])
    assert report["service"]["status"] == "fail"
    av = report["app_log"]["value"]
    assert av["module_not_found"] is True and av["repeated_traceback"]["count"] >= 3
    assert marker in av["repeated_traceback"]["line"]


def test_hypercorn_and_a_non_python_process_by_exe_and_argv(tmp_path):
    """hypercorn is named by argv once /proc/PID/exe is a python (as its console script runs); a process whose
    exe is not a python is never called an app server, whatever its argv says."""
    marker = f"gwhyper_{uuid.uuid4().hex[:8]}"
    script = tmp_path / "hypercorn"  # what a venv's bin/hypercorn is: a python script run by the interpreter
    script.write_text("import time\ntime.sleep(60)\n")
    hyper = subprocess.Popen([sys.executable, str(script), f"{marker}:app", "--bind", "unix:x.sock"])
    fake = subprocess.Popen([f"gunicorn {marker}x", "60"], executable="/bin/sleep")  # argv says gunicorn
    try:
        time.sleep(0.5)
        _, report, _ = run_script(params(tmp_path, f"{marker}:app", tmp_path / "x.sock"))
        _, other, _ = run_script(params(tmp_path, f"{marker}x", tmp_path / "x.sock"))
    finally:
        stop(hyper)
        stop(fake)
    assert report["service"]["value"]["app_server"] == "hypercorn" and report["service"]["value"]["pid"] == hyper.pid
    assert other["service"]["value"]["pid"] == fake.pid and other["service"]["value"]["app_server"] is None
