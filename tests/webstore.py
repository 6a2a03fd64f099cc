"""A results store filled from recorded lab facts (tests/events/facts): four targets over 35 days, with incidents
whose verdicts come from walking the real tree over the real recorded facts, and the remediation audit they would
leave. The web, status-page, report and browser tests read it; nothing here talks to a network.

Targets: ``api`` (backend stopped two days ago, restarted automatically and verified), ``shop`` (nginx config
broken, open now, the fix refused), ``admin`` (a firewall rule, eight days ago, recovered after a human fixed it),
``blog`` (always up, certificate 9 days from expiry).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatewatch.clock import iso
from gatewatch.incidents import incident_id_for
from gatewatch.store.base import ActionRecord, Incident, ProbeRecord, ResultsStore, TargetState
from gatewatch.tree import diagnose

FACTS = Path(__file__).parent / "events" / "facts" / "classic"  # the classic topology's recordings
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAYS = 35

# target -> (fault facts, failure start before now, minutes down, how it ended)
SCENARIOS = {
    "api": ("backend_stopped", timedelta(days=2, hours=3), 4, "auto_remediated"),
    "shop": ("nginx_config_broken", timedelta(minutes=50), None, None),
    "admin": ("firewall_drop", timedelta(days=8, hours=5), 95, "recovered"),
}
TLS_DAYS = {"blog": 9.4, "api": 61.2, "shop": 40.0, "admin": 200.5}


def facts_for(name: str, target: str) -> dict[str, Any]:
    doc = json.loads((FACTS / f"{name}.json").read_text())
    doc["target"] = target
    return doc


def _outside(facts: dict[str, Any], at: str, ms: float, tls_days: float | None, now: datetime) -> dict[str, Any]:
    outside = copy.deepcopy(facts["outside"])
    outside["at"] = at
    probe = outside["probe"]
    probe["started_at"] = at
    timings = probe["timings_ms"]
    scale = ms / (timings.get("total") or 1.0)
    for key, value in list(timings.items()):
        if isinstance(value, int | float):
            timings[key] = round(value * scale, 3)
    if tls_days is not None:
        timings["tls"] = round(ms * 0.2, 3)
        probe["tls"] = {"days_to_expiry": tls_days, "not_after": iso(now + timedelta(days=tls_days)),
                        "subject": "CN=example.test", "issuer": "CN=Example CA", "sans": ["example.test"]}
    outside.pop("attempts", None)  # keep the fixture store small; the incident's outside keeps its attempts
    return outside


def _ms(target: str, i: int) -> float:
    """A deterministic response time around a per-target base, with a daily bump."""
    base = {"api": 80.0, "shop": 140.0, "admin": 60.0, "blog": 35.0}[target]
    return round(base * (1 + 0.35 * ((i * 7919) % 97) / 97) + (25.0 if i % 48 in (20, 21) else 0), 2)


def _rounds(now: datetime) -> list[datetime]:
    """Every hour for DAYS days, every 5 minutes over the last day."""
    start = now - timedelta(days=DAYS)
    day = now - timedelta(days=1)
    out, t = [], start
    while t < now:
        out.append(t)
        t += timedelta(minutes=5 if t >= day else 60)
    return out


def fill_store(store: ResultsStore, now: datetime = NOW) -> dict[str, Any]:
    """Write probes, states, incidents and the audit; return what was written, for the tests' assertions."""
    healthy = facts_for("healthy", "x")
    written: dict[str, Any] = {"incidents": {}, "verdicts": {}, "facts": {}}
    for target in ("admin", "api", "blog", "shop"):
        scenario = SCENARIOS.get(target)
        fault = facts_for(scenario[0], target) if scenario else None
        start = now - scenario[1] if scenario else None
        end = start + timedelta(minutes=scenario[2]) if scenario and scenario[2] is not None else None
        down_rounds = []
        for i, t in enumerate(_rounds(now)):
            failing = start is not None and t >= start and (end is None or t < end)
            source = fault if failing else healthy
            ms = _ms(target, i) if not failing else 3.0 + i % 5
            outside = _outside(source, iso(t), ms, TLS_DAYS[target], now)
            outside["target"] = target
            store.record_probe(ProbeRecord(target, iso(t), outside["status"], outside["probe"].get("reason"),
                                           outside["probe"]["timings_ms"]["total"], outside))
            if failing:
                down_rounds.append(t)
        state = TargetState(target, updated_at=iso(now), since=iso(now - timedelta(days=DAYS)))
        if scenario:
            opened = down_rounds[1] if len(down_rounds) > 1 else down_rounds[0]  # failure_threshold 2
            incident_id = incident_id_for(target, opened)
            fault["incident_id"] = incident_id
            fault["collected_at"] = iso(opened + timedelta(seconds=6))
            fault["outside"]["at"] = iso(opened)
            verdict = diagnose(fault)
            incident = Incident(id=incident_id, target=target, opened_at=iso(opened + timedelta(seconds=2)),
                                category=verdict["category"], title=verdict["title"], verdict=verdict, facts=fault,
                                outside=fault["outside"])
            store.create_incident(incident)
            remediation = _audit(store, target, incident_id, verdict, opened)
            changes: dict[str, Any] = {"remediation": remediation}
            if scenario[3]:
                resolved = end if scenario[3] == "recovered" else opened + timedelta(seconds=48)
                changes.update(status="resolved", resolved_at=iso(resolved), resolution=scenario[3],
                               duration_s=(resolved - opened).total_seconds())
            else:
                state = TargetState(target, "DOWN", len(down_rounds), 0, incident_id, iso(opened), iso(now))
            store.update_incident(incident_id, **changes)
            written["incidents"][target] = incident_id
            written["verdicts"][target] = verdict
            written["facts"][target] = fault
        store.put_state(state, 0)
    return written


