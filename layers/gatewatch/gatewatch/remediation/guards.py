"""The guardrails: small pure checks over the verdict, the facts, the target, the store and the clock.

Each guard returns None to let the action through or a ``Refusal`` naming itself and the reason in words.
``GUARDS`` is the order ``plan`` asks them in; ``RECHECK`` is the subset asked again under the host lock, just
before running, because time and other incidents may have moved on since the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gatewatch.clock import iso, parse_iso
from gatewatch.config.models import Target
from gatewatch.remediation.audit import RUNS, attempt_time, store_time
from gatewatch.remediation.catalogue import CATALOGUE, Action
from gatewatch.remediation.commands import CommandError, commands_for
from gatewatch.remediation.maintenance import active_window, describe
from gatewatch.remediation.preconditions import PRECONDITIONS
from gatewatch.store.base import ResultsStore

MODES = ("off", "suggest", "auto")
DAY = timedelta(hours=24)


def effective_mode(target_mode: str, ceiling: str) -> str:
    """The lower of the target's mode and the global ceiling: no target can exceed the stack's setting."""
    for name in (target_mode, ceiling):
        if name not in MODES:
            raise ValueError(f"remediation mode must be one of {', '.join(MODES)} (got {name!r})")
    return MODES[min(MODES.index(target_mode), MODES.index(ceiling))]


def idempotency_key(incident_id: str, action: str) -> str:
    return f"remediation:{incident_id}:{action}"


def lock_name(host_key: str) -> str:
    return f"remediation-host:{host_key}"


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    verdict: Mapping[str, Any]
    facts: Mapping[str, Any]
    target: Target
    store: ResultsStore
    now: datetime
    incident_id: str
    action: str
    spec: Action
    host_key: str
    passed: list[dict[str, Any]] = field(default_factory=list)  # guards that allowed it, with their reasons
    store_now: datetime | None = None  # the store's time, asked once (cooldown, circuit)

    def allow(self, guard: str, reason: str, **evidence: Any) -> None:
        self.passed.append({"guard": guard, "reason": reason, **({"evidence": evidence} if evidence else {})})


def catalogue_rule(ctx: Context) -> Refusal | None:
    category = str(ctx.verdict.get("category") or "unknown")
    reason = ctx.spec.refusal(category)
    if reason:
        return Refusal("catalogue", reason, {"category": category})
    ctx.allow("catalogue", f"{ctx.action} is catalogued for {category}")
    return None


def host_command(ctx: Context) -> Refusal | None:
    host = ctx.target.host
    try:
        argv = commands_for(ctx.action, host)
    except CommandError as exc:
        return Refusal("host", str(exc))
    if host is not None and host.service_manager == "command" and not host.local:
        return Refusal(
            "runner",
            "service_manager: command runs an argv template from the config, which only the local runner runs; "
            "the SSM remediation document takes systemd or supervisor",
        )
    ctx.allow("host", "the command is built from validated host fields", argv=argv)
    return None


def preconditions(ctx: Context) -> Refusal | None:
    for name in ctx.spec.preconditions:
        check = PRECONDITIONS[name](ctx.facts)
        if not check.ok:
            return Refusal(f"precondition:{name}", check.reason, check.evidence)
        ctx.allow(f"precondition:{name}", check.reason, **check.evidence)
    return None


def maintenance(ctx: Context) -> Refusal | None:
    window = active_window(ctx.target, ctx.now)
    if window is not None:
        return Refusal("maintenance", f"{describe(window)} is active: remediation and notifications are silenced")
    ctx.allow("maintenance", "no maintenance window is active")
    return None


def idempotency(ctx: Context) -> Refusal | None:
    claim = ctx.store.get_claim(idempotency_key(ctx.incident_id, ctx.action))
    if claim is not None:
        return Refusal(
            "idempotency",
            f"{ctx.action} was already attempted for incident {ctx.incident_id} at {claim.at}; "
            "it is never run twice for one incident",
            {"claim": claim.detail},
        )
    ctx.allow("idempotency", f"first {ctx.action} for this incident")
    return None


def _store_now(store: ResultsStore, fallback: datetime) -> str:
    try:
        return store.store_now()
    except NotImplementedError:
        return iso(fallback)  # advisory here; ``begin`` takes the lease by the store's time or not at all


def host_lock(ctx: Context) -> Refusal | None:
    lock = ctx.store.get_lock(lock_name(ctx.host_key))
    live = lock is not None and lock.expires_at > _store_now(ctx.store, ctx.now)
    if live and lock.owner != f"{ctx.incident_id}:{ctx.action}":
        return Refusal(
            "host_lock",
            f"another remediation is in flight on this host ({lock.owner}, since {lock.acquired_at}); "
            "one at a time",
            {"lock": lock.to_dict()},
        )
    ctx.allow("host_lock", "nothing else is in flight on this host")
    return None


MAX_SKEW = timedelta(hours=1)  # runner clocks this far off the store's are still held to the cooldown and cap


def _store_clock(ctx: Context) -> datetime:
    """The store's time for the cooldown and the cap (asked once per context), the runner's when it has none."""
    if ctx.store_now is None:
        stamped = store_time(ctx.store)
        ctx.store_now = parse_iso(stamped) if stamped else ctx.now
    return ctx.store_now


def _runs(ctx: Context, window: timedelta, action: str | None = None) -> list[Any]:
    """One entry per attempt (incident + action) within ``window`` of the store's time, dated by its first
    ``starting`` or ``ran`` record by the store's clock (``attempt_time``), oldest first: an attempt whose runner
    died before ``ran`` still counts, and neither the runner asking nor the runner that ran it can skew it out."""
    now = _store_clock(ctx)
    since = now - window
    first: dict[tuple[str, str], tuple[datetime, Any]] = {}  # (incident, action) -> (when, its first record)
    # The index is keyed by the runner's time, so the read is widened by MAX_SKEW and the store's time decides. An
    # attempt that started before the window and ran inside it is dated by its `ran` record and so still counts:
    # the window can only make the guard stricter, never looser.
    for r in ctx.store.list_actions(target=ctx.target.name, since=iso(min(since, ctx.now - window) - MAX_SKEW)):
        if r.decision in RUNS and (action is None or r.action == action):
            key = (r.incident_id, r.action)
            when = parse_iso(attempt_time(r))
            if key not in first or when < first[key][0]:
                first[key] = (when, r)
    return [r for when, r in sorted(first.values(), key=lambda pair: pair[0]) if when > since]


def cooldown(ctx: Context) -> Refusal | None:
    minutes = ctx.target.remediation.cooldown_minutes
    recent = _runs(ctx, timedelta(minutes=minutes), ctx.action)
    if recent:
        last = recent[-1]
        ago = max(0.0, (_store_clock(ctx) - parse_iso(attempt_time(last))).total_seconds() / 60)
        return Refusal(
            "cooldown",
            f"{ctx.action} ran {ago:.0f} minute(s) ago on this target (incident {last.incident_id}); "
            f"the cooldown is {minutes} minutes",
            {"last_run": attempt_time(last)},
        )
    ctx.allow("cooldown", f"no {ctx.action} in the last {minutes} minutes")
    return None


def circuit(ctx: Context) -> Refusal | None:
    limit = ctx.target.remediation.max_per_day
    runs = _runs(ctx, DAY)
    if len(runs) >= limit:
        return Refusal(
            "circuit",
            f"{len(runs)} remediations ran on this target in the last 24 hours (max_per_day {limit}): "
            "the circuit is open, only a human is told until it cools down",
            {"runs": [attempt_time(r) for r in runs]},
        )
    ctx.allow("circuit", f"{len(runs)} of {limit} remediations used in the last 24 hours")
    return None


GUARDS: tuple[Callable[[Context], Refusal | None], ...] = (
    catalogue_rule, host_command, preconditions, maintenance, idempotency, host_lock, cooldown, circuit,
)  # fmt: skip
RECHECK: tuple[Callable[[Context], Refusal | None], ...] = (maintenance, idempotency, cooldown, circuit)


def first_refusal(ctx: Context, guards: tuple[Callable[[Context], Refusal | None], ...] = GUARDS) -> Refusal | None:
    for guard in guards:
        refusal = guard(ctx)
        if refusal is not None:
            return refusal
    return None


def context_for(
    verdict: Mapping[str, Any],
    facts: Mapping[str, Any],
    target: Target,
    store: ResultsStore,
    now: datetime,
    incident_id: str,
    action: str,
    host_key: str,
) -> Context:
    spec = CATALOGUE.actions[action]
    return Context(verdict, facts, target, store, now, incident_id, action, spec, host_key)
