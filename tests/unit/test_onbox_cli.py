"""``gatewatch check`` end to end: config file -> params -> LocalRunner -> script -> report and exit code."""

from __future__ import annotations

import json
import os
import sys
import uuid

import pytest

from gatewatch.cli import main
from gatewatch.config import load_config_text
from gatewatch.onbox import decode_params, encode_params, onbox_params
from tests.unit.test_onbox_script import Procs, free_port, password_asking_database
from tests.unit.test_onbox_servers import NGINX, start_nginx

CONFIG = """
targets:
  - name: api
    url: https://api.example.com/api/v1/auth/demo-login?x=1
    method: POST
    body: '{{"user": "demo"}}'
    expect:
      status: [200]
    host:
      local: true
      service_manager: command
      process_match: {marker}
      backend_port: {backend}
      nginx_port: {nginx}
      nginx_conf: {d}/nginx.conf
      nginx_prefix: {d}
      nginx_error_log: {d}/error.log
      log_roots: [{d}]
      database: {{host: 127.0.0.1, port: {db}}}
  - name: nohost
    url: https://api.example.com/
"""


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def write_config(tmp_path, marker="gwtest-none", backend=1, nginx=2, db=3):
    path = tmp_path / "targets.yaml"
    path.write_text(CONFIG.format(marker=marker, backend=backend, nginx=nginx, d=tmp_path / "nginx", db=db))
    return path


def test_onbox_params_from_a_target(tmp_path):
    config = load_config_text(write_config(tmp_path).read_text())
    params = onbox_params(config.target("api"))
    assert params["endpoint_path"] == "/api/v1/auth/demo-login?x=1"
    assert params["endpoint_method"] == "POST" and params["endpoint_body"] == '{"user": "demo"}'
    assert params["public_host"] == "api.example.com" and params["expect_status"] == [200]
    assert params["database"] == {"host": "127.0.0.1", "port": 3, "kind": "postgresql"}  # kind from the port
    assert params["nginx_prefix"] == str(tmp_path / "nginx") and params["backend_port"] == 1
    assert decode_params(encode_params(params)) == params
    with pytest.raises(ValueError, match="has no host section"):
        onbox_params(config.target("nohost"))


def test_usage_errors_exit_2(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["check", "--config", str(path), "--target", "nope"]) == 2
    assert "no target 'nope'" in capsys.readouterr().err
    assert main(["check", "--config", str(path), "--target", "nohost"]) == 2
    assert "has no host section" in capsys.readouterr().err
    assert main(["check", "--config", str(tmp_path / "missing.yaml"), "--target", "api"]) == 2
    assert main(["check", "--config", str(path), "--target", "api", "--python", "/nonexistent/python3"]) == 2
    assert "could not run" in capsys.readouterr().err


@pytest.mark.skipif(NGINX is None or os.geteuid() != 0, reason="needs nginx (apt-get install nginx) and root")
def test_all_ok_exits_0_and_a_dead_backend_exits_1(tmp_path, procs, capsys):

    backend_port, nginx_port, marker = free_port(), free_port(), f"gwtest-{uuid.uuid4().hex[:8]}"
    backend = procs.backend(backend_port, "ok", marker)
    start_nginx(tmp_path / "nginx", backend_port, nginx_port, procs)
    # No unix-socket location in this nginx: every check can be ok.
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.write_text(conf.read_text().replace("location /sock/", "location /unused/").replace(
        f"proxy_pass http://unix:{tmp_path}/nginx/missing.sock:/;", "return 404;"))
    os.utime(conf, (0, 0))
    with password_asking_database() as db_port:
        path = write_config(tmp_path, marker, backend_port, nginx_port, db_port)
        argv = ["check", "--config", str(path), "--target", "api", "--python", sys.executable]
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0, out
        assert "FAIL" not in out
        assert "ok   service" in out and "ok   local_endpoint  direct 200" in out

        backend.kill()
        backend.wait()
        assert main([*argv, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
    assert report["service"]["status"] == "fail"
    assert report["local_endpoint"]["value"]["via_nginx"]["status"] == 502
    assert report["nginx"]["primary_signature"] == "connection_refused"