def _audit(store: ResultsStore, target: str, incident_id: str, verdict: dict[str, Any], opened: datetime) -> dict:
    at = opened + timedelta(seconds=7)

    def rec(decision: str, action: str, guard: str, seconds: float, **detail: Any) -> None:
        store.record_action(ActionRecord(incident_id, target, action, decision, guard,
                                         iso(at + timedelta(seconds=seconds)), detail))

    action = verdict.get("remediation")
    if action == "restart_backend":
        command = "supervisorctl -c /tmp/gatewatch-lab/supervisord.conf restart bandarupay-backend"
        rec("considered", action, "verdict", 0, reason=f"the verdict {verdict['category']} suggests {action}")
        rec("allowed", action, "all", 0.2, reason="every guard passed: mode auto, no fix in the last hour, host lock")
        rec("ran", action, "all", 6, reason=f"ran `{command}`: ok (exit 0)", command=command, exit_code=0)
        rec("verified", action, "verify", 38, reason="the site answers 401 from outside and /health is 200 on the box")
        return {"action": action, "mode": "auto", "guard": "all", "result": "verified", "command": command,
                "reason": "every guard passed", "summary": "restarted and verified"}
    reason = (verdict.get("never_automate") or [None])[0] or f"the verdict ({verdict['category']}) names no safe " \
        "automatic fix"
    rec("no_action", "none", "catalogue", 0, reason=reason)
    return {"action": None, "mode": "auto", "guard": "catalogue", "result": "none", "reason": reason,
            "summary": reason}


def filled_db(path: Path, now: datetime = NOW) -> dict[str, Any]:
    """The same fill written to a SQLite file in one go (filling the file row by row, each row its own
    transaction, takes half a minute on a busy disk)."""
    import sqlite3

    from gatewatch.store import SQLiteStore

    memory = SQLiteStore(":memory:")
    written = fill_store(memory, now)
    with sqlite3.connect(str(path)) as target:
        memory._db.backup(target)
    target.close()
    memory.close()
    return written


def _strings(doc, out: set[str]) -> set[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            _strings(key, out)
            _strings(value, out)
    elif isinstance(doc, list):
        for value in doc:
            _strings(value, out)
    elif isinstance(doc, str):
        out.add(doc)
    return out


def private_strings(store, written) -> set[str]:
    """Every distinctive string the store holds about incidents, verdicts, facts and probes."""
    found: set[str] = set()
    for incident in store.list_incidents(limit=100):
        _strings({k: v for k, v in incident.to_dict().items() if k not in ("status", "opened_at", "resolved_at")},
                 found)
    for record in store.history(limit=50):
        _strings(record.result, found)
    found |= {"127.0.0.1", ":8000", "18080", "/tmp/gatewatch-lab", "bandarupay", "nginx", "supervisorctl",
              "/api/v1", "http://127", "502", "Bad Gateway"}
    found |= set(written["incidents"].values())
    # short or generic strings (units, booleans, statuses, category words) are not evidence of a leak
    return {s for s in found if len(s) >= 6 and not re.fullmatch(r"[A-Za-z_]+|[\d.:TZ-]+|\w+ \w+", s)} | {
        "127.0.0.1", "18080", "502", "bandarupay", "nginx", "supervisorctl"}
