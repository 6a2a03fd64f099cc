"""``gatewatch config init``: a commented starter targets file, filled in from one probe of each URL.

What one probe can tell is written as values (the status the URL answered, the health URL when ``/health`` answers
200); what it cannot (where the host is, which service runs the backend) is written as commented-out examples.
The text always loads: the caller validates it before writing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from gatewatch.config.models import NAME_RE

SCHEMA_FILE = "targets.schema.json"


@dataclass
class Observed:
    """What one probe of a URL (and of its /health) showed; None when nothing was probed."""

    status: int | None = None
    reason: str | None = None
    total_ms: float | None = None
    cloudflare: bool = False
    colo: str | None = None
    health_url: str | None = None
    health_status: int | None = None


def target_name(url: str, taken: set[str]) -> str:
    """A valid, unique target name from the URL's host and path: https://api.example.com/v1 -> api-example-com-v1."""
    parts = urlsplit(url)
    raw = f"{parts.hostname or 'site'}{parts.path.rstrip('/')}"
    name = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:55].strip("-") or "site"
    candidate, n = name, 2
    while candidate in taken or not NAME_RE.fullmatch(candidate):
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def health_url_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))


def observe(url: str, timeout_s: float = 10.0, verify_tls: bool = True, ca_file: str | None = None) -> Observed:
    """Probe ``url`` once, and its site's ``/health``; never raises for a bad server (the result says so)."""
    from gatewatch.probe import probe_url

    result = probe_url(url, timeout_s=timeout_s, verify_tls=verify_tls, ca_file=ca_file)
    seen = Observed(
        status=result.http.status if result.http else None,
        reason=None if result.http else (result.reason or result.error or "no answer"),
        total_ms=result.timings_ms.total,
        cloudflare=bool(result.cloudflare.edge),
        colo=result.cloudflare.colo,
    )
    health = health_url_of(url)
    if health.rstrip("/") != url.rstrip("/"):
        h = probe_url(health, timeout_s=timeout_s, verify_tls=verify_tls, ca_file=ca_file)
        seen.health_status = h.http.status if h.http else None
        if seen.health_status == 200:
            seen.health_url = health
    return seen


def _q(value: str) -> str:
    """A YAML 1.2 double-quoted scalar (JSON string syntax is valid YAML)."""
    import json

    return json.dumps(value)


def render(urls: list[str], observed: dict[str, Observed | None], schema: str = SCHEMA_FILE) -> str:
    lines = [
        f"# yaml-language-server: $schema={schema}",
        "# gatewatch targets, written by `gatewatch config init`. Check it with `gatewatch config check FILE`.",
        f"# Editor completion and checking: `gatewatch config schema > {schema}` next to this file.",
        "# Reference: every key, its default and its limits are in that schema and in docs/cli.md.",
        "",
        "settings:",
        "  concurrency: 16                # targets probed at once",
        "  # db_path: gatewatch.db        # SQLite results store for `gatewatch run` (relative to this file);",
        "  #                              # --db and $GATEWATCH_DB override it",
        "",
        "targets:",
    ]
    taken: set[str] = set()
    for url in urls:
        seen = observed.get(url)
        name = target_name(url, taken)
        lines += ["", f"  - name: {name}", f"    url: {_q(url)}"]
        if seen is None:
            lines.append("    # not probed (--no-probe): any 2xx/3xx answer counts as up")
        elif seen.status is not None:
            edge = ""
            if seen.cloudflare:
                edge = f", through Cloudflare{f' ({seen.colo})' if seen.colo else ''}"
            lines.append(f"    # probed once: answered {seen.status} in {seen.total_ms:.0f} ms{edge}")
            if seen.status < 400:
                lines += [
                    "    expect:",
                    f"      status: [{seen.status}]             # what it answered; list others you accept",
                ]
            else:
                lines += [
                    f"    # {seen.status} is an error answer: gatewatch would call this target down. Fix the URL, or",
                    "    # list the codes you accept:",
                    f"    # expect: {{status: [{seen.status}]}}",
                ]
        else:
            lines.append(f"    # probed once: no answer ({seen.reason}); any 2xx/3xx answer counts as up")
        lines += [
            "    timeout_s: 10                 # the deadline for one attempt, all phases together",
            "    # max_latency_ms under expect: slower answers count as degraded, not down",
        ]
        if seen is not None and seen.cloudflare:
            lines.append("    # behind Cloudflare: its 52x answers are read as Cloudflare's (origin down, timeout)")
        if seen is not None and seen.health_url:
            lines += [
                "    health:                       # /health answered 200: it is probed alongside the URL",
                f"      url: {_q(seen.health_url)}",
            ]
        else:
            answered = "" if seen is None or seen.health_status is None else f" (it answered {seen.health_status})"
            lines += [
                f"    # health:                     # no 200 from /health{answered}; name your health endpoint:",
                f"    #   url: {_q(health_url_of(url))}",
            ]
        lines += [
            "    # host:                       # where nginx and the backend run, for the on-box diagnosis:",
            "    #   local: true               # this machine (or instance_id: i-0123456789abcdef0 through SSM)",
            "    #   service: my-backend       # the backend's systemd unit (or supervisor program)",
            "    #   backend_port: 8000",
            "    remediation:",
            "      mode: suggest               # off | suggest (say what would fix it) | auto (fix the safe cases)",
            "    alerting: {failure_threshold: 2, success_threshold: 2}   # confirmed rounds before DOWN / UP",
        ]
    return "\n".join(lines) + "\n"
