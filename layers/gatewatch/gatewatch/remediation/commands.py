"""Argv for a catalogued action on a host: fixed templates filled with validated host fields, never a shell.

The values come from a validated ``config.models.Host`` and are checked again here (defence in depth: a Host built
in code skips the YAML loader), then passed as whole argv elements.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any

from gatewatch import hostpaths
from gatewatch.config.models import (
    COMMAND_ARG_RE,
    PLACEHOLDER_RE,
    REMEDIATION_ACTIONS,
    SERVICE_RE,
    Host,
    _check_argv_template,
    _check_path,
)
from gatewatch.remediation.catalogue import CATALOGUE
from gatewatch.remediation.checks_first import CHECKS_FIRST
from gatewatch.runner.base import ERROR, FAILED, RunResult


class CommandError(ValueError):
    """The action cannot be turned into a command for this host; the message names the missing or bad field."""


def _values(host: Host) -> dict[str, str | None]:
    values = {
        "service": host.service,
        "proxy_service": host.proxy_service,
        "supervisor_config": host.supervisor_config,
        "backend_port": str(host.backend_port),
        "nginx_port": str(host.nginx_port),
    }
    for name in ("service", "proxy_service"):
        if values[name] is not None and not SERVICE_RE.fullmatch(values[name]):
            raise CommandError(f"host.{name}: {values[name]!r} is not a safe service name")
    if values["supervisor_config"] is not None:
        try:
            _check_path(values["supervisor_config"])
        except ValueError as exc:
            raise CommandError(f"host.supervisor_config: {exc}") from None
    return values


def _fill(element: str, values: dict[str, str | None]) -> str | None:
    missing = [n for n in PLACEHOLDER_RE.findall(element) if values.get(n) is None]
    if missing:
        return None
    return PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]), element)


def commands_for(action: str, host: Host | None) -> list[str]:
    """The argv that performs ``action`` on ``host``; CommandError when it cannot be built safely."""
    if action not in REMEDIATION_ACTIONS:
        raise CommandError(f"unknown action {action!r}; catalogued: {', '.join(REMEDIATION_ACTIONS)}")
    if host is None:
        raise CommandError("the target has no host section: gatewatch cannot run anything on it")
    spec = CATALOGUE.actions[action]
    values = _values(host)
    if host.service_manager == "command":
        template = (host.commands or {}).get(action)
        if not template:
            raise CommandError(f"host.commands has no {action} template (service_manager: command)")
        try:
            _check_argv_template(action, list(template), host.allowed_programs)
        except ValueError as exc:
            raise CommandError(f"host.commands.{exc}") from None
    else:
        for name in spec.needs:
            if values.get(name) is None:
                raise CommandError(f"host.{name} is not set: gatewatch does not know which service to {action}")
        template = spec.commands[host.service_manager]
    argv: list[str] = []
    for part in template:
        if isinstance(part, list):  # an optional group: kept whole or dropped whole
            filled = [_fill(e, values) for e in part]
            if all(f is not None for f in filled):
                argv.extend(filled)  # type: ignore[arg-type]
            continue
        value = _fill(part, values)
        if value is None:
            raise CommandError(f"{action}: {part} has no value on this host")
        argv.append(value)
    for arg in argv[1:]:
        if not COMMAND_ARG_RE.fullmatch(arg):
            raise CommandError(f"{action}: argument {arg!r} is outside the safe characters")
    return argv


def remediation_params(action: str, host: Host) -> dict[str, Any]:
    """What a runner needs: the argv (for display; LocalRunner rebuilds it) and the fixed, validated fields, named
    as ``SSMRunner.remediation_parameters`` reads them (the SSM document takes ``action`` as a name from a fixed
    list plus these values, never an argv)."""
    if not hostpaths.nginx_bin_allowed(host.nginx_bin):
        raise CommandError(f"host.nginx_bin {host.nginx_bin!r} is not one of {', '.join(hostpaths.NGINX_BINARIES)}")
    return {
        "action": action,
        "argv": commands_for(action, host),
        "service_manager": host.service_manager,
        "service": host.service,
        "proxy_service": host.proxy_service,
        "supervisor_config": host.supervisor_config,
        "nginx_bin": host.nginx_bin,
        "nginx_conf": host.nginx_conf,
        "nginx_prefix": host.nginx_prefix,
    }


def host_key(target_name: str, host: Host | None) -> str:
    """One identity per machine, so two targets on one host share its remediation lock."""
    if host is None:
        return f"target:{target_name}"
    if host.instance_id:
        return f"instance:{host.instance_id}"
    if host.instance_tags:
        return "tags:" + ",".join(f"{k}={v}" for k, v in sorted(host.instance_tags.items()))
    if host.local:
        return f"local:{host.netns}" if host.netns else "local:this-host"
    return f"target:{target_name}"


def run_catalogued(
    run_argv: Callable[[Any, Sequence[str], float], RunResult], host: Host, action: str, timeout_s: float
) -> RunResult:
    """How a local runner performs ``action``: the argv is rebuilt here from the catalogue and the host (never
    taken from the caller's params), the action's ``check_first`` commands run first, and if one fails nothing is
    run. ``run_argv`` is the runner's own bounded, shell-free executor (``LocalRunner.run_argv``)."""
    try:
        argv = commands_for(action, host)
        checks = [CHECKS_FIRST[name](host) for name in CATALOGUE.actions[action].check_first]
    except CommandError as exc:
        return RunResult(status=ERROR, error=str(exc))
    for check in checks:
        result = run_argv(host, check, min(timeout_s, 30.0))
        if not result.ok:
            return RunResult(
                status=FAILED, exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
                duration_ms=result.duration_ms,
                error=f"refused: `{shlex.join(check)}` failed just before {action} ({result.error}); nothing was run",
            )  # fmt: skip
    return run_argv(host, argv, timeout_s)
