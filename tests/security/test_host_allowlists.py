"""Finding 5 (prober and document side): whoever writes the targets cannot choose what root runs or reads.

``nginx_bin`` is one of a fixed set of locations (gatewatch.hostpaths), enforced by the config, the remediation
path and the generated SSM remediation document (allowedPattern and its own shell, run here for real); log paths
sit under /var/log or a listed root that is not a system directory.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from gatewatch import hostpaths
from gatewatch.aws.ssm_documents import remediation_document
from gatewatch.config import ConfigError, Host, load_config_text
from gatewatch.remediation.checks_first import nginx_config_test
from gatewatch.remediation.commands import CommandError, remediation_params


def _load(host: str) -> None:
    load_config_text(f"targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    host: {host}\n")


def _errors(host: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(host)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", ["/tmp/evil/nginx", "/home/user/nginx", "/usr/sbin/nginx/../../tmp/x", "sh"])
def test_nginx_bin_outside_the_fixed_locations_is_refused_by_the_config(path):
    [problem] = _errors(f"{{local: true, nginx_bin: '{path}'}}")
    assert problem.startswith("targets[0].host.nginx_bin: must be nginx (found on root's PATH) or one of ")


def test_the_remediation_path_refuses_a_host_built_around_validation():
    hostile = Host.model_construct(**{**Host(service="app").model_dump(), "nginx_bin": "/tmp/evil/nginx"})
    with pytest.raises(CommandError, match="host.nginx_bin '/tmp/evil/nginx' is not one of nginx"):
        remediation_params("reload_proxy", hostile)
    with pytest.raises(CommandError):
        nginx_config_test(hostile)


def _script(params: dict[str, str]) -> str:
    doc = remediation_document()
    text = "\n".join(doc["mainSteps"][0]["inputs"]["runCommand"])
    defaults = {k: v.get("default", "") for k, v in doc["parameters"].items()}
    for name, value in {**defaults, **params}.items():
        text = text.replace("{{ " + name + " }}", value)
    return text


def test_the_document_pattern_and_its_shell_refuse_an_arbitrary_nginx_bin(tmp_path):
    pattern = remediation_document()["parameters"]["NginxBin"]["allowedPattern"]
    evil = tmp_path / "evil"
    marker = tmp_path / "ran-as-root"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    assert re.fullmatch(pattern, str(evil)) is None
    assert all(re.fullmatch(pattern, b) for b in hostpaths.NGINX_BINARIES)
    # SSM's pattern is the first gate; the document's own shell is the second: run it as if SSM had let it by.
    script = tmp_path / "doc.sh"
    script.write_text(_script({"Action": "reload_proxy", "ServiceManager": "systemd", "NginxBin": str(evil)}))
    run = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=20,
                         env={"PATH": "/usr/bin:/bin"})
    assert not marker.exists()
    assert run.returncode == 2 and "refused: nginx_bin must be one of nginx|/usr/sbin/nginx" in run.stderr


@pytest.mark.parametrize(("host", "message"), [
    ("{local: true, app_log: /etc/shadow}",
     "targets[0].host: app_log: '/etc/shadow' is not under /var/log; logs are read only from there "
     "(add a root to host.log_roots)"),
    ("{local: true, nginx_error_log: /root/.ssh/id_rsa}",
     "targets[0].host: nginx_error_log: '/root/.ssh/id_rsa' is not under /var/log; logs are read only from there "
     "(add a root to host.log_roots)"),
    ("{local: true, log_roots: [/], app_log: /etc/shadow}",
     "targets[0].host.log_roots: log root '/' would expose /etc, which holds no application logs"),
    ("{local: true, log_roots: [/etc/app], app_log: /etc/app/x.log}",
     "targets[0].host.log_roots: log root '/etc/app' would expose /etc, which holds no application logs"),
    ("{local: true, log_roots: [/var], app_log: /var/lib/app/db}",
     "targets[0].host.log_roots: log root '/var' would expose /var/run, which holds no application logs"),
])
def test_log_paths_outside_var_log_or_a_listed_root_are_refused(host, message):
    assert _errors(host) == [message]


def test_a_listed_application_root_is_accepted():
    _load("{local: true, log_roots: [/srv/app/logs], app_log: /srv/app/logs/app.log}")
    _load("{local: true, nginx_error_log: /var/log/nginx/error.log}")


def test_hostpaths_is_stdlib_only_so_the_onbox_package_can_vendor_it():
    source = open(hostpaths.__file__, encoding="utf-8").read()
    imports = re.findall(r"^(?:from|import) (\S+)", source, re.M)
    assert set(imports) <= {"posixpath", "re"}, imports
    assert os.path.basename(hostpaths.__file__) == "hostpaths.py"
