"""The local pipeline (the embedded default): probe -> confirm -> state -> on-box facts -> tree -> record -> notify
-> remediate -> verify.

Every edge is a port: the store (SQLite locally), the notifier (console, SNS), the command runner (a local
process, SSM), the clock. ``gatewatch run`` and ``gatewatch lab demo`` drive it; the Lambda handlers reuse the
same pieces (``handle_result``'s state logic, ``collect_facts``, the tree) in AWS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gatewatch.clock import Clock, iso
from gatewatch.facts import (
    build_facts,
    config_section,
    local_health_check,
    openapi_paths,
    openapi_url,
    outside_check,
)
from gatewatch.incidents import OPENED, RESOLVED, apply_result, resolve_auto_remediated
from gatewatch.messages import incident_opened, incident_resolved, outside_summary
from gatewatch.probe import probe_targets, probe_url
from gatewatch.runner.base import CommandRunner
from gatewatch.store.base import Incident, ProbeRecord, ResultsStore, TargetState
from gatewatch.store.compact import compact_result
from gatewatch.store.exceptions import ConflictError
from gatewatch.tree import diagnose

if TYPE_CHECKING:  # annotations only: the pydantic models load when a config is parsed
    from gatewatch.config.models import Config, Target

log = logging.getLogger("gatewatch.pipeline")
ONBOX_TIMEOUT_S = 30.0


# Results a budgeted round lets the probes finish ahead of its recording (a few KB each): the probes are not held
# to the pace of the store's writes, and memory stays bounded whatever the fleet.
HAND_OVER_BUFFER = 1024


@dataclass
class RoundReport:
    """What one round did for one target (the CLI prints these; tests assert them)."""

    target: str
    status: str
    reason: str | None
    event: str | None = None  # opened | resolved | None
    incident_id: str | None = None
    verdict: dict[str, Any] | None = None
    remediation: dict[str, Any] | None = None
    transient: bool = False
    latency_ms: float | None = None
    facts: dict[str, Any] | None = field(default=None, repr=False)
    cert_days_left: float | None = None  # the public certificate's days to expiry (CertDaysLeft metric)
    certificate: dict[str, Any] | None = field(default=None, repr=False)  # tls_certificate_expiring verdict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_runner_for(target: Target) -> CommandRunner | None:
    """Locally for ``host.local``; SSM with the user's credentials for an instance; None without a host."""
    host = target.host
    if host is None:
        return None
    if host.local:
        from gatewatch.runner.local import LocalRunner

        return LocalRunner()
    if host.instance_id or host.instance_tags:
        from gatewatch.runner.ssm import SSMRunner

        return SSMRunner()
    return None


def fetch_openapi_paths(target: Target, resolver: Any = None) -> list[str]:
    """The backend's routes from its OpenAPI document at the same origin (bounded; empty when absent)."""
    headers = {k: v for k, v in target.headers.items() if k.lower() in ("host", "user-agent")}
    result = probe_url(
        openapi_url(target.url), headers=headers, timeout_s=min(5.0, target.timeout_s), max_body_bytes=1024 * 1024,
        verify_tls=target.verify_tls, ca_file=target.tls_ca_file, resolve_to=target.resolve_to, resolver=resolver,
    )
    return openapi_paths((result.to_dict().get("http") or {}).get("json"))


def collect_facts(target: Target, outside: dict[str, Any], runner: CommandRunner | None, *,
                  incident_id: str | None = None, clock: Clock | None = None, resolver: Any = None) -> dict[str, Any]:
    """Outside round + on-box report (+ the OpenAPI routes when the probed route is a 404) as one document."""
    run = None
    if runner is not None and target.host is not None:
        from gatewatch.onbox.params import onbox_params

        run = runner.run_onbox(target.host, onbox_params(target), timeout_s=ONBOX_TIMEOUT_S)
    routes = None
    if ((outside.get("probe") or {}).get("http") or {}).get("status") == 404:
        routes = fetch_openapi_paths(target, resolver)
    return build_facts(target.name, outside, run, config_section(target), incident_id=incident_id, clock=clock,
                       openapi_paths=routes)


