"""The moments worth telling someone about besides DOWN and UP: an expiring certificate, a flapping target, an
incident that is still open (reminders), an incident that opened during a maintenance window (catch-up).

The pipeline calls ``Moments`` once per target per round (locally and in the AWS ProbeFunction). Each moment is
told at most once through a once-only claim in the results store (``claim(key)``), so two probers, a restart or a
retried Lambda never send it twice:

- certificate: ``cert#<target>#<not_after>#warn|critical`` and, below the critical threshold, one reminder a day
  (``...#day#<YYYY-MM-DD>``); a renewed certificate (new not_after) starts afresh.
- flapping: the target state keeps the last rounds as a string (``recent``: 1 failed, 0 passed; a round the retry
  cleared counts as failed); at least ``failures`` of the last ``rounds`` failed opens one flapping incident
  (diagnosed from the failing round), ``rounds`` clean rounds in a row resolve it.
- reminders: every ``reminder_minutes`` while an incident is open (``remind#<incident>#<n>``), saying how long
  it has been open and what changed since it opened and since the last reminder.
- catch-up: an incident opened inside a maintenance window is announced once the window is over
  (``catchup#<incident>``), if it is still open.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gatewatch.clock import iso, parse_iso
from gatewatch.config.models import Target
from gatewatch.incidents import incident_id_for
from gatewatch.messages import evidence_lines, outside_summary, subject_line
from gatewatch.store.base import Incident, TargetState

if TYPE_CHECKING:
    from gatewatch.pipeline import Pipeline, RoundReport

log = logging.getLogger("gatewatch.moments")
WINDOW_MAX = 100  # rounds kept in TargetState.recent
CERT_TRAIL = ["retry_cleared", "outside_ok", "cert_expiring"]


def failed_round(outside: dict[str, Any]) -> bool:
    """A round counts as failed for flapping when it was down or only the confirmation retry saved it."""
    return outside.get("status") == "down" or bool(outside.get("transient"))


def push_recent(recent: str | None, failed: bool, keep: int) -> str:
    return ((recent or "") + ("1" if failed else "0"))[-max(keep, 1):]


def duration_words(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"


def _seen(outside: dict[str, Any]) -> dict[str, Any]:
    probe = outside.get("probe") or {}
    return {"status": (probe.get("http") or {}).get("status"), "reason": probe.get("reason"),
            "summary": outside_summary(outside)}


def _difference(before: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    if not before:
        return None
    if (before.get("status"), before.get("reason")) == (now.get("status"), now.get("reason")):
        return None
    return f"the outside now sees {now['summary']} (was {before.get('summary') or 'something else'})"


class Moments:
    def __init__(self, pipeline: Pipeline):
        self.p = pipeline

    # -- the state write (inside Pipeline._advance_state's conditional-write loop) --------------------------
    def advance(self, target: Target, before: TargetState, after: TargetState, outside: dict[str, Any]) -> str | None:
        """Update ``after`` (about to be written) with this round; returns "flap_open", "flap_resolve" or None."""
        flap = target.alerting.flapping
        keep = min(max(flap.rounds, 1), WINDOW_MAX)
        after.recent = push_recent(before.recent, failed_round(outside), keep)
        if not flap.enabled:
            return None
        window = after.recent[-flap.rounds:]
        if after.flapping_incident_id:
            if len(window) >= flap.rounds and "1" not in window:
                after.flapping_incident_id = None
                return "flap_resolve"
            return None
        if after.status == "UP" and failed_round(outside) and window.count("1") >= flap.failures:
            after.flapping_incident_id = f"{incident_id_for(target.name, self.p.clock.now())}-flapping"[:80]
            return "flap_open"
        return None

    # -- after the round is recorded -------------------------------------------------------------------------
    def after_round(self, target: Target, outside: dict[str, Any], state: TargetState, event: str | None,
                    report: RoundReport, previous_flap: str | None) -> None:
        for step in (lambda: self._certificate(target, outside, report),
                     lambda: self._flapping(target, outside, state, event, report, previous_flap),
                     lambda: self._open_incidents(target, outside, state)):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one moment failing must not cost the round or the others
                log.warning("gatewatch: %s: a notification moment failed: %s", target.name, exc, exc_info=True)

    # -- certificate expiry ----------------------------------------------------------------------------------
    def certificate_verdict(self, target: Target, outside: dict[str, Any]) -> dict[str, Any] | None:
        """The tls_certificate_expiring verdict when the certificate is inside the target's warn_days."""
        cert = target.alerting.certificate
        tls = (outside.get("probe") or {}).get("tls") or {}
        days = tls.get("days_to_expiry")
        if not cert.enabled or not isinstance(days, int | float) or days >= cert.warn_days or days < 0:
            return None
        from gatewatch.facts import build_facts, config_section
        from gatewatch.tree import load_tree, verdict_from_trail

        facts = build_facts(target.name, outside, None, config_section(target), clock=self.p.clock)
        verdict = verdict_from_trail(facts, "tls_expiring", CERT_TRAIL, load_tree())
        level = "critical" if days < cert.critical_days else "warn"
        verdict["certificate"] = {"days_left": round(float(days), 1), "not_after": tls.get("not_after"),
                                  "level": level, "warn_days": cert.warn_days, "critical_days": cert.critical_days}
        return verdict

    def _certificate(self, target: Target, outside: dict[str, Any], report: RoundReport) -> None:
        verdict = report.certificate
        if not verdict:
            return
        info = verdict["certificate"]
        base = f"cert#{target.name}#{info['not_after']}"
        now = self.p.clock.now()
        day_key = f"{base}#day#{now.strftime('%Y-%m-%d')}"
        if self._in_window(target):
            return
        store = self.p.store
        keys = [f"{base}#warn"] + ([f"{base}#critical"] if info["level"] == "critical" else [])
        crossed = [k for k in keys if store.get_claim(k) is None and store.claim(k, iso(now), {"days": info})]
        if crossed:
            if info["level"] == "critical":
                store.claim(day_key, iso(now))  # the crossing is today's notification
            self._send_certificate(target, verdict, crossed[-1].rsplit("#", 1)[-1], reminder=False)
        elif info["level"] == "critical" and store.get_claim(day_key) is None and store.claim(day_key, iso(now)):
            self._send_certificate(target, verdict, "critical", reminder=True)

    def _send_certificate(self, target: Target, verdict: dict[str, Any], level: str, reminder: bool) -> None:
        info = verdict["certificate"]
        state = "CERT CRITICAL" if level == "critical" else "CERT WARNING"
        subject = subject_line(state, target.name, verdict["category"], verdict["title"])
        threshold = info["critical_days"] if level == "critical" else info["warn_days"]
        lead = (f"Daily reminder: the certificate of {target.name} still expires in {info['days_left']} days."
                if reminder else
                f"The certificate of {target.name} expires in {info['days_left']} days: below the "
                f"{level} threshold of {threshold:g} days.")
        lines = [lead, "", f"Verdict: {verdict['category']}", f"  {verdict['title']}", "",
                 "Evidence that decided it:", *evidence_lines(verdict), "", "Why:", f"  {verdict['explanation']}"]
        if verdict.get("next_steps"):
            lines += ["", "Next steps:", *(f"  {i}. {s}" for i, s in enumerate(verdict["next_steps"], 1))]
        lines += ["", "The site is still up; this alert is independent of up/down."]
        self.p._notify("certificate", target.name, None, subject, "\n".join(lines) + "\n",
                       {"verdict": verdict, "certificate": info,
                        "dedup_key": f"{target.name}-cert-{info['not_after']}"})

    # -- flapping ----------------------------------------------------------------------------------------------
    def _flapping(self, target: Target, outside: dict[str, Any], state: TargetState, event: str | None,
                  report: RoundReport, previous: str | None) -> None:
        flap = target.alerting.flapping
        if event == "flap_open":
            self._open_flapping(target, outside, state, report)
        elif event == "flap_resolve" and previous:
            incident = self.p.store.get_incident(previous)
            if incident is None or incident.status == "resolved":
                return
            duration = (self.p.clock.now() - parse_iso(incident.opened_at)).total_seconds()
            self.p.store.update_incident(previous, status="resolved", resolved_at=self.p.clock.iso(),
                                         duration_s=duration, resolution="stable")
            took = duration_words(duration)
            subject = subject_line("RESOLVED", target.name, "flapping", f"stable again after {took}")
            text = (f"{target.name} is stable again: the last {flap.rounds} rounds passed. Flapping incident "
                    f"{previous} resolved after {took}.\n")
            self.p._notify("resolved", target.name, previous, subject, text, {"resolution": "stable"})

    def _open_flapping(self, target: Target, outside: dict[str, Any], state: TargetState,
                       report: RoundReport) -> None:
        flap = target.alerting.flapping
        incident_id = state.flapping_incident_id
        if report.verdict is not None and report.facts is not None:
            facts, cause = report.facts, report.verdict  # this round's transient diagnosis: the failing round
        else:
            facts, cause = self.p.diagnose_failing_round(target, outside, incident_id)
        window = (state.recent or "")[-flap.rounds:]
        failures = window.count("1")
        title = f"{target.name}: flapping, {failures} of the last {len(window)} rounds failed"
        cause_title = str(cause.get("title") or "").removeprefix(f"{target.name}: ")
        verdict = {
            **cause,
            "category": "flapping",
            "cause_category": cause.get("category"),
            "title": title,
            "explanation": (
                f"The target keeps failing and recovering ({failures} of the last {len(window)} rounds failed; "
                f"threshold {flap.failures} of {flap.rounds}), so it never stays down long enough to open an "
                f"incident. The failing round was diagnosed as {cause.get('category')}: {cause_title}. "
                f"{cause.get('explanation') or ''}".strip()
            ),
            "deciding": [{"fact": "recent_rounds", "label": "Recent rounds (oldest first, x failed)",
                          "text": window.replace("1", "x").replace("0", "."), "node": None},
                         *(cause.get("deciding") or [])],
        }
        incident = Incident(id=incident_id, target=target.name, opened_at=self.p.clock.iso(), category="flapping",
                            title=title, verdict=verdict, facts=facts, outside=outside)
        if not self.p.store.create_incident(incident):
            return
        report.event, report.incident_id, report.verdict = "flapping", incident_id, verdict
        subject = subject_line("FLAPPING", target.name, f"flapping ({cause.get('category')})",
                               f"{failures} of the last {len(window)} rounds failed")
        lines = [
            f"{target.name} is FLAPPING (incident {incident_id}): {failures} of the last {len(window)} rounds "
            "failed, though it never stayed down.", "",
            f"Cause found in the failing round: {cause.get('category')} ({cause.get('confidence')} confidence)",
            f"  {cause.get('title')}", "", "Evidence that decided it:", *evidence_lines(verdict), "", "Why:",
            f"  {verdict['explanation']}",
        ]
        if cause.get("next_steps"):
            lines += ["", "Next steps:", *(f"  {i}. {s}" for i, s in enumerate(cause["next_steps"], 1))]
        lines += ["", f"It resolves after {flap.rounds} clean rounds in a row."]
        self.p._notify("diagnosed", target.name, incident_id, subject, "\n".join(lines) + "\n",
                       {"verdict": verdict})

    # -- open incidents: catch-up after maintenance, reminders -------------------------------------------------
    def _open_incidents(self, target: Target, outside: dict[str, Any], state: TargetState) -> None:
        ids = [i for i in (state.incident_id if state.status == "DOWN" else None, state.flapping_incident_id) if i]
        if not ids or self._in_window(target):
            return
        for incident_id in ids:
            incident = self.p.store.get_incident(incident_id)
            if incident is None or incident.status != "open":
                continue
            if not self._catch_up(target, incident, outside):
                self._remind(target, incident, outside)

    def _catch_up(self, target: Target, incident: Incident, outside: dict[str, Any]) -> bool:
        from gatewatch.remediation import active_window
        from gatewatch.remediation.maintenance import describe

        window = active_window(target, parse_iso(incident.opened_at))
        key = f"catchup#{incident.id}"
        if window is None or self.p.store.get_claim(key) is not None:
            return False
        if not self.p.store.claim(key, self.p.clock.iso()):
            return False
        verdict = incident.verdict or {}
        opened = self._age(incident)
        subject = subject_line("STILL DOWN", target.name, incident.category, "opened during maintenance, still open")
        lines = [f"{target.name}: incident {incident.id} opened {opened} ago during the {describe(window)} and is "
                 "still open now that the window is over.", "", f"Now: {outside_summary(outside)}"]
        if verdict:
            lines += ["", f"Verdict: {verdict.get('category')} ({verdict.get('confidence')} confidence)",
                      f"  {verdict.get('title')}", "", "Evidence that decided it:", *evidence_lines(verdict)]
            if verdict.get("next_steps"):
                lines += ["", "Next steps:", *(f"  {i}. {s}" for i, s in enumerate(verdict["next_steps"], 1))]
        self.p._notify("diagnosed", target.name, incident.id, subject, "\n".join(lines) + "\n",
                       {"verdict": verdict, "catch_up": True})
        minutes = target.alerting.reminder_minutes
        if minutes > 0:  # the announcement counts as this period's reminder
            open_s = (self.p.clock.now() - parse_iso(incident.opened_at)).total_seconds()
            n = math.floor(open_s / (minutes * 60))
            if n >= 1:
                self.p.store.claim(f"remind#{incident.id}#{n}", self.p.clock.iso(), {"seen": _seen(outside)})
        return True

    def _remind(self, target: Target, incident: Incident, outside: dict[str, Any]) -> None:
        minutes = target.alerting.reminder_minutes
        if minutes <= 0:
            return
        open_s = (self.p.clock.now() - parse_iso(incident.opened_at)).total_seconds()
        n = math.floor(open_s / (minutes * 60))
        if n < 1:
            return
        key = f"remind#{incident.id}#{n}"
        store = self.p.store
        if store.get_claim(key) is not None:
            return
        seen = _seen(outside)
        if not store.claim(key, self.p.clock.iso(), {"seen": seen}):
            return
        last = store.get_claim(f"remind#{incident.id}#{n - 1}") if n > 1 else None
        changes = []
        since_open = _difference(_seen(incident.outside or {}) if incident.outside else None, seen)
        changes.append(f"Since it opened: {since_open}." if since_open else
                       "Since it opened: the outside still sees the same failure.")
        if last is not None:
            since_last = _difference((last.detail or {}).get("seen"), seen)
            changes.append(f"Since the last reminder: {since_last}." if since_last else
                           "Since the last reminder: nothing changed.")
        remediation = incident.remediation or {}
        if remediation.get("result"):
            changes.append(f"Remediation: {remediation.get('action') or 'none'} {remediation['result']}"
                           + (f" ({remediation['summary']})" if remediation.get("summary") else "") + ".")
        took = self._age(incident)
        state = "STILL FLAPPING" if incident.category == "flapping" else "STILL DOWN"
        subject = subject_line(state, target.name, incident.category, f"open for {took}")
        lines = [f"Reminder {n}: {target.name} incident {incident.id} has been open for {took} "
                 f"(since {incident.opened_at}).", "", f"Now: {seen['summary']}", *changes]
        if incident.title:
            lines += ["", f"Verdict: {incident.category}", f"  {incident.title}"]
        lines += ["", f"Next reminder in {minutes} min while it stays open (alerting.reminder_minutes)."]
        self.p._notify("reminder", target.name, incident.id, subject, "\n".join(lines) + "\n",
                       {"category": incident.category, "open_s": round(open_s), "reminder": n})

    # -- helpers -----------------------------------------------------------------------------------------------
    def _age(self, incident: Incident) -> str:
        return duration_words((self.p.clock.now() - parse_iso(incident.opened_at)).total_seconds())

    def _in_window(self, target: Target, when: datetime | None = None) -> bool:
        from gatewatch.remediation import active_window

        return active_window(target, when or self.p.clock.now()) is not None
