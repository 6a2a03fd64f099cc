"""The compact probe record: what a round keeps of ``TargetResult.to_dict()`` (issue 9 "Bounded reads", issue 13).

A round's full result carries every attempt (a healthy round's single attempt is a second copy of ``probe``),
the response's headers and a body excerpt of up to 2 KB, and the certificate's SANs: about 8-10 KB written every
minute per target. What the readers use (views, report, status page, metrics, CLI ``history``) is the outcome,
the phase timings, the HTTP status and the certificate's expiry, so:

* ``attempts`` is dropped when it only repeats ``probe``; otherwise each attempt other than the last keeps only
  its outcome (status, reason, phase, error, HTTP status, total milliseconds): no repeated body excerpt.
* a healthy ``probe`` (status ``up``, not transient) keeps no body excerpt, headers or parsed JSON, and its
  certificate only the fields the views read; a failing or degraded one keeps its body excerpt and headers once.
* ``health`` keeps its outcome only when it is healthy.

Every other key of the result (``diagnosis``, ``certificate``, ``status``, ...) is kept as it is.
"""

from __future__ import annotations

from typing import Any

TLS_KEPT = ("days_to_expiry", "not_after", "verified", "hostname_match", "self_signed", "verify_error", "checked")
HTTP_KEPT = ("status", "reason", "version", "body_bytes", "body_truncated")
OUTCOME_KEPT = ("status", "reason", "phase", "error")


def _outcome(probe: dict[str, Any]) -> dict[str, Any]:
    """An attempt reduced to what happened: no body, headers or certificate."""
    out = {k: probe.get(k) for k in OUTCOME_KEPT if probe.get(k) is not None}
    http_status = (probe.get("http") or {}).get("status", probe.get("http_status"))
    if http_status is not None:
        out["http_status"] = http_status
    total = (probe.get("timings_ms") or {}).get("total", probe.get("total_ms"))
    if total is not None:
        out["total_ms"] = total
    return out


def _probe(probe: dict[str, Any], healthy: bool) -> dict[str, Any]:
    out = {k: v for k, v in probe.items() if k not in ("tls", "http", "cloudflare", "redirects", "assertions")}
    out["timings_ms"] = {k: v for k, v in (probe.get("timings_ms") or {}).items() if v is not None}
    tls = probe.get("tls")
    if tls:
        out["tls"] = {k: tls[k] for k in TLS_KEPT if k in tls} if healthy else tls
    http = probe.get("http")
    if http:
        out["http"] = {k: http[k] for k in HTTP_KEPT if k in http} if healthy else http
    cloudflare = probe.get("cloudflare") or {}
    if cloudflare.get("edge"):
        out["cloudflare"] = {k: v for k, v in cloudflare.items() if v is not None}
    for key in ("redirects", "assertions"):
        values = probe.get(key) or []
        if key == "assertions" and healthy:
            values = [a for a in values if not a.get("ok")]
        if values:
            out[key] = values
    return {k: v for k, v in out.items() if v is not None and v != {}}


def compact_result(result: dict[str, Any]) -> dict[str, Any]:
    """The stored form of one round's result (see the module docstring). Idempotent; unknown shapes pass through."""
    probe = result.get("probe")
    if not isinstance(probe, dict):
        return result
    healthy = result.get("status") == "up" and not result.get("transient") and probe.get("status") == "up"
    out = {k: v for k, v in result.items() if k not in ("attempts", "probe", "health", "target")}
    out["probe"] = _probe(probe, healthy)
    attempts = [a for a in (result.get("attempts") or []) if isinstance(a, dict)]
    if len(attempts) > 1 or (attempts and attempts[-1] != probe and _outcome(attempts[-1]) != _outcome(probe)):
        out["attempts"] = [_outcome(a) for a in attempts]
    elif "attempts" in result and not isinstance(result["attempts"], list):
        out["attempts"] = result["attempts"]
    health = result.get("health")
    if isinstance(health, dict):
        out["health"] = _outcome(health) if health.get("status") == "up" else _probe(health, False)
    return out
