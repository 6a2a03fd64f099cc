"""The words a human reads: incident opened (with the verdict), resolved, remediated or escalated.

Plain text for e-mail and the console; the subject fits SNS's 100-character limit. One module so the local
console, SNS from the CLI and SNS from the state machine all say the same thing.
"""

from __future__ import annotations

from typing import Any

SUBJECT_LIMIT = 100


def ascii_text(text: str) -> str:
    """Plain ASCII (SNS subjects, some pagers): accents dropped, arrows and ellipses spelled, the rest removed."""
    import unicodedata

    text = str(text).replace("\u2026", "...").replace("\u2192", "->").replace("\u2014", "-").replace("\u2013", "-")
    text = text.replace("\u2018", "'").replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in flat if 32 <= ord(c) < 127 or c in "\n\t")


def _subject(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """One line of ASCII, at most ``limit`` characters, cut between words (with '...') when it is longer."""
    text = " ".join(ascii_text(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if " " in cut and not text[limit - 3].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "..."


def subject_line(state: str, target: str, category: str | None, title: str | None = None) -> str:
    """``[gatewatch] DOWN api backend_down: the backend service api is not running`` (whole words, <=100)."""
    title = str(title or "")
    if title.startswith(f"{target}: "):
        title = title[len(target) + 2:]
    head = f"[gatewatch] {state} {target} {category or 'unknown'}"
    return _subject(f"{head}: {title}" if title else head)


def outside_summary(outside: dict[str, Any]) -> str:
    from gatewatch.tree.evidence import describe_outside

    return describe_outside(outside)


def evidence_lines(verdict: dict[str, Any]) -> list[str]:
    """The facts that decided, each once, outside first and the deciding log line last."""
    decided = verdict.get("deciding")
    if decided is None:  # a verdict stored before ``deciding`` existed: its evidence, once per fact, no blanks
        from gatewatch.tree.evidence import _present

        decided, seen = [], set()
        for item in verdict.get("evidence") or []:
            value = item.get("quote") or item.get("value")
            if item.get("fact") in seen or not _present(value):
                continue
            seen.add(item.get("fact"))
            decided.append({"label": item.get("fact"), "text": str(value)})
    return [f"  - {d['label']}: {str(d['text'])[:500]}" for d in decided]


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
    subject = subject_line("DOWN", target, verdict.get("category"), verdict.get("title"))
    lines = [
        f"{target} is DOWN (incident {incident_id}).",
        "",
        f"Verdict: {verdict.get('category')} ({verdict.get('confidence')} confidence)",
        f"  {verdict.get('title')}",
        "",
        "Evidence that decided it:",
        *evidence_lines(verdict),
        "",
        "Why:",
        f"  {verdict.get('explanation')}",
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
    subject = subject_line("RESOLVED", target, category, f"up again after {took}")
    text = (
        f"{target} is UP again: incident {incident_id} {how} after {took}.\n"
        f"The cause was diagnosed as {category or 'unknown'}.\n"
    )
    return subject, text
