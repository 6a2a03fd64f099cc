"""Finding 4: a probed server's redirect may not reach loopback, link-local, private or metadata addresses.

Real loopback redirect chains: the configured URL (loopback, on purpose, as in the lab) redirects to a second
loopback server standing in for a local credentials endpoint (the Lambda runtime API, ECS task credentials).
Before the fix the probe followed and stored the credentials JSON in its record.
"""

from __future__ import annotations

import json

import pytest

from gatewatch.config import ConfigError, load_config_text
from gatewatch.probe import StaticResolver, probe_target, probe_url
from tests.servers import Reply, http_server

CREDS = {"AccessKeyId": "ASIAFAKECREDS0001", "SecretAccessKey": "fake-secret-from-endpoint", "Token": "tok"}


@pytest.fixture
def creds_endpoint():
    with http_server({"/creds": Reply(200, CREDS)}) as server:
        yield server


def _origin(location: str):
    return http_server({"/start": Reply(302, "", {"Location": location}),
                        "/self": Reply(302, "", {"Location": "/ok"}), "/ok": Reply(200, {"ok": True})})


def _no_leak(result, endpoint) -> None:
    assert endpoint.requests == []
    assert CREDS["SecretAccessKey"] not in json.dumps(result.to_dict())


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "[::ffff:127.0.0.1]", "2130706433"])
def test_redirect_to_a_loopback_credentials_endpoint_is_refused(creds_endpoint, host):
    with _origin(f"http://{host}:{creds_endpoint.port}/creds") as origin:
        result = probe_url(origin.url("/start"), timeout_s=3)
    _no_leak(result, creds_endpoint)
    assert not result.ok and result.reason == "protocol_error" and result.phase == "connect"
    assert "refused" in result.error and "allow_private_redirects" in result.error


def test_a_name_that_resolves_to_loopback_is_judged_by_the_address_connected_to(creds_endpoint):
    """DNS rebinding: the redirect names a host whose answer is loopback at connect time."""
    answers = iter([["127.0.0.1"], ["203.0.113.7"], ["203.0.113.7"]])

    class Rebinding(StaticResolver):
        def __call__(self, host, port, *a, **kw):
            if host == "rebind.test":
                self.mapping["rebind.test"] = next(answers)
            return super().__call__(host, port, *a, **kw)

    resolver = Rebinding({"origin.test": "127.0.0.1", "rebind.test": "203.0.113.7"})
    with _origin(f"http://rebind.test:{creds_endpoint.port}/creds") as origin:
        result = probe_url(origin.url("/start", host="origin.test"), timeout_s=3, resolver=resolver)
    _no_leak(result, creds_endpoint)
    assert "redirect to rebind.test refused: 127.0.0.1 is a loopback address" in result.error
    assert resolver.calls.count("rebind.test") == 1  # one answer, the one checked, is the one dialled


def test_the_configured_url_itself_may_be_loopback_and_may_redirect_to_itself():
    with _origin("/ok") as origin:
        result = probe_url(origin.url("/self"), timeout_s=3)
    assert result.ok and [r.url for r in result.redirects] == [origin.url("/ok")]


def test_a_target_may_opt_in_to_private_redirects(creds_endpoint):
    with _origin(f"http://127.0.0.1:{creds_endpoint.port}/creds") as origin:
        text = (f"targets:\n  - name: a\n    url: {origin.url('/start')}\n    confirm: {{retries: 0}}\n"
                "    allow_private_redirects: true\n")
        refused = probe_target(load_config_text(text.replace("    allow_private_redirects: true\n", "")).targets[0])
        followed = probe_target(load_config_text(text).targets[0])
    assert refused.status == "down" and "allow_private_redirects" in refused.probe.error
    assert followed.status == "up" and len(creds_endpoint.requests) == 1


def test_metadata_redirect_is_refused_even_with_the_opt_in():
    resolver = StaticResolver({"origin.test": "127.0.0.1", "md.test": "169.254.169.254"})
    with _origin("http://md.test/latest/meta-data/iam/security-credentials/") as origin:
        result = probe_url(origin.url("/start", host="origin.test"), timeout_s=3, resolver=resolver,
                           allow_private_redirects=True)
    assert "redirect to md.test refused: 169.254.169.254 is a cloud metadata address" in result.error


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::ffff:169.254.169.254]/",
])
def test_a_target_url_naming_a_metadata_endpoint_is_refused_at_validation(url):
    with pytest.raises(ConfigError) as info:
        load_config_text(f"targets:\n  - name: a\n    url: '{url}'\n")
    assert "targets[0].url: names a cloud metadata endpoint" in str(info.value)
