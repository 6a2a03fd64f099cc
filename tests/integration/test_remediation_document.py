"""The generated remediation document, run for real by the ssm_executor through SSMRunner.

systemctl, supervisorctl and nginx are stand-in programs on the instance's PATH that record their argv (this
machine has no systemd as PID 1 and the lab owns the real supervisord): what is under test is the document's own
shell (the case on the action, nginx -t before start/reload, the checks on every value), not the managers.
"""

from __future__ import annotations

import textwrap

import pytest
from botocore.exceptions import ClientError

from gatewatch.config.models import Target
from gatewatch.runner import FAILED, SUCCESS
from gatewatch.runner.exceptions import RunnerError
from gatewatch.runner.ssm import Backoff, SSMRunner

INSTANCE = "i-0fedcba9876543210"


@pytest.fixture
def box(aws, ssm_executor, tmp_path):
    """An instance whose service managers and nginx log their argv to calls.log; nginx -t fails when told to."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("systemctl", "supervisorctl", "nginx"):
        script = bin_dir / tool
        script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            echo "{tool} $*" >> "{calls}"
            if [ "{tool}" = nginx ] && [ -e "{tmp_path}/nginx-broken" ]; then
              echo "nginx: [emerg] unexpected end of file in /etc/nginx/nginx.conf:12" >&2; exit 1
            fi
            echo "{tool}: ok"
            """))
        script.chmod(0o755)
    ssm = aws.client("ssm")
    ssm_executor.add_instance(INSTANCE, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    _, remediation = ssm_executor.create_gatewatch_documents(ssm)
    runner = SSMRunner(client=ssm, remediation_document=remediation, backoff=Backoff(0.05, 2.0, 0.2))

    class Box:
        def calls(self) -> list[str]:
            return calls.read_text().splitlines() if calls.exists() else []

        def break_nginx(self) -> None:
            (tmp_path / "nginx-broken").touch()

    b = Box()
    b.ssm, b.runner, b.document = ssm, runner, remediation
    return b


def host(**kw):
    return Target(name="api", url="https://api.example.test/", host={"instance_id": INSTANCE, **kw}).host


def test_restart_backend_with_supervisor_uses_its_config(box):
    h = host(service="api", service_manager="supervisor", supervisor_config="/etc/gatewatch/supervisord.conf")
    result = box.runner.run_remediation(h, "restart_backend", {})
    assert result.status == SUCCESS, result.stderr
    assert box.calls() == [
        "supervisorctl -c /etc/gatewatch/supervisord.conf restart api",
        "supervisorctl -c /etc/gatewatch/supervisord.conf status api",
    ]


def test_restart_backend_with_systemd(box):
    result = box.runner.run_remediation(host(service="api.service"), "restart_backend", {})
    assert result.status == SUCCESS
    assert box.calls() == ["systemctl restart -- api.service", "systemctl is-active -- api.service"]


def test_start_proxy_tests_the_configuration_first(box):
    h = host(service="api", nginx_conf="/srv/lab/conf/nginx.conf", nginx_prefix="/srv/lab")
    result = box.runner.run_remediation(h, "start_proxy", {})
    assert result.status == SUCCESS
    assert box.calls() == ["nginx -t -p /srv/lab -c /srv/lab/conf/nginx.conf", "systemctl start -- nginx",
                           "systemctl is-active -- nginx"]


def test_reload_proxy_via_supervisor_is_a_hup_and_uses_the_proxy_program(box):
    h = host(service="api", service_manager="supervisor", proxy_service="edge-nginx")
    result = box.runner.run_remediation(h, "reload_proxy", {})
    assert result.status == SUCCESS
    assert box.calls() == ["nginx -t", "supervisorctl signal HUP edge-nginx", "supervisorctl status edge-nginx"]


def test_a_broken_nginx_configuration_stops_start_and_reload(box):
    box.break_nginx()
    for action in ("reload_proxy", "start_proxy"):
        result = box.runner.run_remediation(host(service="api"), action, {})
        assert (result.status, result.exit_code) == (FAILED, 3)
        assert "nginx -t failed: not running" in result.stderr and "unexpected end of file" in result.stdout
    assert box.calls() == ["nginx -t", "nginx -t"]  # never systemctl


def test_params_from_the_remediation_module_win_over_the_host(box):
    params = {"action": "restart_backend", "service": "worker", "service_manager": "supervisor",
              "proxy_service": "nginx", "supervisor_config": None, "argv": ["ignored"]}
    result = box.runner.run_remediation(host(service="api"), "restart_backend", params)
    assert result.status == SUCCESS
    assert box.calls()[0] == "supervisorctl restart worker"


def test_hostile_or_missing_values_never_reach_the_host(box):
    with pytest.raises(RunnerError, match="action must be one of restart_backend"):
        box.runner.run_remediation(host(service="api"), "reboot", {})
    with pytest.raises(RunnerError, match="service 'api; reboot'"):
        box.runner.run_remediation(host(service="api"), "restart_backend", {"service": "api; reboot"})
    with pytest.raises(RunnerError, match="restart_backend needs host.service"):
        box.runner.run_remediation(host(), "restart_backend", {})
    with pytest.raises(RunnerError, match="'command' hosts are local only"):
        box.runner.run_remediation(host(service="api"), "restart_backend", {"service_manager": "command"})
    assert box.calls() == []


@pytest.mark.parametrize("name,value", [
    ("Action", "kill_everything"), ("ServiceManager", "init.d"), ("Service", "-rf"), ("Service", "a b"),
    ("ProxyService", "nginx;id"), ("SupervisorConfig", "etc/relative.conf"), ("NginxConf", "/etc/$(id)"),
    ("NginxBin", "nginx -g x"),
])
def test_the_document_itself_rejects_unsafe_parameters(box, name, value):
    params = {"Action": ["restart_backend"], "Service": ["api"], name: [value]}
    with pytest.raises(ClientError, match="InvalidParameters"):
        box.ssm.send_command(DocumentName=box.document, InstanceIds=[INSTANCE], Parameters=params)
    assert box.calls() == []


def test_the_script_refuses_dot_dot_paths_even_when_the_pattern_lets_them_through(box):
    params = {"Action": ["restart_backend"], "Service": ["api"], "ServiceManager": ["supervisor"],
              "SupervisorConfig": ["/etc/../tmp/evil.conf"]}
    sent = box.ssm.send_command(DocumentName=box.document, InstanceIds=[INSTANCE], Parameters=params)
    result = box.runner._run(host(service="api"), box.document, params, 30)  # noqa: SLF001 - same path, raw params
    assert result.status == FAILED and result.exit_code == 2 and "unsafe path" in result.stderr
    assert sent["Command"]["CommandId"] and box.calls() == []
