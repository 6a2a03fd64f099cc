"""What each Lambda of the AWS deployment does, as plain functions over JSON (the Step Functions state).

The handlers in ``functions/`` only parse the event, build the adapters (DynamoDB store, SNS, Parameter Store) and
call these, so every step is testable without AWS and the library keeps no AWS SDK in its domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gatewatch.clock import Clock
from gatewatch.facts import build_facts, config_section, local_health_check, outside_check, run_from_invocation
from gatewatch.incidents import resolve_auto_remediated
from gatewatch.messages import incident_opened, outside_summary, subject_line
from gatewatch.pipeline import Pipeline, RoundReport, fetch_openapi_paths
from gatewatch.store.base import Incident, ResultsStore
from gatewatch.tree import derive, load_tree, verdict_from_trail
from gatewatch.tree.asl import trail_nodes

if TYPE_CHECKING:  # the pydantic models cost ~150 ms to import: a handler loads them when it parses a config
    from gatewatch.config.models import Config, Target

MODES = ("off", "suggest", "auto")
log = logging.getLogger("gatewatch.steps")


def onbox_params_b64(target: Target) -> str:
    from gatewatch.onbox.params import encode_params, onbox_params

    return encode_params(onbox_params(target))


def execution_host(host: Any) -> dict[str, Any]:
    """$.host of the state machine: the instance id, or the EC2 filters its HostByTags state resolves."""
    if host is None:
        return {}
    if host.instance_id:
        return {"instance_id": host.instance_id}
    if host.instance_tags:
        filters = [{"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(host.instance_tags.items())]
        return {"instance_filters": filters + [{"Name": "instance-state-name", "Values": ["running"]}]}
    return {}


def execution_input(target: Target, incident_id: str, outside: dict[str, Any]) -> dict[str, Any]:
    """What the DiagnoseStateMachine starts with (small: the facts are built inside it)."""
    host = execution_host(target.host)
    return {
        "incident_id": incident_id,
        "target": target.name,
        "outside": outside,
        "config": config_section(target),
        "host": host,
        "onbox_params": onbox_params_b64(target) if target.host else "",
    }


class StartDiagnosis:
    """The AWS ``on_open``: start one execution named after the incident, then mark the incident as started.

    The incident was written in the same transaction as the DOWN state, so it exists before anything can fail
    here. A failed StartExecution (or a prober killed before it) leaves ``diagnosis_started_at`` empty, and the
    next round re-drives it (``Pipeline.redrive``); the execution name is the incident id, so a start that did
    happen is never repeated (ExecutionAlreadyExists counts as started).
    """

    def __init__(self, store: ResultsStore, start_execution: Callable[[str, dict[str, Any]], bool],
                 clock: Clock, resolver: Any = None):
        self.store, self.start_execution, self.clock, self.resolver = store, start_execution, clock, resolver

    def __call__(self, target: Target, outside: dict[str, Any], incident_id: str, report: RoundReport) -> None:
        if ((outside.get("probe") or {}).get("http") or {}).get("status") == 404:
            outside = outside | {"openapi_paths": fetch_openapi_paths(target, self.resolver)}
        report.event = "opened"
        if self.store.get_incident(incident_id) is None:  # opened without open_incident (an older prober)
            self.store.create_incident(Incident(
                id=incident_id, target=target.name, opened_at=self.clock.iso(), category=None,
                title=f"{target.name} is down: diagnosing ({outside_summary(outside)[:120]})", outside=outside))
        try:
            started = self.start_execution(incident_id, execution_input(target, incident_id, outside))
        except Exception as exc:  # noqa: BLE001 - the incident stays open without a diagnosis; re-driven next round
            log.error("incident %s: StartExecution failed (%s); the next round starts it again", incident_id,
                      type(exc).__name__)
            report.remediation = {"started": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
            return
        self.store.update_incident(incident_id, diagnosis_started_at=self.clock.iso())
        report.remediation = {"started": started}


def probe_step(config: Config, store: ResultsStore, notifier: Any, start_execution: Callable[[str, dict], bool],
               clock: Clock | None = None, resolver: Any = None, budget_s: float | None = None,
               targets: list[Target] | None = None) -> list[RoundReport]:
    """ProbeFunction: one round over every target (or a shard's ``targets``); opens (starts a diagnosis) and
    resolves incidents."""
    clock = clock or Clock()
    pipeline = Pipeline(config, store, notifier, clock=clock, resolver=resolver)
    pipeline.on_open = StartDiagnosis(store, start_execution, clock, resolver)
    return pipeline.run_once(targets=targets, budget_s=budget_s)


ROUND_RESERVE_S = 4.0  # kept back from the invocation's remaining time: record the last results, emit metrics


def round_budget(remaining_ms: int | None, reserve_s: float = ROUND_RESERVE_S) -> float | None:
    """The probing budget of one invocation: its remaining time less a reserve (and at most 90% of it)."""
    if remaining_ms is None:
        return None
    remaining = remaining_ms / 1000.0
    return max(0.5, min(remaining - reserve_s, remaining * 0.9))


def facts_step(state: dict[str, Any], clock: Clock | None = None) -> dict[str, Any]:
    """FactsFunction: the SSM invocation (if any) + the outside round -> facts and the tree's signals."""
    run = run_from_invocation(state.get("Onbox_invocation"))
    facts = build_facts(state["target"], state["outside"], run, state.get("config") or {},
                        incident_id=state.get("incident_id"), clock=clock)
    signals, errors = derive(facts)
    if errors:
        facts["signal_errors"] = errors
    return {"facts": facts, "signals": signals}


def _facts_of(state: dict[str, Any]) -> dict[str, Any]:
    facts = (state.get("diag") or {}).get("facts")
    if facts:
        return facts
    return build_facts(state.get("target", "?"), state.get("outside") or {}, None, state.get("config") or {},
                       incident_id=state.get("incident_id"))


def _mode(target: Target | None, ceiling: str) -> str:
    if target is None:
        return "off"
    requested = target.remediation.mode
    return MODES[min(MODES.index(requested), MODES.index(ceiling if ceiling in MODES else "off"))]


def record_step(state: dict[str, Any], store: ResultsStore, config: Config | None, ceiling: str = "suggest",
                clock: Clock | None = None) -> dict[str, Any]:
    """RecordFunction (verdict): render the walk the state machine made, store it, word the notification."""
    clock = clock or Clock()
    facts = _facts_of(state)
    decision = state.get("decision") or {}
    verdict = verdict_from_trail(facts, decision.get("leaf", "__error__"), trail_nodes(decision.get("trail", "")),
                                 load_tree(), error=decision.get("error"))
    incident_id = state["incident_id"]
    target = _target(config, state["target"])
    if store.get_incident(incident_id) is None:
        store.create_incident(Incident(id=incident_id, target=state["target"], opened_at=clock.iso()))
    store.update_incident(incident_id, category=verdict["category"], title=verdict["title"], verdict=verdict,
                          facts=facts)
    mode = _mode(target, ceiling)
    candidate = bool(verdict.get("remediation")) and mode != "off" and target is not None
    remediation = None
    if verdict.get("remediation") and not candidate:
        remediation = {"action": verdict["remediation"], "result": "refused", "mode": mode,
                       "summary": f"remediation mode is {mode}: {verdict['remediation']} is not considered"}
    subject, text = incident_opened(incident_id, state["target"], state.get("outside") or facts.get("outside") or {},
                                    verdict, remediation)
    return {"verdict": verdict, "notification": {"subject": subject, "text": text, "kind": "diagnosed"},
            "remediation_candidate": candidate}


def _target(config: Config | None, name: str) -> Target | None:
    if config is None:
        return None
    try:
        return config.target(name)
    except KeyError:
        return None


def guard_step(state: dict[str, Any], store: ResultsStore, config: Config, ceiling: str,
               clock: Clock | None = None, settle_s: float = 10.0) -> dict[str, Any]:
    """GuardFunction: the guardrails decide; an allowed action gets the host lease and its SSM parameters."""
    from gatewatch.remediation import Outcome, begin, plan

    clock = clock or Clock()
    target = config.target(state["target"])
    verdict = (state.get("record") or {}).get("verdict") or {}
    decision = plan(verdict, _facts_of(state), target, store=store, clock=clock, ceiling=ceiling,
                    incident_id=state["incident_id"])
    if not decision.allowed:
        return {"allowed": False, "parameters": {}, "settle_s": 0, "decision": {"decision": decision.to_dict()}}
    ticket = begin(decision, target, store=store, clock=clock)
    if isinstance(ticket, Outcome):
        return {"allowed": False, "parameters": {}, "settle_s": 0,
                "decision": {"decision": decision.to_dict(), "outcome": ticket.to_dict()}}
    host = target.host
    parameters = {
        "Action": [decision.action],
        "ServiceManager": [host.service_manager],
        "Service": [host.service or ""],
        "ProxyService": [host.proxy_service],
        "SupervisorConfig": [host.supervisor_config or ""],
        "NginxBin": [host.nginx_bin],
        "NginxConf": [host.nginx_conf or ""],
        "NginxPrefix": [host.nginx_prefix or ""],
    }
    return {"allowed": True, "parameters": parameters, "settle_s": int(settle_s),
            "decision": {"decision": decision.to_dict(), "ticket": ticket.to_dict()}}


def reprobe_step(state: dict[str, Any], config: Config, clock: Clock | None = None,
                 resolver: Any = None) -> dict[str, Any]:
    """ReprobeFunction: the outside probe again, and the local health check from the verification run."""
    from gatewatch.probe import probe_target

    target = config.target(state["target"])
    result = probe_target(target, clock=clock, resolver=resolver).to_dict()
    probe = outside_check(result) | {"summary": outside_summary(result)}
    health = local_health_check(run_from_invocation(state.get("Verify_invocation")))
    return {"probe": probe, "health": health}


def record_outcome_step(state: dict[str, Any], store: ResultsStore, clock: Clock | None = None) -> dict[str, Any]:
    """RecordFunction (outcome): conclude the remediation (verified or escalate), resolve when verified."""
    from gatewatch.remediation import Decision, Ticket, conclude, finish_run
    from gatewatch.runner.base import RunResult

    clock = clock or Clock()
    record = state.get("record") or {}
    verdict = record.get("verdict") or {}
    guard = (state.get("guard") or {}).get("decision") or {}
    incident_id, target_name = state["incident_id"], state["target"]
    if guard.get("ticket"):
        ticket = Ticket.from_dict(guard["ticket"])
        run = run_from_invocation(state.get("Fix_invocation")) or RunResult(status="Error", error="no invocation")
        finish_run(ticket, run, store=store, clock=clock)
        reprobe = state.get("reprobe") or {}
        outcome = conclude(ticket, run, store=store, clock=clock, probe=reprobe.get("probe"),
                           health=reprobe.get("health")).to_dict()
        remediation = {"action": outcome["action"], "result": outcome["result"], "guard": outcome["guard"],
                       "summary": outcome["message"], "duration_s": outcome.get("duration_s")}
    else:
        d = Decision.from_dict(guard["decision"]) if guard.get("decision") else None
        refusal = guard.get("outcome") or {}
        remediation = {
            "action": d.action if d else verdict.get("remediation"),
            "result": refusal.get("result") or ("suggested" if d and d.would_run else "refused"),
            "guard": refusal.get("guard") or (d.guard if d else "unknown"),
            "mode": d.mode if d else None,
            "summary": refusal.get("message") or (d.reason if d else (state.get("error") or {}).get("Cause")),
        }
    store.update_incident(incident_id, remediation=remediation)
    if remediation["result"] == "verified":
        resolve_auto_remediated(store, clock, target_name, incident_id)
    subject, text = incident_opened(incident_id, target_name, state.get("outside") or {}, verdict, remediation)
    if remediation["result"] == "verified":
        subject = subject_line("FIXED", target_name, verdict.get("category"), f"{remediation['action']} verified")
    elif remediation["result"] == "escalate":
        subject = subject_line("HUMAN NEEDED", target_name, verdict.get("category"),
                               f"{remediation['action']} did not fix it")
    kind = {"verified": "remediated", "escalate": "escalated"}.get(remediation["result"], "diagnosed")
    return {"verdict": verdict, "notification": {"subject": subject, "text": text, "kind": kind},
            "remediation_candidate": False}
