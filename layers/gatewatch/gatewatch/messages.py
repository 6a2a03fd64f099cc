"""The words a human reads: incident opened (with the verdict), resolved, remediated or escalated.

Plain text for e-mail and the console; the subject fits SNS's 100-character limit. One module so the local
console, SNS from the CLI and SNS from the state machine all say the same thing.
"""

from __future__ import annotations

from typing import Any

SUBJECT_LIMIT = 100


def _subject(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."


def outside_summary(outside: dict[str, Any]) -> str:
    probe = outside.get("probe") or {}
    http = probe.get("http") or {}
    timings = probe.get("timings_ms") or {}
    bits = [f"{probe.get('method', 'GET')} {probe.get('url', '?')}"]
    if http.get("status"):
        bits.append(f"answered {http['status']}")
    if probe.get("reason"):
        bits.append(f"reason {probe['reason']} in phase {probe.get('phase')}")
    if probe.get("error"):
        bits.append(f"({probe['error']})")
    cf = probe.get("cloudflare") or {}
    if cf.get("code"):
        bits.append(f"Cloudflare {cf['code']}: {cf.get('meaning')}")
    if timings.get("total") is not None:
        bits.append(f"after {timings['total']:.0f} ms")
    attempts = outside.get("attempts") or []
    if len(attempts) > 1:
        bits.append(f"confirmed over {len(attempts)} attempts")
    return " ".join(bits)


def _evidence_lines(verdict: dict[str, Any], limit: int = 12) -> list[str]:
    lines = []
    for item in verdict.get("evidence") or []:
        value = item.get("quote") or item.get("value")
        if value in (None, "", "unknown", [], {}):
            continue
        text = value if isinstance(value, str) else repr(value)
        lines.append(f"  - {item.get('fact')}: {text[:300]}")
        if len(lines) >= limit:
            break
    return lines


def remediation_lines(remediation: dict[str, Any] | None) -> list[str]:
    if not remediation:
        return []
    lines = ["", "Remediation:"]
    summary = remediation.get("summary") or remediation.get("reason") or remediation.get("message")
    if summary:
        lines.append(f"  {summary}")
    for key in ("action", "mode", "guard", "result"):
        if remediation.get(key):
            lines.append(f"  {key}: {remediation[key]}")
    return lines


def incident_opened(incident_id: str, target: str, outside: dict[str, Any], verdict: dict[str, Any],
                    remediation: dict[str, Any] | None = None) -> tuple[str, str]:
    subject = _subject(f"[gatewatch] DOWN {target}: {verdict.get('category')} - {verdict.get('title')}")
    lines = [
        f"{target} is DOWN (incident {incident_id}).",
        "",
        f"What the outside sees: {outside_summary(outside)}",
        "",
        f"Verdict: {verdict.get('category')} ({verdict.get('confidence')} confidence)",
        f"  {verdict.get('title')}",
        "",
        "Why:",
        f"  {verdict.get('explanation')}",
        "",
        "Evidence:",
        *_evidence_lines(verdict),
        "",
        "Path through the decision tree:",
        "  " + " -> ".join(f"{p['node']}={p['answer']}" for p in verdict.get("path") or []),
    ]
    if verdict.get("next_steps"):
        lines += ["", "Next steps:", *(f"  {i}. {s}" for i, s in enumerate(verdict["next_steps"], 1))]
    if verdict.get("never_automate"):
        lines += ["", "Not automated, on purpose:", *(f"  - {s}" for s in verdict["never_automate"])]
    lines += remediation_lines(remediation)
    return subject, "\n".join(lines) + "\n"


def incident_resolved(incident_id: str, target: str, duration_s: float | None, resolution: str,
                      category: str | None) -> tuple[str, str]:
    took = f"{duration_s:.0f} s" if duration_s is not None else "an unknown time"
    how = "fixed automatically by gatewatch" if resolution == "auto_remediated" else "recovered"
    subject = _subject(f"[gatewatch] RESOLVED {target} after {took} ({category or 'unknown'})")
    text = (
        f"{target} is UP again: incident {incident_id} {how} after {took}.\n"
        f"The cause was diagnosed as {category or 'unknown'}.\n"
    )
    return subject, text
