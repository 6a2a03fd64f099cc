"""Assemble the facts document (docs/data-model.md) from the outside round and the on-box run.

One function for every transport: the local pipeline hands it a ``RunResult`` from the local runner, the
FactsFunction hands it the SSM invocation the state machine polled. How the run ended becomes ``onbox_error``
(so "the host is unreachable" is evidence for the tree, not an exception).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gatewatch import safejson
from gatewatch.clock import Clock
from gatewatch.runner.base import (
    CANCELLED,
    FAILED,
    NOT_REGISTERED,
    SUCCESS,
    TIMED_OUT,
    UNDELIVERABLE,
    RunResult,
)

SCHEMA = 1
MAX_OPENAPI_PATHS = 500
# How a run that produced no report maps onto onbox_error.reason.
ERROR_REASONS = {
    TIMED_OUT: "timeout",
    "PollTimeout": "timeout",
    NOT_REGISTERED: "unreachable",
    UNDELIVERABLE: "unreachable",
    "Terminated": "unreachable",
    CANCELLED: "failed",
    FAILED: "failed",
}


def config_section(target: Any) -> dict[str, Any]:
    """The part of the target's config the verdict quotes (no headers: they may carry secrets)."""
    return {
        "url": target.url,
        "method": target.method,
        "host": target.host.model_dump(mode="json") if target.host is not None else None,
        "certificate_warn_days": target.alerting.certificate.warn_days,
    }


def run_from_invocation(invocation: dict[str, Any] | None) -> RunResult | None:
    """An SSM GetCommandInvocation answer (as the state machine keeps it) as a RunResult."""
    if not invocation:
        return None
    status = invocation.get("Status") or "Error"
    code = invocation.get("ResponseCode")
    return RunResult(
        status=status,
        exit_code=code if isinstance(code, int) and code >= 0 else None,
        stdout=invocation.get("StandardOutputContent") or "",
        stderr=invocation.get("StandardErrorContent") or "",
        error=None if status == SUCCESS else str(invocation.get("StandardErrorContent") or status)[:2000],
    )


# The on-box report: SSM keeps 24,000 characters; the local runner more. Its nesting is shallow by design.
REPORT_MAX_BYTES = 4 * 1024 * 1024
REPORT_MAX_DEPTH = 32


def parse_report(stdout: str) -> dict[str, Any] | None:
    """The on-box JSON report, or None when stdout is not one (truncated, empty, an error page)."""
    try:
        doc = safejson.loads(stdout, max_bytes=REPORT_MAX_BYTES, max_depth=REPORT_MAX_DEPTH)
    except (TypeError, ValueError):  # JsonError is a ValueError: too large, too deep or not JSON
        return None
    return doc if isinstance(doc, dict) and "schema" in doc and "meta" in doc else None


def onbox_from_run(run: RunResult | None, host_configured: bool) -> tuple[dict | None, dict | None]:
    """(onbox report, onbox_error) for a run; a report printed by a non-zero exit still counts."""
    if run is None:
        reason = "unreachable" if host_configured else "not_configured"
        detail = "no way to run commands on the host" if host_configured else "the target has no host: section"
        return None, {"reason": reason, "status": None, "detail": detail}
    report = parse_report(run.stdout)
    if report is not None and "error" not in report.get("meta", {}):
        return report, None
    if run.status == SUCCESS or run.status == FAILED and run.stdout.strip():
        detail = (report or {}).get("meta", {}).get("error") or f"output is not an on-box report: {run.stdout[:300]!r}"
        return None, {"reason": "invalid_output", "status": run.status, "detail": detail}
    reason = ERROR_REASONS.get(run.status, "failed")
    detail = run.error or run.stderr.strip()[:500] or run.status
    return None, {"reason": reason, "status": run.status, "detail": detail}


def build_facts(
    target_name: str,
    outside: dict[str, Any],
    run: RunResult | None,
    config: dict[str, Any],
    *,
    incident_id: str | None = None,
    clock: Clock | None = None,
    openapi_paths: list[str] | None = None,
) -> dict[str, Any]:
    onbox, onbox_error = onbox_from_run(run, host_configured=bool(config.get("host")))
    outside = dict(outside)
    if openapi_paths:
        outside["openapi_paths"] = openapi_paths[:MAX_OPENAPI_PATHS]
    return {
        "schema": SCHEMA,
        "target": target_name,
        "incident_id": incident_id,
        "collected_at": (clock or Clock()).iso(),
        "outside": outside,
        "onbox": onbox,
        "onbox_error": onbox_error,
        "config": config,
    }


def openapi_url(url: str) -> str:
    """Where a FastAPI backend behind the same origin publishes its OpenAPI document."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/openapi.json", "", ""))


def openapi_paths(document: Any) -> list[str]:
    paths = document.get("paths") if isinstance(document, dict) else None
    return sorted(p for p in paths if isinstance(p, str))[:MAX_OPENAPI_PATHS] if isinstance(paths, dict) else []


def outside_check(round_result: dict[str, Any]) -> dict[str, Any]:
    """A probing round (TargetResult dict) as the verification of a fix reads it."""
    return {"ok": round_result["status"] != "down", "status": round_result["status"],
            "http_status": ((round_result.get("probe") or {}).get("http") or {}).get("status")}


def local_health_check(run: RunResult | None) -> dict[str, Any]:
    """The on-box checks of a verification run: ``ok`` when the backend's health path answered 200 directly, and
    ``via_proxy.ok`` when the endpoint requested through nginx on the box got an answer below 500 in time (nginx
    reaches the backend: what a proxy fix must prove, catalogue ``verify``)."""
    report = parse_report(run.stdout) if run else None
    local = ((report or {}).get("local_health") or {}).get("value") or {}
    via = (((report or {}).get("local_endpoint") or {}).get("value") or {}).get("via_nginx") or {}
    status = via.get("status")
    via_ok = isinstance(status, int) and not isinstance(status, bool) and status < 500 and not via.get("timed_out")
    error = None if report else f"verification checks did not run ({run.status if run else 'none'})"
    return {"ok": local.get("status") == 200, "local_health": local, "error": error,
            "via_proxy": {"ok": via_ok, "status": status, "timed_out": bool(via.get("timed_out"))}}
