"""``plan``: may the verdict's remediation run now, and if not, why not. Records the decision in the audit.

The same function serves the local pipeline and the AWS GuardFunction; a ``Decision`` is a plain dict on the wire
(``to_dict``/``from_dict``), so a Step Functions state can carry it to the next step.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gatewatch.clock import Clock
from gatewatch.config.models import Target
from gatewatch.remediation import audit
from gatewatch.remediation.catalogue import CATALOGUE
from gatewatch.remediation.commands import host_key as host_key_for
from gatewatch.remediation.guards import (
    Refusal,
    context_for,
    effective_mode,
    first_refusal,
    idempotency_key,
)
from gatewatch.store.base import ResultsStore
from gatewatch.store.exceptions import StoreError

MAX_EVIDENCE_ITEMS = 20


@dataclass
class Decision:
    incident_id: str
    target: str
    category: str
    action: str | None  # the catalogued action considered, None when the verdict names none
    allowed: bool  # True: run it now (mode auto and every guard passed)
    would_run: bool  # every guard but the mode passed: what suggest mode tells the human
    guard: str  # the guard that refused it; "all" when allowed or suggested
    reason: str  # one human sentence
    mode: str  # effective mode: min(target mode, ceiling)
    requested_mode: str
    ceiling: str
    at: str
    commands: list[str] = field(default_factory=list)  # argv preview
    command_text: str = ""  # the argv quoted for display only; never executed through a shell
    host_key: str = ""
    idempotency_key: str = ""
    warning: str | None = None  # what gatewatch never automates for this category, for the human
    passed: list[dict[str, Any]] = field(default_factory=list)  # the guards that allowed it, with their reasons
    before: list[Any] = field(default_factory=list)  # the verdict's evidence at decision time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def plan(
    verdict: Mapping[str, Any],
    facts: Mapping[str, Any] | None,
    target: Target,
    *,
    store: ResultsStore,
    clock: Clock,
    ceiling: str = "auto",
    incident_id: str,
) -> Decision:
    """Decide about ``verdict["remediation"]`` for ``target`` and record it (considered, then the decision)."""
    now = clock.now()
    facts = facts or {}
    category = str(verdict.get("category") or "unknown")
    action = verdict.get("remediation")
    requested = target.remediation.mode
    mode = effective_mode(requested, ceiling)
    hkey = host_key_for(target.name, target.host)
    base = dict(
        incident_id=incident_id,
        target=target.name,
        category=category,
        requested_mode=requested,
        ceiling=ceiling,
        mode=mode,
        at=clock.iso(),
        host_key=hkey,
        warning=CATALOGUE.warning(category),
        before=list(verdict.get("evidence") or [])[:MAX_EVIDENCE_ITEMS],
    )

    def finish(decision: Decision, kind: str) -> Decision:
        detail = {
            "reason": decision.reason,
            "category": category,
            "mode": mode,
            "requested_mode": requested,
            "ceiling": ceiling,
            "commands": decision.commands,
            "passed": decision.passed,
            "warning": decision.warning,
        }
        if refusal_evidence:
            detail["evidence"] = refusal_evidence
        audit.record(
            store, clock, incident_id=incident_id, target=target.name, action=decision.action,
            decision=kind, guard=decision.guard, detail=detail,
        )  # fmt: skip
        return decision

    refusal_evidence: dict[str, Any] = {}
    if not action:
        reason = base["warning"] or f"the verdict ({category}) names no safe automatic fix"
        decision = Decision(action=None, allowed=False, would_run=False, guard="catalogue", reason=reason, **base)
        return finish(decision, audit.NO_ACTION)

    audit.record(
        store, clock, incident_id=incident_id, target=target.name, action=str(action), decision=audit.CONSIDERED,
        guard="verdict",
        detail={
            "reason": f"the verdict {category} suggests {action}",
            "title": verdict.get("title"),
            "confidence": verdict.get("confidence"),
            "evidence": base["before"],
        },
    )  # fmt: skip
    base["idempotency_key"] = idempotency_key(incident_id, str(action))

    if CATALOGUE.action(str(action)) is None:
        decision = Decision(
            action=str(action), allowed=False, would_run=False, guard="catalogue",
            reason=f"{action!r} is not a catalogued action; gatewatch runs only {', '.join(CATALOGUE.actions)}",
            **base,
        )  # fmt: skip
        return finish(decision, audit.REFUSED)

    if mode == "off":
        why = "remediation.mode is off for this target" if requested == "off" else "the remediation ceiling is off"
        decision = Decision(action=action, allowed=False, would_run=False, guard="mode", reason=why, **base)
        return finish(decision, audit.REFUSED)

    ctx = context_for(verdict, facts, target, store, now, incident_id, action, hkey)
    try:
        refusal: Refusal | None = first_refusal(ctx)
    except StoreError as exc:  # the guards cannot see the history: fail closed
        refusal = Refusal("store", f"the results store could not be read ({exc}); nothing runs without the guardrails")
    argv = next((p["evidence"]["argv"] for p in ctx.passed if p["guard"] == "host"), [])
    base.update(commands=argv, command_text=shlex.join(argv), passed=ctx.passed)
    if refusal is not None:
        refusal_evidence.update(refusal.evidence)
        decision = Decision(
            action=action, allowed=False, would_run=False, guard=refusal.guard, reason=refusal.reason, **base
        )
        return finish(decision, audit.REFUSED)

    if mode == "suggest":
        limit = "remediation.mode is suggest"
        if requested != "suggest":
            limit = f"the remediation ceiling is suggest (the target asks for {requested})"
        reason = f"would run `{shlex.join(argv)}` ({CATALOGUE.actions[action].title}); not run: {limit}"
        decision = Decision(action=action, allowed=False, would_run=True, guard="mode", reason=reason, **base)
        return finish(decision, audit.SUGGESTED)

    reason = f"every guard passed: will run `{shlex.join(argv)}` ({CATALOGUE.actions[action].title})"
    decision = Decision(action=action, allowed=True, would_run=True, guard="all", reason=reason, **base)
    return finish(decision, audit.ALLOWED)
