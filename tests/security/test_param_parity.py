"""What `gatewatch config check` accepts, the on-box script accepts too.

The script validates every parameter again (it runs as root and may be handed anything), with its own patterns:
if they are stricter than the config schema, a target passes `config check` and its diagnosis fails with a
ParamError at the first incident, at 3 a.m. This drives both with the same values (every field at and past its
limits, and random strings over a wide alphabet) and requires: config accepts => the script accepts. It found
nine such values (a 3,000-character health_path, `|` or `[` in a URL path, an underscore or non-ASCII host name,
a 70 KB body, 100 accepted status codes, 25 extra_paths, 10 log_roots)."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gatewatch.config.models import Target
from gatewatch.onbox.checks.validate import ParamError, validate_params
from gatewatch.onbox.params import endpoint_path, onbox_params

REPO = Path(__file__).resolve().parents[2]
ALPHABET = string.ascii_letters + string.digits + string.punctuation + " é\u00fc\u4e2d\t"


def _target(url: str = "https://api.example.test/health", host: dict[str, Any] | None = None, **extra) -> dict:
    return {"name": "t", "url": url, "host": {"local": True, **(host or {})}, **extra}


EDGES = {
    "health_path long": _target(host={"health_path": "/" + "a" * 2047}),
    "health_path too long": _target(host={"health_path": "/" + "a" * 3000}),
    "url path long": _target(url="https://a.test/" + "a" * 2047),
    "url path too long": _target(url="https://a.test/" + "a" * 3000),
    "url odd characters": _target(url="https://a.test/a|b\"c{d}^`?x=[1]"),
    "url non-ascii path": _target(url="https://a.test/caf\u00e9?q=\u00fc"),
    "url escapes kept": _target(url="https://a.test/a%20b?q=%2F"),
    "underscore host": _target(url="https://my_host.test/"),
    "ipv6 host": _target(url="https://[::1]:8443/x"),
    "idn host": _target(url="https://b\u00fccher.test/"),
    "body 64 KiB": _target(method="POST", body="x" * 65536),
    "body too big": _target(method="POST", body="x" * 70000),
    "every status code": _target(expect={"status": list(range(100, 600))}),
    "repeated status codes": _target(expect={"status": [200] * 600}),
    "service 128": _target(host={"service": "a" * 128}),
    "process_match 200": _target(host={"process_match": "a" * 200}),
    "extra_paths 20": _target(host={"extra_paths": ["/srv/x"] * 20}),
    "extra_paths 25": _target(host={"extra_paths": ["/srv/x"] * 25}),
    "log_roots 8": _target(host={"log_roots": ["/srv/logs"] * 8}),
    "log_roots 10": _target(host={"log_roots": ["/srv/logs"] * 10}),
    "socket 107": _target(host={"backend_socket": "/" + "s" * 106}),
    "database edges": _target(host={"database": {"host": "db-1.internal", "port": 65535, "kind": "mysql",
                                                 "name": "a" * 63, "user": "$u.-_"}}),
}


def _both(raw: dict) -> tuple[bool, str]:
    """(config accepts, what the script says: '' when it accepts too)."""
    try:
        target = Target.model_validate(raw)
    except ValidationError:
        return False, ""
    try:
        validate_params(onbox_params(target))
    except ParamError as exc:
        return True, str(exc)
    return True, ""


@pytest.mark.parametrize("name", EDGES)
def test_a_config_that_passes_check_passes_the_script(name):
    accepted, refusal = _both(EDGES[name])
    assert not refusal, f"{name}: config check accepts it, the on-box script refuses it: {refusal[:300]}"


def test_the_edges_are_edges():
    """The corpus must touch both sides of each limit, or the test above proves nothing."""
    accepted = {name: _both(raw)[0] for name, raw in EDGES.items()}
    assert all(accepted[n] for n in ("health_path long", "url path long", "body 64 KiB", "extra_paths 20",
                                     "log_roots 8", "every status code", "idn host", "url odd characters"))
    assert not any(accepted[n] for n in ("health_path too long", "url path too long", "body too big",
                                         "extra_paths 25", "log_roots 10"))


def _random_text(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, longest)))


def test_random_values_config_accepts_pass_the_script():
    rng = random.Random(20261128)
    fields = {
        "service": lambda: {"host": {"service": _random_text(rng, 140)}},
        "process_match": lambda: {"host": {"process_match": _random_text(rng, 210)}},
        "health_path": lambda: {"host": {"health_path": "/" + _random_text(rng, 60)}},
        "nginx_error_log": lambda: {"host": {"nginx_error_log": "/var/log/" + _random_text(rng, 40)}},
        "url": lambda: {"url": "https://a.test/" + _random_text(rng, 80)},
        "host": lambda: {"url": "https://" + _random_text(rng, 30) + "/"},
        "db_name": lambda: {"host": {"database": {"name": _random_text(rng, 70)}}},
    }
    accepted_counts = dict.fromkeys(fields, 0)
    for _ in range(300):
        for field, make in fields.items():
            part = make()
            raw = _target(url=part.get("url", "https://api.example.test/health"), host=part.get("host"))
            accepted, refusal = _both(raw)
            accepted_counts[field] += accepted
            assert not refusal, f"{field}={part!r}: config accepts it, the on-box script refuses it: {refusal}"
    # enough of each field got through the schema to mean something
    assert all(count >= 5 for count in accepted_counts.values()), accepted_counts


def test_the_shipped_examples_pass_the_script():
    config = yaml.safe_load((REPO / "examples" / "targets.yaml").read_text())
    hosts = [t for t in config["targets"] if t.get("host")]
    assert hosts
    for raw in hosts:
        raw = {**raw, "headers": {}}  # ${VAR} references are irrelevant here
        accepted, refusal = _both(raw)
        assert accepted and not refusal, (raw["name"], refusal)


def test_the_request_path_is_percent_encoded_not_changed():
    assert endpoint_path("https://a.test/a|b?q=[1]&r=%2F") == "/a%7Cb?q=%5B1%5D&r=%2F"
    assert endpoint_path("https://a.test") == "/"
