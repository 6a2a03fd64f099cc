"""Named preconditions over the facts (docs/data-model.md: Facts), referenced by name from catalogue.yaml.

Each returns a ``Check``; a fact that is missing or unknown fails closed, with a reason saying what was unknown.
A new precondition is one function here plus its name in the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def value_at(facts: Mapping[str, Any] | None, path: str) -> Any:
    """``onbox.nginx.value.config_test_ok`` -> the value, or None when any step is missing."""
    cur: Any = facts
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


PRECONDITIONS: dict[str, Callable[[Mapping[str, Any]], Check]] = {}


def precondition(fn: Callable[[Mapping[str, Any]], Check]) -> Callable[[Mapping[str, Any]], Check]:
    PRECONDITIONS[fn.__name__] = fn
    return fn


@precondition
def nginx_config_test_ok(facts: Mapping[str, Any]) -> Check:
    path = "onbox.nginx.value.config_test_ok"
    ok = value_at(facts, path)
    output = value_at(facts, "onbox.nginx.value.config_test_output")
    evidence = {path: ok, "config_test_output": (output or "")[:500]}
    if ok is True:
        return Check(True, "nginx -t passes", evidence)
    if ok is False:
        return Check(False, "nginx -t fails: the configuration on disk is broken, a human must fix it", evidence)
    return Check(False, "nginx -t result unknown (no on-box facts): refusing to touch nginx blind", evidence)


def _hostport(url: str) -> str | None:
    """nginx's ``upstream: "http://127.0.0.1:8001/health"`` -> ``127.0.0.1:8001``; unix sockets -> ``unix:PATH``."""
    if "unix:" in url:
        return "unix:" + url.split("unix:", 1)[1].split(":", 1)[0]
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return f"{parts.hostname}:{port}" if parts.hostname else None


def _target_keys(targets: list[Any]) -> set[str]:
    """nginx -T's targets as the error log would name them: resolved addresses, IPv6 without brackets."""
    keys = set()
    for t in targets:
        if not isinstance(t, Mapping):
            continue
        if t.get("unix"):
            keys.add(f"unix:{t['unix']}")
        elif t.get("host") is not None:
            host, port = str(t["host"]).strip("[]").lower(), t.get("port") or 80
            for name in ("127.0.0.1", "::1") if host == "localhost" else (host,):
                keys.add(f"{name}:{port}")
    return keys


@precondition
def running_config_stale(facts: Mapping[str, Any]) -> Check:
    """The running nginx uses an older configuration than the (tested) one on disk, so a reload changes something."""
    newer = value_at(facts, "onbox.nginx.value.config_newer_than_master")
    if newer is True:
        return Check(True, "the configuration on disk is newer than the running nginx master", {"newer": True})
    signatures = value_at(facts, "onbox.nginx.error_signatures") or []
    targets = value_at(facts, "onbox.nginx.value.targets") or []
    logged = {k for s in signatures if isinstance(s, Mapping) and s.get("upstream") for k in [_hostport(s["upstream"])]}
    logged.discard(None)
    on_disk = _target_keys(targets)
    evidence = {
        "config_newer_than_master": newer,
        "logged_upstreams": sorted(logged),
        "config_upstreams": sorted(on_disk),
    }
    if logged and on_disk and not logged & on_disk:
        return Check(
            True,
            f"nginx's error log shows it proxying to {', '.join(sorted(logged))} while nginx -T names "
            f"{', '.join(sorted(on_disk))}: the running configuration is older than the file",
            evidence,
        )
    if newer is False:
        return Check(
            False, "the running nginx already uses the configuration on disk: a reload changes nothing", evidence
        )
    return Check(False, "no evidence that the running nginx uses an older configuration than the file", evidence)


@precondition
def not_crash_looping(facts: Mapping[str, Any]) -> Check:
    loop = value_at(facts, "onbox.service.value.crash_loop")
    restarts = value_at(facts, "onbox.service.value.restarts_recent")
    evidence = {"crash_loop": loop, "restarts_recent": restarts}
    if loop is True:
        return Check(False, "the service manager reports a crash loop: another restart will not heal it", evidence)
    return Check(True, "no crash loop reported", evidence)


@precondition
def port_not_held_by_stranger(facts: Mapping[str, Any]) -> Check:
    listening = value_at(facts, "onbox.port.value.listening")
    owned = value_at(facts, "onbox.port.value.owned_by_service")
    process = value_at(facts, "onbox.port.value.process")
    evidence = {"listening": listening, "owned_by_service": owned, "process": process}
    if listening is True and owned is False:
        return Check(
            False,
            f"the backend port is held by another process ({process or 'unknown'}): a restart would not bind",
            evidence,
        )
    return Check(True, "the backend port is free or held by the service itself", evidence)
