"""Finding 3: ``${VAR}`` may not send the prober's credentials to a probed server, nor smuggle a second request.

The environment carries moto-style fake AWS credentials, as a Lambda's does; a real loopback server records
every byte it receives. Each test failed before the fix (the config loaded and the server saw the secret).
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from gatewatch.config import ConfigError, load_config_text
from gatewatch.probe import probe_target
from tests.servers import LoopbackServer, Reply, send_reply

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE0001",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-key-0001/DO-NOT-LEAK",
    "AWS_SESSION_TOKEN": "fake-session-token-0001",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
    "_HANDLER": "app.handler",
}


@pytest.fixture
def creds(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    import os

    return os.environ


@pytest.fixture
def recorder():
    """A loopback server that keeps the raw bytes of every request."""
    raw: list[bytes] = []

    def handle(conn, server):
        conn.settimeout(2)
        data = b""
        try:
            while True:
                piece = conn.recv(65536)
                if not piece:
                    break
                data += piece
                if b"\r\n\r\n" in data:
                    break
        except OSError:
            pass
        raw.append(data)
        send_reply(conn, Reply(200, {"ok": True}))

    with LoopbackServer(handle) as server:
        server.raw = raw
        yield server


def _config(url: str, **fields: str) -> str:
    lines = ["targets:", "  - name: a", f"    url: {url}"]
    lines += [f"    {k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def _leaked(server) -> list[str]:
    seen = b"".join(server.raw)
    return [k for k, v in SECRETS.items() if v.encode() in seen]


def _load_and_probe(text: str, environ, server):
    try:
        config = load_config_text(text, environ=environ)
    except ConfigError as exc:
        return exc
    probe_target(config.targets[0])
    return config


@pytest.mark.parametrize("var", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN",
                                 "AWS_LAMBDA_RUNTIME_API", "_HANDLER"])
def test_header_naming_an_aws_or_runtime_variable_is_refused_and_nothing_leaves(creds, recorder, var):
    text = _config(recorder.url("/"), headers=f"{{X-Debug: '${{{var}}}'}}")
    outcome = _load_and_probe(text, creds, recorder)
    assert _leaked(recorder) == []
    assert isinstance(outcome, ConfigError)
    msg = [str(p) for p in outcome.problems]
    assert msg == [f"targets[0].headers.X-Debug: ${{{var}}} is an AWS SDK or Lambda runtime variable and is never "
                   "expanded (it would send the prober's own credentials or settings to the probed server)"]


def test_aws_names_are_refused_even_when_allow_listed(creds):
    text = "settings: {env_allow: [AWS_SECRET_ACCESS_KEY]}\n" + _config("http://127.0.0.1:1/")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ=creds)
    assert "AWS SDK or Lambda runtime variable" in str(info.value)


def test_prefix_cannot_be_set_to_aws(creds):
    text = "settings: {env_prefix: AWS_}\n" + _config("http://127.0.0.1:1/", headers="{X: '${AWS_SESSION_TOKEN}'}")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ=creds)
    assert "settings.env_prefix" in str(info.value)


def test_url_body_and_json_assertions_follow_the_same_rules(creds, recorder):
    text = _config(
        recorder.url("/?k=${AWS_SECRET_ACCESS_KEY}"),
        body="'${AWS_ACCESS_KEY_ID}'",
        expect="{json: {token: '${AWS_SESSION_TOKEN}'}}",
    )
    outcome = _load_and_probe(text, creds, recorder)
    assert _leaked(recorder) == []
    assert isinstance(outcome, ConfigError)
    paths = sorted(p.path for p in outcome.problems)
    assert paths == ["targets[0].body", "targets[0].expect.json.token", "targets[0].url"]


def test_names_are_checked_without_an_environment_too():
    text = _config("http://127.0.0.1:1/", headers="{X-Debug: '${AWS_SECRET_ACCESS_KEY}', X-Other: '${HOME_DIR}'}")
    with pytest.raises(ConfigError) as info:
        load_config_text(text)  # `gatewatch config check --no-env`
    assert [str(p) for p in info.value.problems][1] == (
        "targets[0].headers.X-Other: ${HOME_DIR} may not be expanded: name it with the prefix GATEWATCH_ "
        "or list it in settings.env_allow"
    )


def test_prefixed_and_allow_listed_names_expand_everywhere(recorder):
    env = {"GATEWATCH_TOKEN": "Bearer t0k", "GATEWATCH_PATH": "health", "SITE_ID": "42"}
    text = "settings: {env_allow: [SITE_ID]}\n" + _config(
        recorder.url("/${GATEWATCH_PATH}"), headers="{Authorization: '${GATEWATCH_TOKEN}', X-Site: '${SITE_ID}'}",
        method="POST", body="'{\"site\": \"${SITE_ID}\"}'", expect="{json: {ok: true}}",
    )
    config = load_config_text(text, environ=env)
    result = probe_target(config.targets[0])
    assert result.status == "up"
    head = recorder.raw[0].decode("latin-1")
    assert head.startswith("POST /health ") and "Authorization: Bearer t0k\r\n" in head and "X-Site: 42\r\n" in head


@pytest.mark.parametrize("value", ["v\r\nX-Injected: 1", "v\nGET /admin HTTP/1.1", "v\x00"])
def test_a_variable_holding_a_line_break_cannot_smuggle_a_request(recorder, value):
    env = {"GATEWATCH_V": value}
    text = _config(recorder.url("/"), headers="{X-Value: '${GATEWATCH_V}'}")
    outcome = _load_and_probe(text, env, recorder)
    assert recorder.raw == []
    assert isinstance(outcome, ConfigError)
    assert [str(p) for p in outcome.problems] == [
        "targets[0].headers.X-Value: the value of ${GATEWATCH_V} contains a line break or NUL, which is refused"
    ]


def test_a_header_variable_that_is_not_latin1_fails_at_load_not_at_every_probe():
    text = _config("http://127.0.0.1:1/", headers="{X-Value: '${GATEWATCH_V}'}")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ={"GATEWATCH_V": "caf\u00e9 \u2603"})
    assert str(info.value.problems[0]) == (
        "targets[0].headers.X-Value: the value of ${GATEWATCH_V} is not Latin-1 and cannot be sent in an HTTP header"
    )


def test_a_url_variable_cannot_point_the_probe_at_the_metadata_service():
    text = _config("http://${GATEWATCH_HOST}/latest/meta-data/")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ={"GATEWATCH_HOST": "169.254.169.254"})
    assert "targets[0].url: names a cloud metadata endpoint" in str(info.value)


@mock_aws
def test_lambda_path_targets_from_parameter_store_never_send_credentials(creds, recorder):
    """The ProbeFunction's own loader (runtime.load_targets, moto SSM) with the Lambda's credentials set."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    from gatewatch.aws import runtime

    parameters.clear_caches()
    base.DEFAULT_PROVIDERS.clear()  # a provider from an earlier test holds a client for another region
    ssm = boto3.client("ssm", region_name="eu-west-1")
    text = _config(recorder.url("/"), headers="{X-Debug: '${AWS_SECRET_ACCESS_KEY}', X-Tok: '${AWS_SESSION_TOKEN}'}")
    ssm.put_parameter(Name="/gw/targets", Value=text, Type="SecureString")
    outcome = None
    try:
        probe_target(runtime.load_targets("/gw/targets").targets[0])
    except ConfigError as exc:
        outcome = exc
    assert _leaked(recorder) == []
    assert outcome is not None
    assert {p.path for p in outcome.problems} == {"targets[0].headers.X-Debug", "targets[0].headers.X-Tok"}
