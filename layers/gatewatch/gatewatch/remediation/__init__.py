"""Safe automated remediation: a small catalogue of actions, guardrails around them, an audit of every decision.

``plan`` decides (and records why); ``execute`` runs an allowed decision once under a per-host lease and proves
the fix by re-probing. The AWS GuardFunction calls the same ``plan``/``begin``/``finish_run``/``conclude``.
Never automated: killing by pattern or port, editing configuration, opening firewall ports, dropping caches,
rebooting (``CATALOGUE.never_automate`` says so to the human).
"""

from gatewatch.remediation.audit import story
from gatewatch.remediation.catalogue import CATALOGUE, Catalogue, CatalogueError
from gatewatch.remediation.commands import CommandError, commands_for, host_key, remediation_params
from gatewatch.remediation.executor import (
    ESCALATE,
    NOT_RUN,
    REFUSED,
    VERIFIED,
    Outcome,
    Ticket,
    begin,
    conclude,
    execute,
    finish_run,
)
from gatewatch.remediation.guards import MODES, effective_mode
from gatewatch.remediation.maintenance import active_window
from gatewatch.remediation.planner import Decision, plan

__all__ = [
    "CATALOGUE",
    "ESCALATE",
    "MODES",
    "NOT_RUN",
    "REFUSED",
    "VERIFIED",
    "Catalogue",
    "CatalogueError",
    "CommandError",
    "Decision",
    "Outcome",
    "Ticket",
    "active_window",
    "begin",
    "commands_for",
    "conclude",
    "effective_mode",
    "execute",
    "finish_run",
    "host_key",
    "plan",
    "remediation_params",
    "story",
]
