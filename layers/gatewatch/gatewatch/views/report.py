"""``gatewatch report``: uptime, incidents, time to detect / verdict / recover, share auto-remediated, and the root
causes found next to the runbook's guess, per target and for the fleet.

Definitions (docs/report.md): a round counts as up unless it was down (degraded is up). An incident's failure
start is its first failing round (the run of failing rounds that opened it). Time to detect runs from the failure
start to the confirmed failing round that opened the incident; time to verdict from there to the moment the
evidence for the verdict was complete (the facts' ``collected_at``); time to recover from the failure start to
the incident's resolution. Incidents count when they opened inside the window.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from gatewatch.clock import iso
from gatewatch.store.base import Incident, ResultsStore
from gatewatch.views.fleet import target_names
from gatewatch.views.incident import failure_start
from gatewatch.views.windows import dig, human_duration, measured, seconds_between, uptime_pct

FORMATS = ("text", "markdown", "json", "csv")
MAX_INCIDENTS = 100_000

# The runbook's guess (seed-runbook.md, "Root Cause Hierarchy") and the verdict categories each bucket covers.
RUNBOOK = (
    ("backend down", 70.0, ("backend_down", "backend_crash_loop", "backend_not_listening", "port_conflict",
                            "backend_hung", "backend_unhealthy", "database_unavailable", "endpoint_error",
                            "origin_bad_response")),
    ("proxy misconfiguration", 20.0, ("proxy_down", "proxy_config_invalid", "proxy_upstream_mismatch",
                                      "proxy_header_too_big", "proxy_permission_denied", "proxy_keepalive_reset",
                                      "route_not_found", "origin_tls_error")),
    ("firewall", 5.0, ("firewall_blocked", "edge_to_origin_blocked")),
    ("resources", 5.0, ("out_of_memory", "disk_full", "fd_exhausted")),
)
OTHER = "other (not in the runbook)"


def bucket_of(category: str | None) -> str:
    for name, _, categories in RUNBOOK:
        if category in categories:
            return name
    return OTHER


def incident_times(store: ResultsStore, incident: Incident) -> dict[str, float | None]:
    start = failure_start(store, incident)
    detected = dig(incident.outside, "at") or incident.opened_at
    ttd = seconds_between(start, detected)
    ttv = seconds_between(detected, dig(incident.facts, "collected_at")) if incident.verdict else None
    ttr = seconds_between(start, incident.resolved_at) if incident.resolved_at else None
    return {k: (max(0.0, v) if v is not None else None) for k, v in (("ttd", ttd), ("ttv", ttv), ("ttr", ttr))}


def _stats(values: list[float | None]) -> dict[str, float | None]:
    data = [v for v in values if v is not None]
    if not data:
        return {"mean_s": None, "median_s": None, "max_s": None, "n": 0}
    return {"mean_s": round(statistics.fmean(data), 3), "median_s": round(statistics.median(data), 3),
            "max_s": round(max(data), 3), "n": len(data)}


def _summary(name: str, statuses: list[str], incidents: list[Incident], times: list[dict[str, Any]]) -> dict:
    categories = Counter(i.category or "diagnosing" for i in incidents)
    resolved = [i for i in incidents if i.status == "resolved"]
    auto = sum(1 for i in incidents if i.resolution == "auto_remediated")
    up = uptime_pct(statuses)
    return {
        "target": name,
        "rounds": len(statuses),
        "uptime_pct": round(up, 4) if up is not None else None,
        "incidents": len(incidents),
        "open": len(incidents) - len(resolved),
        "resolved": len(resolved),
        "auto_remediated": auto,
        "auto_remediated_pct": round(100.0 * auto / len(incidents), 1) if incidents else None,
        "time_to_detect": _stats([t["ttd"] for t in times]),
        "time_to_verdict": _stats([t["ttv"] for t in times]),
        "time_to_recover": _stats([t["ttr"] for t in times]),
        "root_causes": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def root_cause_table(categories: Counter) -> list[dict[str, Any]]:
    diagnosed = {c: n for c, n in categories.items() if c != "diagnosing"}
    total = sum(diagnosed.values())
    rows = []
    for name, guess, _ in (*RUNBOOK, (OTHER, 0.0, ())):
        found = {c: n for c, n in diagnosed.items() if bucket_of(c) == name}
        count = sum(found.values())
        rows.append({"cause": name, "runbook_pct": guess, "observed": count,
                     "observed_pct": round(100.0 * count / total, 1) if total else None,
                     "categories": dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))})
    return rows


def build_report(store: ResultsStore, now: datetime, window: timedelta, label: str = "",
                 configured: list[str] | None = None) -> dict[str, Any]:
    since = iso(now - window)
    everything = [i for i in store.list_incidents(limit=MAX_INCIDENTS) if i.opened_at >= since]
    by_target: dict[str, list[Incident]] = {}
    for incident in everything:
        by_target.setdefault(incident.target, []).append(incident)
    names = sorted(set(target_names(store, configured)) | set(by_target))
    rows, all_statuses, all_times = [], [], []
    for name in names:
        statuses = [p.status for p in store.probes_between(name, since) if measured(p.status)]
        incidents = sorted(by_target.get(name, []), key=lambda i: i.opened_at)
        times = [incident_times(store, i) for i in incidents]
        rows.append(_summary(name, statuses, incidents, times))
        all_statuses += statuses
        all_times += times
    fleet = _summary("fleet", all_statuses, everything, all_times)
    fleet["targets"] = len(names)
    return {
        "window": label or f"{window.total_seconds() / 86400:g}d",
        "since": since,
        "until": iso(now),
        "targets": rows,
        "fleet": fleet,
        "root_causes": root_cause_table(Counter(i.category or "diagnosing" for i in everything)),
    }


# -- formats -----------------------------------------------------------------------------------------------------
def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def _mean(stat: dict[str, Any]) -> str:
    return human_duration(stat["mean_s"])


COLUMNS = ("target", "uptime", "rounds", "incidents", "open", "detect", "verdict", "recover", "auto-fixed")


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["target"], _pct(row["uptime_pct"], 3), str(row["rounds"]), str(row["incidents"]), str(row["open"]),
            _mean(row["time_to_detect"]), _mean(row["time_to_verdict"]), _mean(row["time_to_recover"]),
            _pct(row["auto_remediated_pct"], 0)]


def _cause_cells(row: dict[str, Any]) -> list[str]:
    found = ", ".join(f"{c} {n}" for c, n in row["categories"].items()) or "-"
    guess = "-" if row["cause"] == OTHER else f"{row['runbook_pct']:.0f}%"
    return [row["cause"], guess, f"{_pct(row['observed_pct'], 0)} ({row['observed']})", found]


def render_text(report: dict[str, Any]) -> str:
    table = [list(COLUMNS)] + [_cells(r) for r in report["targets"]] + [_cells(report["fleet"])]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = [f"gatewatch report: {report['since']} .. {report['until']} ({report['window']})",
             "times are means: detect = first failing round to confirmed, verdict = confirmed to diagnosis,",
             "recover = first failing round to resolved", ""]
    for i, row in enumerate(table):
        if i == len(table) - 1:
            lines.append("  ".join("-" * w for w in widths))
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(cells)))
    lines += ["", "root causes (diagnosed incidents) next to the runbook's guess:"]
    causes = [["cause", "runbook", "observed", "verdicts"]] + [_cause_cells(r) for r in report["root_causes"]]
    widths = [max(len(r[i]) for r in causes) for i in range(4)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in causes]
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [f"## gatewatch report, {report['window']} ({report['since']} .. {report['until']})", "",
             row(list(COLUMNS)), row(["---"] * len(COLUMNS))]
    lines += [row(_cells(r)) for r in report["targets"]]
    fleet = _cells(report["fleet"])
    lines.append(row([f"**{c}**" for c in fleet]))
    lines += ["", "Times are means: detect = first failing round to confirmed failure, verdict = confirmed to "
              "diagnosis, recover = first failing round to resolution.", "",
              "### Root causes next to the runbook's guess", "",
              row(["cause", "runbook", "observed", "verdicts"]), row(["---"] * 4)]
    lines += [row(_cause_cells(r)) for r in report["root_causes"]]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("target", "rounds", "uptime_pct", "incidents", "open", "resolved", "auto_remediated",
              "auto_remediated_pct", "time_to_detect_mean_s", "time_to_verdict_mean_s", "time_to_recover_mean_s",
              "time_to_recover_max_s", "root_causes")


def render_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in [*report["targets"], report["fleet"]]:
        writer.writerow([
            r["target"], r["rounds"], r["uptime_pct"], r["incidents"], r["open"], r["resolved"], r["auto_remediated"],
            r["auto_remediated_pct"], r["time_to_detect"]["mean_s"], r["time_to_verdict"]["mean_s"],
            r["time_to_recover"]["mean_s"], r["time_to_recover"]["max_s"],
            ";".join(f"{c}={n}" for c, n in r["root_causes"].items()),
        ])
    return buf.getvalue()


def render_report(report: dict[str, Any], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=False) + "\n"
    return {"text": render_text, "markdown": render_markdown, "csv": render_csv}[fmt](report)
