"""The targets config: good files load, and every bad one explains itself with the field path and the fix.

The expected messages are pinned here on purpose: users read them, so they are part of the interface.
"""

from pathlib import Path

import pytest

from gatewatch.cli import main
from gatewatch.config import ConfigError, load_config, load_config_text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"
ROOT = Path(__file__).parents[2]

# Each fixture's problems exactly as `gatewatch config check` prints them after "FILE:" (line:column: path: message).
EXPECTED = {
    "invalid-port.yaml": ["5:21: targets[0].host.backend_port: must be from 1 to 65535 (got 70000)"],
    # The allowed list grows with the schema, so only its start is pinned (see the test below).
    "invalid-unknown-key.yaml": [
        "4:5: targets[0].timeout: unknown key; did you mean 'timeout_s'? allowed here: alerting, "
    ],
    "invalid-duplicate-name.yaml": ["4:11: targets[1].name: duplicate name 'api' (first used by targets[0])"],
    "invalid-duplicate-key.yaml": [
        "5:5: targets[0].url: duplicate key 'url' (first written on line 3); keep one of them"
    ],
    "invalid-boolean.yaml": ["5:17: targets[0].verify_tls: must be true or false (got 'maybe')"],
    "invalid-url.yaml": ["3:10: targets[0].url: must be an http:// or https:// URL (got 'ftp://api.example.com/')"],
    "invalid-name.yaml": [
        "2:11: targets[0].name: must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or "
        "digit (got 'API_1')"
    ],
    "invalid-service.yaml": [
        "5:16: targets[0].host.service: must be a service name of letters, digits and . _ @ : - not starting "
        "with '-' (got 'backend; rm -rf /')"
    ],
    "invalid-log-path.yaml": [
        "5:24: targets[0].host.nginx_error_log: must be an absolute path of letters, digits and . _ / + - with "
        "no '..' (got '/var/log/../../etc/shadow')",
        "6:16: targets[0].host.app_log: must be an absolute path of letters, digits and . _ / + - with no '..' "
        "(got 'relative/app.log')",
    ],
    "invalid-secret-header.yaml": [
        "5:22: targets[0].headers.Authorization: carries a secret: write it as an environment reference like "
        "${GATEWATCH_AUTHORIZATION} and export that variable, never inline"
    ],
    "invalid-mode.yaml": [
        "4:25: targets[0].remediation.mode: must be one of 'off', 'suggest' or 'auto' (got 'always')"
    ],
    "invalid-types.yaml": [
        "4:16: targets[0].timeout_s: must be a number (got 'soon')",
        "6:15: targets[0].expect.status: status codes must be from 100 to 599 (got [999])",
        "7:35: targets[0].alerting.failure_threshold: must be from 1 to 100 (got 0)",
    ],
    "invalid-yaml.yaml": ["4:1: not valid YAML: expected ',' or ']', but got '<stream end>'"],
    "invalid-local-path.yaml": [
        "2:12: settings.db_path: must be a file path of letters, digits and . _ / + - ~, absolute or relative to "
        "this file (got 'state dir/gw.db')",
        "9:18: targets[1].tls_ca_file: must be a file path of letters, digits and . _ / + - ~, absolute or relative "
        "to this file (got '$(cat /etc/shadow)')",
    ],
    "invalid-two-documents.yaml": [
        "2:1: not valid YAML: expected a single document in the stream, but found another document"
    ],
    "invalid-empty.yaml": ["1:10: targets: must list at least one target"],
    "invalid-instance.yaml": [
        "6:20: targets[0].host.instance_id: must be an EC2 or managed instance id like i-0123456789abcdef0 or "
        "mi-0123456789abcdef0 (got 'i-12')"
    ],
}