def notification_data(config: Config, target: str, incident_id: str | None, data: dict) -> dict:
    """The structured part every channel may use: the target's URL and the incident's link, then ``data``."""
    out: dict[str, Any] = {}
    try:
        out["url"] = config.target(target).url
    except KeyError:
        pass
    template = config.notifications.dashboard_url
    if template and incident_id:
        out["dashboard_url"] = template.replace("{incident_id}", incident_id).replace("{target}", target)
    return out | data


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: ResultsStore,
        notifier: Any,
        *,
        clock: Clock | None = None,
        runner_for: Callable[[Target], CommandRunner | None] = default_runner_for,
        resolver: Any = None,
        remediator: Callable[..., dict[str, Any] | None] | None = None,
    ):
        self.config = config
        self.store = store
        self.notifier = notifier
        self.clock = clock or Clock()
        self.runner_for = runner_for
        self.resolver = resolver
        self.remediator = remediator
        # what to do when an incident opens: diagnose here (local) or hand it to a state machine (AWS)
        self.on_open: Callable[[Target, dict[str, Any], str, RoundReport], None] = self._open
        from gatewatch.moments import Moments

        self.moments = Moments(self)  # certificate expiry, flapping, reminders, catch-up after maintenance

    # -- one round -------------------------------------------------------------------------------------------
    def run_once(self, targets: list[Target] | None = None, budget_s: float | None = None) -> list[RoundReport]:
        """One round. With ``budget_s`` (Lambda: from the remaining time; locally: from the interval) each result
        is recorded as soon as it is known, and targets still unanswered when the budget ends are recorded as
        ``skipped`` with the reason, so the round always ends in time."""
        targets = targets or list(self.config.targets)
        retry = getattr(self.notifier, "retry_pending", None)
        if retry is not None:  # deliveries that failed on an earlier round (gatewatch.notify.dispatch)
            try:
                retry()
            except Exception:  # noqa: BLE001 - a failed notification is retried next round, never aborts this one
                log.exception("retrying pending notifications failed; the next round tries again")
        if budget_s is None:
            results = probe_targets(targets, concurrency=self.config.settings.concurrency, clock=self.clock,
                                    resolver=self.resolver)
            return [self.handle_result_guarded(t, r.to_dict()) for t, r in zip(targets, results, strict=True)]
        return self._run_budgeted(targets, budget_s)

    def _run_budgeted(self, targets: list[Target], budget_s: float) -> list[RoundReport]:
        from gatewatch.probe.round import iter_probe_targets

        deadline = time.monotonic() + max(0.0, budget_s)
        reports: dict[int, RoundReport] = {}
        if not targets:
            return []
        concurrency = max(1, min(self.config.settings.concurrency, len(targets)))
        # The engine's own pool (no Future a target); unfinished probes are abandoned at the deadline (their
        # sockets end at their own deadlines) and targets not started never start.
        for i, target, result in iter_probe_targets(targets, concurrency, self.clock, self.resolver,
                                                    until=deadline, isolate=True, buffer=HAND_OVER_BUFFER):
            if isinstance(result, Exception):  # reported against this target only
                reports[i] = RoundReport(target.name, "error", f"{type(result).__name__}: {result}"[:500])
                continue
            reports[i] = self.handle_result_guarded(target, result.to_dict())  # recorded as soon as known
            if time.monotonic() >= deadline:
                break
        for i, target in enumerate(targets):
            if i not in reports:
                reports[i] = self._skipped(target, budget_s)
        return [reports[i] for i in range(len(targets))]

    def _skipped(self, target: Target, budget_s: float) -> RoundReport:
        reason = f"not reached in time: the round's budget of {budget_s:.1f}s ran out first"
        try:
            self.store.record_probe(ProbeRecord(target=target.name, at=self.clock.iso(), status="skipped",
                                                reason=reason, total_ms=None,
                                                result={"status": "skipped", "reason": reason}))
        except Exception:  # noqa: BLE001 - the report still says skipped
            log.exception("target %s: recording the skip failed", target.name)
        return RoundReport(target.name, "skipped", reason)

    def handle_result_guarded(self, target: Target, outside: dict[str, Any]) -> RoundReport:
        """``handle_result`` under this target's own error boundary: a failure is reported against this target
        (status ``error``) and never stops the round for the others."""
        try:
            return self.handle_result(target, outside)
        except Exception as exc:  # noqa: BLE001 - one target's failure must not break the round
            log.exception("target %s: recording this round failed", target.name)
            return RoundReport(target.name, "error", f"{type(exc).__name__}: {exc}"[:500],
                               latency_ms=((outside.get("probe") or {}).get("timings_ms") or {}).get("total"))

    def handle_result(self, target: Target, outside: dict[str, Any]) -> RoundReport:
        probe = outside.get("probe") or {}
        report = RoundReport(target.name, outside["status"], probe.get("reason"),
                             transient=bool(outside.get("transient")),
                             latency_ms=(probe.get("timings_ms") or {}).get("total"))
        record = outside
        if report.transient and target.host is not None and self.on_open == self._open:
            # a blip the retry cleared: no incident, but intermittent causes (localhost -> [::1], keep-alive
            # resets) only show on the box, so look once and keep the verdict with the probe
            report.facts, report.verdict = self.diagnose(target, outside)
            record = outside | {"diagnosis": {k: report.verdict[k] for k in ("category", "title", "leaf")}}
        days = ((probe.get("tls") or {}).get("days_to_expiry"))
        report.cert_days_left = round(float(days), 2) if isinstance(days, int | float) else None
        report.certificate = self.moments.certificate_verdict(target, outside)
        if report.certificate is not None:  # produced on up rounds too: expiry is independent of up/down
            report.verdict = report.verdict or report.certificate
            record = record | {"certificate": report.certificate["certificate"]}
        self.store.record_probe(ProbeRecord(
            target=target.name, at=outside.get("at") or self.clock.iso(), status=outside["status"],
            reason=probe.get("reason"), total_ms=report.latency_ms, result=compact_result(record),
        ))
        transition, flap, was_flapping = self._advance_state(target, up=outside["status"] != "down",
                                                             outside=outside)
        report.incident_id = transition.incident_id
        if transition.event == OPENED:
            self.on_open(target, outside, transition.incident_id, report)
        elif transition.event is None and transition.state.status == "DOWN" and transition.incident_id:
            self.redrive(target, outside, transition.incident_id, report)
        elif transition.event == RESOLVED:
            self._resolve(target, transition.incident_id, transition.duration_s, report)
        self.moments.after_round(target, outside, transition.state, flap, report, was_flapping)
        return report

    def _advance_state(self, target: Target, up: bool, outside: dict[str, Any] | None = None):
        """Apply the round to the stored UP/DOWN state with a conditional write (re-read on a lost race).

        Returns the transition, the flapping event of gatewatch.moments (or None) and the flapping incident
        that was open before this round."""
        for _ in range(5):
            state = self.store.get_state(target.name) or TargetState(target=target.name)
            transition = apply_result(state, up, self.clock.now(), target.alerting.failure_threshold,
                                      target.alerting.success_threshold)
            flap = self.moments.advance(target, state, transition.state, outside or {"status": "up" if up
                                                                                         else "down"})
            try:
                if transition.event == OPENED:  # the incident is written with the DOWN state, atomically
                    self.store.open_incident(transition.state, state.version,
                                             self.opening_incident(target, transition.incident_id, outside))
                else:
                    self.store.put_state(transition.state, expected_version=state.version)
            except ConflictError:
                continue
            return transition, flap, state.flapping_incident_id
        raise ConflictError(f"state of {target.name} kept changing under this prober")

    def opening_incident(self, target: Target, incident_id: str, outside: dict[str, Any] | None) -> Incident:
        """The incident as the DOWN transition writes it: open, diagnosing, with the round that opened it."""
        outside = outside or {}
        return Incident(id=incident_id, target=target.name, opened_at=self.clock.iso(), category=None,
                        title=f"{target.name} is down: diagnosing ({outside_summary(outside)[:120]})",
                        outside=outside)

    def redrive(self, target: Target, outside: dict[str, Any], incident_id: str, report: RoundReport) -> None:
        """An open incident whose diagnosis never started (the prober died, StartExecution failed) gets it now.

        Runs on every round where the target stays DOWN; reads one incident. Starting is idempotent (locally the
        verdict is written before the notification; on AWS the execution is named after the incident)."""
        incident = self.store.get_incident(incident_id)
        if incident is None:  # a DOWN state written by an older prober without its incident
            incident = self.opening_incident(target, incident_id, outside)
            self.store.create_incident(incident)
        if incident.status != "open" or incident.diagnosis_started_at or incident.notified_at:
            return
        log.warning("incident %s has no diagnosis: starting it again", incident_id)
        self.on_open(target, incident.outside or outside, incident_id, report)
        report.event = "redriven"

    def diagnose_failing_round(self, target: Target, outside: dict[str, Any], incident_id: str | None = None):
        """Facts and verdict for a failing round: with the on-box checks locally, from the outside in AWS (the
        state machine owns on-box runs there)."""
        if self.on_open == self._open:
            return self.diagnose(target, outside, incident_id)
        facts = collect_facts(target, outside, None, incident_id=incident_id, clock=self.clock,
                              resolver=self.resolver)
        return facts, diagnose(facts)

    def _open(self, target: Target, outside: dict[str, Any], incident_id: str, report: RoundReport) -> None:
        facts, verdict = self.diagnose(target, outside, incident_id)
        report.event, report.verdict, report.facts = OPENED, verdict, facts
        if self.store.get_incident(incident_id) is None:  # opened by a store or caller without open_incident
            self.store.create_incident(self.opening_incident(target, incident_id, outside))
        self.store.update_incident(incident_id, category=verdict["category"], title=verdict["title"],
                                   verdict=verdict, facts=facts)
        remediation = None
        if self.remediator is not None:
            remediation = self.remediator(target=target, incident_id=incident_id, facts=facts, verdict=verdict)
            report.remediation = remediation
            if remediation:
                self.store.update_incident(incident_id, remediation=remediation)
        subject, text = incident_opened(incident_id, target.name, outside, verdict, remediation)
        self._notify("diagnosed", target.name, incident_id, subject, text, {"verdict": verdict})
        self.store.update_incident(incident_id, notified_at=self.clock.iso())  # a re-drive stops here
        if remediation and remediation.get("result") == "verified":
            self._finish_auto_remediated(target, incident_id, report, remediation)

    def _finish_auto_remediated(self, target: Target, incident_id: str, report: RoundReport,
                                remediation: dict[str, Any]) -> None:
        duration = resolve_auto_remediated(self.store, self.clock, target.name, incident_id)
        incident = self.store.get_incident(incident_id)
        report.event = RESOLVED
        subject, text = incident_resolved(incident_id, target.name, duration, "auto_remediated",
                                          incident.category if incident else None)
        self._notify("remediated", target.name, incident_id, subject, text, {"remediation": remediation})

    def _resolve(self, target: Target, incident_id: str | None, duration_s: float | None, report: RoundReport,
                 resolution: str = "recovered") -> None:
        report.event = RESOLVED
        if not incident_id or self.store.get_incident(incident_id) is None:
            return
        incident = self.store.update_incident(incident_id, status="resolved", resolved_at=iso(self.clock.now()),
                                              duration_s=duration_s, resolution=resolution)
        subject, text = incident_resolved(incident_id, target.name, duration_s, resolution, incident.category)
        self._notify("resolved", target.name, incident_id, subject, text, {"resolution": resolution})

    def diagnose(self, target: Target, outside: dict[str, Any], incident_id: str | None = None):
        facts = collect_facts(target, outside, self.runner_for(target), incident_id=incident_id, clock=self.clock,
                              resolver=self.resolver)
        return facts, diagnose(facts)

    def _notify(self, kind: str, target: str, incident_id: str, subject: str, text: str, data: dict) -> None:
        """Tell humans, unless the target is in a maintenance window (probing and recording go on regardless)."""
        from gatewatch.notify import Notification
        from gatewatch.remediation import active_window

        try:
            window = active_window(self.config.target(target), self.clock.now())
        except KeyError:
            window = None
        if window is not None:
            log.info("%s %s not sent: %s is in a maintenance window", kind, incident_id, target)
            return

        self.notifier.send(Notification(kind=kind, target=target, incident_id=incident_id, subject=subject,
                                        text=text, data=notification_data(self.config, target, incident_id, data)))


