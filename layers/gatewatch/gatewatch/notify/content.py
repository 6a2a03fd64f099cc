"""What every channel says, taken once from a notification: the headline, the verdict, the evidence that decided,
the next steps and the links. Each channel module only lays these out in its own format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatewatch.notify.base import RESOLVING_KINDS, Notification

# PagerDuty's four severities, from the category: what is down for users is critical; a warning can wait for
# working hours; "error" is everything in between.
CRITICAL = frozenset({
    "backend_down", "proxy_down", "proxy_config_invalid", "host_unreachable", "edge_unreachable", "dns_failure",
    "tls_certificate_invalid", "out_of_memory", "disk_full", "database_unavailable", "backend_crash_loop",
    "backend_hung", "firewall_blocked", "fd_exhausted", "port_conflict", "edge_to_origin_blocked",
    "origin_tls_error", "backend_not_listening", "proxy_upstream_mismatch", "proxy_permission_denied",
})  # fmt: skip
WARNING = frozenset({"tls_certificate_expiring", "flapping", "transient", "route_not_found", "assertion_failed"})


@dataclass
class Content:
    kind: str
    target: str
    incident_id: str | None
    headline: str
    category: str | None
    title: str | None
    explanation: str | None
    evidence: list[tuple[str, str]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    severity: str = "error"
    resolving: bool = False
    text: str = ""


def severity(kind: str, category: str | None, data: dict[str, Any]) -> str:
    if kind == "test":
        return "info"
    if kind == "certificate":
        return "critical" if (data.get("certificate") or {}).get("level") == "critical" else "warning"
    if category in CRITICAL:
        return "critical"
    if category in WARNING:
        return "warning"
    return "error"


def _without_target(title: Any, target: str) -> str | None:
    """Titles start with ``<target>: ``; the channels show the target on its own already."""
    if not title:
        return None
    title = str(title)
    return title[len(target) + 2:] if title.startswith(f"{target}: ") else title


def content(n: Notification) -> Content:
    data = n.data or {}
    verdict = data.get("verdict") or {}
    decided = verdict.get("deciding") or []
    links = []
    if data.get("url"):
        links.append(("Open the site", str(data["url"])))
    if data.get("dashboard_url"):
        links.append(("Open the incident", str(data["dashboard_url"])))
    return Content(
        kind=n.kind, target=n.target, incident_id=n.incident_id, headline=n.subject, category=n.category,
        title=_without_target(verdict.get("title") or data.get("title"), n.target),
        explanation=verdict.get("explanation") or data.get("explanation"),
        evidence=[(str(d.get("label")), str(d.get("text"))) for d in decided if d.get("text")],
        next_steps=[str(s) for s in verdict.get("next_steps") or data.get("next_steps") or []],
        links=links, severity=severity(n.kind, n.category, data), resolving=n.kind in RESOLVING_KINDS,
        text=n.text,
    )