def test_every_invalid_fixture_has_pinned_messages():
    assert sorted(p.name for p in FIXTURES.glob("invalid-*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_config_messages(name):
    with pytest.raises(ConfigError) as info:
        load_config(FIXTURES / name)
    got = [p.located(name) for p in info.value.problems]
    want = [f"{name}:{line}" for line in EXPECTED[name]]
    if name == "invalid-unknown-key.yaml":
        assert got[0].startswith(want[0]) and "timeout_s, " in got[0] and len(got) == 1
    else:
        assert got == want


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_check_exits_2_and_prints_every_problem_with_its_place(name, capsys):
    path = str(FIXTURES / name)
    assert main(["config", "check", "--no-env", path]) == 2
    err = capsys.readouterr().err.splitlines()
    for i, line in enumerate(EXPECTED[name]):
        assert err[i].startswith(f"{path}:{line}")
    if len(EXPECTED[name]) > 1:
        assert err[-1] == f"{len(EXPECTED[name])} problems in {path}"


def test_yaml_12_booleans_numbers_and_times_do_not_surprise():
    """YAML 1.1 reads off/no/on/yes as booleans, 0755 as octal, 1:30 as 90 and dates as datetimes; 1.2 does not."""
    text = """
targets:
  - name: a
    url: https://a.example.com/
    remediation: {mode: off}
    host: {local: true, service: yes, proxy_service: no, backend_port: 08000}
    maintenance:
      - {start: 2026-11-25T01:00:00Z, end: 2026-11-25T02:00:00Z}
      - {daily: 01:00-01:30}
    headers: {X-Flag: on, X-Time: 1:30}
"""
    t = load_config_text(text).targets[0]
    assert t.remediation.mode == "off"
    assert (t.host.service, t.host.proxy_service, t.host.backend_port) == ("yes", "no", 8000)
    assert t.maintenance[0].start == "2026-11-25T01:00:00Z"
    assert t.headers == {"X-Flag": "on", "X-Time": "1:30"}


def test_yaml_merge_keys_still_work_and_are_not_duplicates():
    text = """
targets:
  - &base {name: a, url: https://a.example.com/, timeout_s: 5, remediation: {mode: off}}
  - {<<: *base, name: b, url: https://b.example.com/}
"""
    a, b = load_config_text(text).targets
    assert (b.name, b.timeout_s, b.remediation.mode) == ("b", 5, "off")


def test_alias_bombs_are_refused():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, prev in enumerate("abcdefg"):
        text += f"{chr(ord(prev) + 1)}: &{chr(ord(prev) + 1)} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    text += "targets: []\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert "expands to more than" in str(info.value.problems[0])


def test_relative_local_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "conf"
    sub.mkdir()
    cfg = sub / "targets.yaml"
    cfg.write_text("settings: {db_path: state/gw.db}\n"
                   "targets: [{name: a, url: 'https://a.example.com/', tls_ca_file: certs/ca.pem}]\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/targets.yaml")
    assert config.settings.db_path == str(sub / "state" / "gw.db")
    assert config.targets[0].tls_ca_file == str(sub / "certs" / "ca.pem")


def test_example_file_is_valid_and_defaults_apply():
    config = load_config(ROOT / "examples" / "targets.yaml")
    api = config.target("api")
    assert api.method == "POST"
    assert api.expect.status == [200, 401]
    assert api.host.backend_port == 8000
    assert api.alerting.failure_threshold == 2
    assert api.confirm.retries == 1


def test_config_check_ok_exits_0(capsys):
    assert main(["config", "check", "--no-env", str(ROOT / "examples" / "targets.yaml")]) == 0
    assert "ok (1 target(s): api)" in capsys.readouterr().out


def test_env_references_resolve_and_missing_ones_are_named():
    text = (
        "targets:\n  - name: a\n    url: https://a.example.com/\n    headers: {Authorization: '${GATEWATCH_TOKEN}'}\n"
    )
    assert load_config_text(text).targets[0].headers["Authorization"] == "${GATEWATCH_TOKEN}"
    resolved = load_config_text(text, environ={"GATEWATCH_TOKEN": "Bearer s3cret"})
    assert resolved.targets[0].headers["Authorization"] == "Bearer s3cret"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ={})
    assert [str(p) for p in info.value.problems] == [
        "targets[0].headers.Authorization: environment variable GATEWATCH_TOKEN is not set; "
        "export it before running gatewatch"
    ]


def test_header_names_and_values_are_checked_per_header():
    text = "targets:\n  - name: a\n    url: https://a.example.com/\n    headers: {'Bad Name': v, X-Ok: \"a\\nb\"}\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert [str(p) for p in info.value.problems] == [
        "targets[0].headers.Bad Name: header name 'Bad Name' is not a valid HTTP token",
        "targets[0].headers.X-Ok: header values must not contain line breaks or NUL",
    ]


def test_default_expectation_accepts_2xx_and_3xx_only():
    t = load_config_text("targets:\n  - name: a\n    url: http://127.0.0.1/\n").targets[0]
    assert t.expect.accepts(200) and t.expect.accepts(302)
    assert not t.expect.accepts(404) and not t.expect.accepts(502)


def test_missing_file_is_a_clear_problem(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value.problems[0]).startswith("(file): cannot read: No such file or directory")


def _host_config(host: str) -> str:
    return f"targets:\n  - name: api\n    url: https://api.example.com/\n    host:\n      local: true\n{host}"


def test_backend_socket_is_a_path_and_excludes_a_tcp_backend():
    ok = load_config_text(_host_config("      backend_socket: /run/app/gunicorn.sock\n")).target("api").host
    assert ok.backend_socket == "/run/app/gunicorn.sock"
    with pytest.raises(ConfigError) as exc:
        load_config_text(_host_config("      backend_socket: run/app.sock\n"))
    assert exc.value.problems[0].path == "targets[0].host.backend_socket"
    with pytest.raises(ConfigError) as exc:
        load_config_text(_host_config("      backend_socket: /run/app.sock\n      backend_port: 8000\n"))
    assert "backend_socket (a unix socket) or backend_host/backend_port, not both" in exc.value.problems[0].message


def test_database_kind_defaults_from_the_port():
    def kind(db: str) -> str:
        return load_config_text(_host_config(f"      database: {db}\n")).target("api").host.database.kind

    assert kind("{port: 5432}") == "postgresql"
    assert kind("{port: 3306}") == "mysql"
    assert kind("{port: 6000, kind: mysql}") == "mysql"
    with pytest.raises(ConfigError):
        kind("{port: 3306, kind: oracle}")