class Remediator:
    """The remediation step of the local pipeline: plan under the guardrails, run once, verify, say what happened.

    Verification re-runs the outside probe and the on-box local health check (through the same runner, so it
    works for a host inside a network namespace or behind SSM).
    """

    def __init__(self, store: ResultsStore, clock: Clock, *, ceiling: str = "auto",
                 runner_for: Callable[[Target], CommandRunner | None] = default_runner_for, resolver: Any = None,
                 settle_s: float = 5.0):
        self.store, self.clock, self.ceiling = store, clock, ceiling
        self.runner_for, self.resolver, self.settle_s = runner_for, resolver, settle_s

    def __call__(self, *, target: Target, incident_id: str, facts: dict[str, Any], verdict: dict[str, Any]):
        from gatewatch.remediation import execute, plan

        decision = plan(verdict, facts, target, store=self.store, clock=self.clock, ceiling=self.ceiling,
                        incident_id=incident_id)
        if decision.warning:
            verdict["never_automate"] = [decision.warning]
        summary = {
            "action": decision.action,
            "mode": decision.mode,
            "guard": decision.guard,
            "reason": decision.reason,
            "command": decision.command_text,
        }
        if not decision.allowed:
            if decision.action and decision.would_run:
                summary["result"] = "suggested"
                summary["summary"] = decision.reason
            else:
                # a named action the guards refused, or a cause the catalogue says must never be automated
                summary["result"] = "refused" if decision.action or decision.warning else "none"
                summary["summary"] = decision.reason
            return summary
        runner = self.runner_for(target)
        if runner is None:
            return summary | {"result": "refused", "summary": "no command runner for this host"}
        outcome = execute(decision, target, runner, store=self.store, clock=self.clock,
                          reprobe=lambda: self._reprobe(target), recheck=lambda: self._recheck(target, runner),
                          settle_s=self.settle_s)
        return summary | outcome.to_dict() | {"summary": outcome.message}

    def _reprobe(self, target: Target) -> dict[str, Any]:
        from gatewatch.probe import probe_target

        return outside_check(probe_target(target, clock=self.clock, resolver=self.resolver).to_dict())

    def _recheck(self, target: Target, runner: CommandRunner) -> dict[str, Any]:
        from gatewatch.onbox.params import onbox_params

        return local_health_check(runner.run_onbox(target.host, onbox_params(target), timeout_s=ONBOX_TIMEOUT_S))
