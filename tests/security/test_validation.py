"""Finding 7 (prober side): host.commands allow no interpreter or wrapper, header values must be sendable, and
JSON from a probed server, the on-box report or a facts file is bounded: deep nesting never raises RecursionError.
"""

from __future__ import annotations

import json

import pytest

from gatewatch.cli import main
from gatewatch.config import ConfigError, load_config_text
from gatewatch.facts import parse_report
from gatewatch.probe import Expectations, probe_url
from gatewatch.safejson import JsonError, loads
from tests.servers import Reply, http_server

DEEP = "[" * 100_000 + "]" * 100_000


def _commands(argv: list[str], extra: str = "") -> list[str]:
    text = ("targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    host:\n      local: true\n"
            f"      service_manager: command\n{extra}      commands: {{restart_backend: {json.dumps(argv)}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("argv", [
    ["timeout", "60", "/bin/sh", "x"],
    ["/usr/bin/timeout", "60", "systemctl", "restart", "app"],
    ["nohup", "systemctl", "restart", "app"],
    ["nice", "-n", "5", "python3", "-c", "print(1)"],
    ["sudo", "-u", "app", "appctl"],
    ["/usr/bin/python3.11", "-m", "http.server"],
    ["systemctl", "restart", "app", "perl"],
    ["stdbuf", "-o0", "appctl"],
    ["setsid", "appctl"],
    ["chroot", "/", "appctl"],
])
def test_host_commands_refuse_interpreters_and_wrappers_anywhere_in_argv(argv):
    [problem] = _commands(argv, extra="      allowed_programs: [appctl]\n")
    assert problem.startswith("targets[0].host.commands: restart_backend: ")
    assert "shell" in problem or "interpreter" in problem


@pytest.mark.parametrize("program", ["/tmp/systemctl", "appctl", "/opt/app/bin/ctl", "docker"])
def test_host_commands_programs_come_from_an_allow_list(program):
    [problem] = _commands([program, "restart"])
    assert "not an allowed program" in problem or "shell" in problem


def test_an_interpreter_cannot_be_allow_listed():
    text = ("targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    host: {local: true, service_manager: command, "
            "allowed_programs: [/usr/bin/env]}\n")
    with pytest.raises(ConfigError, match="interpreter, shell or wrapper"):
        load_config_text(text)


def test_service_managers_and_listed_programs_pass():
    for argv, extra in ((["systemctl", "restart", "{service}"], ""), (["/usr/bin/supervisorctl", "restart", "x"], ""),
                        (["/opt/app/bin/ctl", "restart"], "      allowed_programs: [/opt/app/bin/ctl]\n")):
        text = ("targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    host:\n      local: true\n      service: s\n"
                f"      service_manager: command\n{extra}      commands: {{restart_backend: {json.dumps(argv)}}}\n")
        load_config_text(text)


@pytest.mark.parametrize("value", ["caf\u00e9 \u2603", "\u4f60\u597d"])
def test_a_header_value_that_is_not_latin1_is_refused_at_load_not_at_every_probe(value):
    text = f"targets:\n  - name: a\n    url: http://127.0.0.1:1/\n    headers: {{X-Name: '{value}'}}\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert str(info.value.problems[0]).startswith(
        "targets[0].headers.X-Name: header value")
    assert "outside Latin-1" in str(info.value.problems[0])


def test_deeply_nested_json_from_a_probed_server_is_an_assertion_failure_not_a_crash():
    with http_server({"/": Reply(200, DEEP, {"Content-Type": "application/json"})}) as server:
        result = probe_url(server.url("/"), expect=Expectations(json={"a": 1}), timeout_s=5)
    assert result.reason == "assertion_failed", result.error
    assert "RecursionError" not in (result.error or "")
    assert result.http.json is None


def test_deeply_nested_onbox_output_is_not_a_report():
    assert parse_report('{"schema": 1, "meta": {}, "x": ' + DEEP + "}") is None


def test_a_deep_facts_file_is_a_usage_error(tmp_path, capsys):
    facts = tmp_path / "facts.json"
    facts.write_text('{"outside": ' + DEEP + "}")
    assert main(["diagnose", "--facts", str(facts)]) == 2
    assert "RecursionError" not in capsys.readouterr().err


def test_safejson_bounds_size_and_depth_and_raises_only_valueerrors():
    assert loads('{"a": [1, {"b": "[[[[["}]}') == {"a": [1, {"b": "[[[[["}]}
    with pytest.raises(JsonError, match="more than 128 levels"):
        loads(DEEP)
    with pytest.raises(JsonError, match="over the 10-byte limit"):
        loads("[" + "1," * 10 + "1]", max_bytes=10)
    with pytest.raises(ValueError):
        loads("{nope")


def test_no_pattern_guards_a_value_with_match():
    """``re.match(r"...$")`` accepts a trailing newline (``'nginx\\n'``); the library uses ``fullmatch``. The on-box
    package has its own test (tests/security/test_onbox_*)."""
    import ast
    from pathlib import Path

    import gatewatch

    root = Path(gatewatch.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "onbox" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "match" \
                    and isinstance(node.func.value, ast.Name) \
                    and (node.func.value.id == "re" or node.func.value.id.lstrip("_").isupper()):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


def test_the_ssm_runner_refuses_a_value_with_a_trailing_newline():
    from gatewatch.config import Host
    from gatewatch.runner.exceptions import RunnerError
    from gatewatch.runner.ssm import SSMRunner

    host = Host(instance_id="i-0123456789abcdef0", service="app")
    with pytest.raises(RunnerError, match="does not match the SSM document's pattern"):
        SSMRunner(client=object()).remediation_parameters(host, "restart_backend", {"service": "nginx\n"})
