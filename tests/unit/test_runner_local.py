"""LocalRunner: real subprocesses (and a real network namespace when root), bounded like SSM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from gatewatch.config import Host
from gatewatch.runner import ERROR, FAILED, SUCCESS, TIMED_OUT, LocalRunner, RunnerError
from gatewatch.runner.local import STDERR_LIMIT, STDOUT_LIMIT

LOCAL = Host(local=True)


def test_run_onbox_returns_the_report_on_stdout(tmp_path):
    runner = LocalRunner(python=sys.executable)
    params = {"service_manager": "command", "process_match": "gwtest-nothing-here", "backend_port": 1,
              "nginx_conf": str(tmp_path / "none.conf"), "nginx_error_log": str(tmp_path / "error.log")}
    res = runner.run_onbox(LOCAL, params, timeout_s=30)
    assert res.status == SUCCESS and res.ok and res.exit_code == 0 and res.error is None
    report = json.loads(res.stdout)
    assert report["service"]["value"]["running"] is False
    assert res.duration_ms > 0


def test_bad_params_fail_with_exit_2_and_an_error_document():
    res = LocalRunner(python=sys.executable).run_onbox(LOCAL, {"backend_port": "eighty"}, timeout_s=30)
    assert res.status == FAILED and res.exit_code == 2
    assert json.loads(res.stdout)["field"] == "backend_port"


def test_nonzero_exit_is_failed_with_output_kept():
    res = LocalRunner().run_argv(LOCAL, [sys.executable, "-c", "import sys; print('out'); "
                                         "print('err', file=sys.stderr); sys.exit(3)"], timeout_s=10)
    assert res.status == FAILED and res.exit_code == 3
    assert res.stdout == "out\n" and res.stderr == "err\n" and res.error == "exit code 3"


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pidfile)!r}, 'w').write(str(c.pid)); print('started', flush=True); time.sleep(60)")
    start = time.monotonic()
    res = LocalRunner().run_argv(LOCAL, [sys.executable, "-c", code], timeout_s=1.5)
    assert res.status == TIMED_OUT and res.exit_code is None
    assert "did not finish within 1.5s" in res.error
    assert res.stdout == "started\n"
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    end = time.monotonic() + 5
    while time.monotonic() < end and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the grandchild survived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def test_output_is_bounded_like_ssm():
    code = "import sys; sys.stdout.write('a' * 100000); sys.stderr.write('b' * 50000)"
    res = LocalRunner().run_argv(LOCAL, [sys.executable, "-c", code], timeout_s=10)
    assert res.status == SUCCESS
    assert res.stdout == "a" * STDOUT_LIMIT and res.stderr == "b" * STDERR_LIMIT


def test_missing_program_is_an_error_status():
    res = LocalRunner().run_argv(LOCAL, ["/nonexistent/gatewatch-tool"], timeout_s=5)
    assert res.status == ERROR and res.exit_code is None
    assert "cannot start /nonexistent/gatewatch-tool" in res.error


def test_remote_hosts_and_bad_argv_are_refused():
    remote = Host(instance_id="i-0123456789abcdef0")
    with pytest.raises(RunnerError, match="use the SSM runner"):
        LocalRunner().run_onbox(remote, {})
    with pytest.raises(RunnerError, match="non-empty list of strings"):
        LocalRunner().run_argv(LOCAL, [])
    with pytest.raises(RunnerError, match="timeout_s must be positive"):
        LocalRunner().run_argv(LOCAL, ["true"], timeout_s=0)


def test_netns_prefix():
    assert LocalRunner().prefix(Host(local=True, netns="gw-lab")) == ["ip", "netns", "exec", "gw-lab"]
    assert LocalRunner().prefix(LOCAL) == []


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    name = f"gwt-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"ip netns add failed here: {made.stderr.strip()}")
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_run_inside_a_network_namespace(netns):
    host = Host(local=True, netns=netns)
    code = "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))"
    res = LocalRunner().run_argv(host, [sys.executable, "-c", code], timeout_s=10)
    assert res.status == SUCCESS, res
    assert res.stdout.strip() == "['lo']"  # only the namespace's own loopback: we ran inside it
    report = LocalRunner(python=sys.executable).run_onbox(
        host, {"service_manager": "command", "process_match": "gwtest-none", "nginx_conf": "/nonexistent/n.conf"})
    assert report.status == SUCCESS
    assert json.loads(report.stdout)["port"]["value"]["listening"] is False
