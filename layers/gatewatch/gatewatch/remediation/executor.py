"""Run an allowed Decision once, safely, and prove it worked: ``begin`` -> run -> ``finish_run`` -> ``conclude``.

``execute`` chains the steps for the local pipeline. In AWS the state machine calls the same steps from
the GuardFunction around SSM SendCommand and a Wait state, so the rules are the same code in both places:
- ``begin`` takes the host lease (one remediation in flight per host, expiring so a crashed run cannot lock it
  forever), asks the time-sensitive guards again under it, claims incident+action once (a retried step never
  runs twice), and writes the ``starting`` audit record before any command runs (the cooldown and the daily
  cap count it, so a runner killed mid-command cannot buy another attempt);
- ``finish_run`` records the command's result (``ran``); the lease is kept;
- ``conclude`` judges the re-probe and the local re-check after the settle time: verified, or escalate to a
  human, and releases the lease: it is held through settle and verify. There is never a second attempt for
  the incident: the claim stays.

The lease is judged by the store's time (``store_now``), never the runner's clock, and keyed on the machine:
a host named by tags is resolved to its instance id first (``resolve_host``), so a machine named by
``instance_id`` in one target and by tags in another has one lease.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from gatewatch.clock import Clock, iso, parse_iso
from gatewatch.config.models import Target
from gatewatch.remediation import audit
from gatewatch.remediation.commands import CommandError, remediation_params
from gatewatch.remediation.guards import RECHECK, context_for, first_refusal, lock_name
from gatewatch.remediation.planner import Decision
from gatewatch.runner.base import ERROR, CommandRunner, RunResult
from gatewatch.store.base import ResultsStore

VERIFIED, ESCALATE, REFUSED, NOT_RUN = "verified", "escalate", "refused", "not_run"
DEFAULT_LOCK_TTL_S = 900.0  # longer than any run + settle + verify; a crashed holder frees the host after this
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_SETTLE_S = 10.0

CheckFn = Callable[[], Any]  # returns bool, (ok, evidence) or {"ok": bool, ...}


@dataclass
class Outcome:
    incident_id: str
    target: str
    action: str | None
    result: str  # verified | escalate | refused | not_run
    guard: str
    message: str
    run: dict[str, Any] | None = None  # RunResult.to_dict()
    before: list[Any] = field(default_factory=list)
    after: dict[str, Any] = field(default_factory=dict)  # {"probe": {...}, "health": {...}}
    duration_s: float | None = None  # from the command's start to the verification

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ticket:
    """Proof that ``begin`` let this decision through; carry it (``to_dict``) to ``finish_run`` and ``conclude``."""

    decision: dict[str, Any]
    lock_name: str
    owner: str
    started_at: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ticket:
        return cls(**{k: data[k] for k in ("decision", "lock_name", "owner", "started_at", "params")})


def _outcome(d: Decision, result: str, guard: str, message: str, **extra: Any) -> Outcome:
    return Outcome(d.incident_id, d.target, d.action, result, guard, message, before=d.before, **extra)


def begin(
    decision: Decision,
    target: Target,
    *,
    store: ResultsStore,
    clock: Clock,
    lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
    resolve_host: Callable[[Any], str | None] | None = None,
) -> Ticket | Outcome:
    """Take the host lease and the once-only claim, or return a refused/not_run Outcome (recorded).

    ``resolve_host(host)`` names the instance a tag-addressed host is (a runner's ``instance_id_for``)."""
    d = decision
    if not d.allowed or not d.action:
        return _outcome(d, NOT_RUN, d.guard, f"not run: {d.reason}")

    def refuse(guard: str, reason: str, **evidence: Any) -> Outcome:
        audit.record(
            store, clock, incident_id=d.incident_id, target=d.target, action=d.action, decision=audit.REFUSED,
            guard=guard, detail={"reason": reason, "stage": "execute", **({"evidence": evidence} if evidence else {})},
        )  # fmt: skip
        return _outcome(d, REFUSED, guard, reason)

    try:
        params = remediation_params(d.action, target.host)  # type: ignore[arg-type]
    except CommandError as exc:
        return refuse("host", str(exc))
    try:
        key = machine_key(d.host_key, target.host, resolve_host)
    except Exception as exc:  # noqa: BLE001 - cannot tell which machine: refuse, never guess
        return refuse("host_lock", f"cannot tell which machine {d.host_key} is, so no lease can be taken: {exc}")
    name, owner = lock_name(key), f"{d.incident_id}:{d.action}"
    now = parse_iso(store.store_now())
    if not store.acquire_lock(name, owner, iso(now), iso(now + timedelta(seconds=lock_ttl_s))):
        held = store.get_lock(name)
        who = f"{held.owner}, since {held.acquired_at}" if held else "its holder just left"
        return refuse("host_lock", f"another remediation is in flight on this host ({who}); one at a time")
    try:
        ctx = context_for({}, {}, target, store, clock.now(), d.incident_id, d.action, d.host_key)
        refusal = first_refusal(ctx, RECHECK)
        if refusal is not None:
            store.release_lock(name, owner)
            return refuse(refusal.guard, refusal.reason, **refusal.evidence)
        if not store.claim(d.idempotency_key, clock.iso(), {"state": "claimed", "owner": owner}):
            store.release_lock(name, owner)
            return refuse("idempotency", f"{d.action} was already attempted for incident {d.incident_id}")
        audit.record(
            store, clock, incident_id=d.incident_id, target=d.target, action=d.action, decision=audit.STARTING,
            guard="all", detail={"reason": f"starting `{d.command_text}` under the host lease {name}",
                                 "argv": params.get("argv"), "lease": name},
        )  # fmt: skip
    except BaseException:
        store.release_lock(name, owner)
        raise
    return Ticket(d.to_dict(), name, owner, clock.iso(), params)


def machine_key(host_key: str, host: Any, resolve_host: Callable[[Any], str | None] | None) -> str:
    """The lease key of the machine: a tag-addressed host becomes ``instance:<id>`` when a resolver is given."""
    if resolve_host is None or host is None or not host_key.startswith("tags:"):
        return host_key
    instance = resolve_host(host)
    if not instance:
        raise ValueError("the tags match no single instance")
    return f"instance:{instance}"


def finish_run(ticket: Ticket, result: RunResult, *, store: ResultsStore, clock: Clock) -> None:
    """Record what the command did (the 'ran' entry). The host lease stays held until ``conclude``."""
    d = Decision.from_dict(ticket.decision)
    audit.record(
            store, clock, incident_id=d.incident_id, target=d.target, action=d.action, decision=audit.RAN,
            guard="all",
            detail={
                "reason": f"ran `{d.command_text}`: {result.status} (exit {result.exit_code})",
                "argv": ticket.params.get("argv"),
                "status": result.status,
                "exit_code": result.exit_code,
                "stdout": audit.clip(result.stdout),
                "stderr": audit.clip(result.stderr),
                "error": result.error,
                "duration_ms": result.duration_ms,
                "before": d.before,
            },
        )  # fmt: skip
    store.update_claim(d.idempotency_key, {"state": "ran", "owner": ticket.owner, "status": result.status})


def normalise_check(value: Any) -> dict[str, Any]:
    """bool | (ok, evidence) | {"ok": ...} -> {"ok": bool, "evidence": ...}; anything unclear is a failure."""
    if isinstance(value, bool):
        return {"ok": value, "evidence": None}
    if isinstance(value, tuple) and len(value) == 2:
        return {"ok": value[0] is True, "evidence": value[1]}
    if isinstance(value, Mapping):
        out = {"ok": value.get("ok") is True, "evidence": value.get("evidence", dict(value))}
        if isinstance(value.get("via_proxy"), Mapping):  # the on-box request through nginx (catalogue verify)
            out["via_proxy"] = dict(value["via_proxy"])
        return out
    return {"ok": False, "evidence": {"unexpected": repr(value)[:500]}}


def _call(check: CheckFn) -> dict[str, Any]:
    try:
        return normalise_check(check())
    except Exception as exc:  # noqa: BLE001 - a failing check is evidence for the human, not a crash
        return {"ok": False, "evidence": {"error": f"{type(exc).__name__}: {exc}"[:500]}}


def conclude(
    ticket: Ticket,
    result: RunResult,
    *,
    store: ResultsStore,
    clock: Clock,
    probe: Mapping[str, Any] | None,
    health: Mapping[str, Any] | None,
) -> Outcome:
    """Verified when the command succeeded and every check of the action's catalogue ``verify`` passes; releases
    the host lease, which was held through the settle time and the verification."""
    try:
        return _conclude(ticket, result, store=store, clock=clock, probe=probe, health=health)
    finally:
        store.release_lock(ticket.lock_name, ticket.owner)


def _conclude(ticket: Ticket, result: RunResult, *, store: ResultsStore, clock: Clock,
              probe: Mapping[str, Any] | None, health: Mapping[str, Any] | None) -> Outcome:
    d = Decision.from_dict(ticket.decision)
    took = (clock.now() - parse_iso(ticket.started_at)).total_seconds()
    after = {"probe": dict(probe) if probe else None, "health": dict(health) if health else None}
    if not result.ok:
        reason = f"remediation failed, a human is needed: `{d.command_text}` ended {result.status}"
        reason += f" ({result.error or audit.clip(result.stderr, 300) or 'exit ' + str(result.exit_code)})"
        ok = False
    else:
        checks = _verify_checks(d.action)
        failing = [VERIFY_WORDS[name] for name in checks if not _passed(name, after)]
        ok = not failing
        reason = (
            f"{d.action} fixed it: {' and '.join(VERIFY_WORDS[n] for n in checks)} pass {took:.1f}s after it ran"
            if ok
            else f"remediation failed, a human is needed: {' and '.join(failing)} still failing {took:.1f}s after "
            f"`{d.command_text}`; gatewatch will not try again for this incident"
        )
        if ok and "local_health" not in checks and not (after["health"] or {}).get("ok"):
            reason += ("; the backend's own health path at host.backend_* did not answer: if the backend moved, "
                       "update the target's host section")
    kind, res = (audit.VERIFIED, VERIFIED) if ok else (audit.ESCALATED, ESCALATE)
    audit.record(
        store, clock, incident_id=d.incident_id, target=d.target, action=d.action, decision=kind, guard="verify",
        detail={"reason": reason, "after": after, "duration_s": took, "status": result.status},
    )  # fmt: skip
    store.update_claim(d.idempotency_key, {"state": res, "owner": ticket.owner, "duration_s": took})
    return _outcome(d, res, "verify", reason, run=result.to_dict(), after=after, duration_s=took)


VERIFY_WORDS = {"outside": "the outside probe", "local_health": "the local health check",
                "via_proxy": "the endpoint through nginx on the host"}


def _verify_checks(action: str) -> list[str]:
    """The catalogue's ``verify`` for ``action`` (an action it does not know: the strict default)."""
    from gatewatch.remediation.catalogue import CATALOGUE

    found = CATALOGUE.actions.get(action)
    return list(found.verify) if found is not None else ["outside", "local_health"]


def _passed(name: str, after: Mapping[str, Any]) -> bool:
    if name == "outside":
        return bool((after["probe"] or {}).get("ok"))
    health = after["health"] or {}
    if name == "local_health":
        return bool(health.get("ok"))
    if "via_proxy" not in health:  # a recheck that reports one verdict for the host: that verdict
        return bool(health.get("ok"))
    return bool((health.get("via_proxy") or {}).get("ok"))


def execute(
    decision: Decision,
    target: Target,
    runner: CommandRunner,
    *,
    store: ResultsStore,
    clock: Clock,
    reprobe: CheckFn,
    recheck: CheckFn,
    settle_s: float = DEFAULT_SETTLE_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
) -> Outcome:
    """Run an allowed decision once and verify it: the whole local flow. Never raises for a failed fix."""
    ticket = begin(decision, target, store=store, clock=clock, lock_ttl_s=lock_ttl_s,
                   resolve_host=getattr(runner, "instance_id_for", None))
    if isinstance(ticket, Outcome):
        return ticket
    try:
        result = runner.run_remediation(target.host, decision.action, ticket.params, timeout_s)
    except Exception as exc:  # noqa: BLE001 - a runner bug must still release the lease and reach a human
        result = RunResult(status=ERROR, error=f"{type(exc).__name__}: {exc}")
    finish_run(ticket, result, store=store, clock=clock)
    if not result.ok:
        return conclude(ticket, result, store=store, clock=clock, probe=None, health=None)
    clock.sleep(settle_s)
    return conclude(ticket, result, store=store, clock=clock, probe=_call(reprobe), health=_call(recheck))
