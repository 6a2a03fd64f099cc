"""Issue 10, finding 1: a process anyone can start and name "nginx: master process nginx -c /tmp/evil.conf" must
not be taken for nginx's master: its -c is never run with ``nginx -t`` as root, its -e never read, and it never
makes nginx look alive.

Each scenario runs the real on-box zipapp inside a private PID namespace (``unshare --pid --mount-proc``), so the
fake is the only "nginx master" the checks can see, whatever else runs on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pytest

from gatewatch.onbox import encode_params, script_path
from tests.nginxconf import nginx_conf

NGINX = "/usr/sbin/nginx"
NOBODY = 65534

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not os.path.exists(NGINX),
    reason="needs root, unshare (util-linux) and nginx",
)

# Runs inside the namespace: start the attacker's process as nobody, run the checks, report both.
DRIVER = r'''
import json, subprocess, sys, time
mode, evil, zipapp, word = sys.argv[1:5]
if mode == "title":
    title = "nginx: master process nginx -c %s/evil.conf -e %s/fake-error.log" % (evil, evil)
    fake = subprocess.Popen([title, "300"], executable="/bin/sleep", user=65534, group=65534)
else:
    fake = subprocess.Popen(["/usr/sbin/nginx", "-c", evil + "/evil.conf", "-g", "daemon off;"], user=65534,
                            group=65534, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    with open("/proc/%d/cmdline" % fake.pid, "rb") as f:
        if f.read().startswith(b"nginx: master process"):
            break
    time.sleep(0.05)
out = subprocess.run([sys.executable, zipapp, word], capture_output=True, text=True, timeout=60)
fake.terminate()
fake.wait(10)
print(json.dumps({"fake_pid": fake.pid, "code": out.returncode, "stdout": out.stdout, "stderr": out.stderr}))
'''

EVIL_SERVER = "    server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://127.0.0.1:9; }} }}"


@pytest.fixture
def evil_dir():
    """A directory the attacker (nobody) owns, as /tmp/anything would be."""
    path = Path(tempfile.mkdtemp(prefix="gw-evil-", dir="/tmp"))  # noqa: S108 - the attacker's place, on purpose
    (path / "t").mkdir()
    for p in (path, path / "t"):
        os.chown(p, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_in_pid_namespace(mode: str, evil: Path, tmp_path: Path) -> tuple[int, dict]:
    port = 20000 + os.getpid() % 20000
    conf = evil / "evil.conf"
    conf.write_text(nginx_conf(evil, EVIL_SERVER.format(port=port), error_log=f"{evil}/ran-by-nginx-t.log"))
    os.chown(conf, NOBODY, NOBODY)
    forged = datetime.now().strftime("%Y/%m/%d %H:%M:%S")
    fake_log = evil / "fake-error.log"
    fake_log.write_text(f"{forged} [crit] 1#1: *1 connect() to 127.0.0.1:8000 failed (13: Permission denied) while "
                        "connecting to upstream, client: 127.0.0.1, server: _\n")
    os.chown(fake_log, NOBODY, NOBODY)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    params = {"service_manager": "command", "process_match": "gwtest-none", "backend_port": 9,
              "nginx_port": 9, "nginx_error_log": "/var/log/nginx/gatewatch-test-none.log"}
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(driver), mode, str(evil),
                           str(script_path()), encode_params(params)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["code"] == 0, out["stderr"]
    return out["fake_pid"], json.loads(out["stdout"])


def assert_not_steered(fake_pid: int, report: dict, evil: Path) -> None:
    nginx = report["nginx"]
    value = nginx["value"]
    assert value["master_pid"] != fake_pid and value["running"] is False, value
    assert not (evil / "ran-by-nginx-t.log").exists() or (evil / "ran-by-nginx-t.log").stat().st_uid == NOBODY
    assert not any(str(evil) in f for f in value.get("config_files", [])), value.get("config_files")
    assert str(evil) not in (value.get("config_test_output") or "")
    assert any(f"pid {fake_pid}" in why for why in value.get("ignored_masters", [])), value.get("ignored_masters")


def test_a_fake_master_title_steers_nothing(evil_dir, tmp_path):
    fake_pid, report = run_in_pid_namespace("title", evil_dir, tmp_path)
    assert_not_steered(fake_pid, report, evil_dir)
    # nginx -t was never run on the attacker's file as root (it would have created this log as root)
    assert not (evil_dir / "ran-by-nginx-t.log").exists()
    # and the attacker's -e log was not read: its forged permission_denied is nowhere
    nginx = report["nginx"]
    assert str(evil_dir / "fake-error.log") not in nginx["value"]["error_log"]["paths"]
    assert "permission_denied" not in {s["signature"] for s in nginx["error_signatures"]}


def test_the_real_nginx_binary_run_by_nobody_is_not_the_master(evil_dir, tmp_path):
    """/proc/PID/exe is nginx here, and the uid is what gives it away."""
    fake_pid, report = run_in_pid_namespace("binary", evil_dir, tmp_path)
    assert_not_steered(fake_pid, report, evil_dir)
    assert "not root" in " ".join(report["nginx"]["value"]["ignored_masters"])
