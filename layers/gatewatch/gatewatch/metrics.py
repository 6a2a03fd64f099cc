"""Prometheus metrics for ``gatewatch run --every N --metrics-port P`` (prometheus_client, its own registry).

Names follow blackbox_exporter where they overlap, so its dashboards work with a ``target`` label added:
``probe_success``, ``probe_duration_seconds``, ``probe_http_duration_seconds{phase}`` (resolve, connect, tls,
processing, transfer), ``probe_http_status_code``, ``probe_ssl_earliest_cert_expiry`` (Unix time). The rest is
gatewatch's own, prefixed ``gatewatch_``: the UP/DOWN state, open incidents, incidents opened and resolved,
remediations by action and result, rounds and their duration.

After each round ``observe_round`` reads each target's newest probe record back from the store (the pipeline
already wrote it), so the pipeline itself knows nothing about Prometheus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gatewatch.store.base import ResultsStore

# gatewatch's phase names -> blackbox_exporter's probe_http_duration_seconds phases
PHASES = {"dns": "resolve", "connect": "connect", "tls": "tls", "ttfb": "processing", "transfer": "transfer"}
ROUND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.success = Gauge("probe_success", "Whether the last round succeeded (degraded counts as up)",
                             ["target"], registry=r)
        self.duration = Gauge("probe_duration_seconds", "How long the last round's probe took to complete",
                              ["target"], registry=r)
        self.phase = Gauge("probe_http_duration_seconds", "Duration of each phase of the last HTTP request",
                           ["target", "phase"], registry=r)
        self.status_code = Gauge("probe_http_status_code", "Response HTTP status code (0: no response)",
                                 ["target"], registry=r)
        self.cert_expiry = Gauge("probe_ssl_earliest_cert_expiry", "Expiry of the certificate seen, Unix time",
                                 ["target"], registry=r)
        self.degraded = Gauge("gatewatch_probe_degraded", "Whether the last round was up but degraded (slow)",
                              ["target"], registry=r)
        self.state_up = Gauge("gatewatch_target_up", "The target's UP/DOWN state after the last round (1 UP)",
                              ["target"], registry=r)
        self.open_incidents = Gauge("gatewatch_open_incidents", "Incidents open now", registry=r)
        self.incidents = Counter("gatewatch_incidents", "Incidents opened and resolved by this prober",
                                 ["target", "event"], registry=r)
        self.remediations = Counter("gatewatch_remediations", "Remediation decisions by action and result",
                                    ["action", "result"], registry=r)
        self.rounds = Counter("gatewatch_rounds", "Probing rounds completed", registry=r)
        self.round_duration = Histogram("gatewatch_round_duration_seconds", "Wall time of one round, every target",
                                        buckets=ROUND_BUCKETS, registry=r)
        self.targets = Gauge("gatewatch_targets", "Targets probed in the last round", registry=r)
        self.not_probed = Counter("gatewatch_targets_not_probed", "Targets a round skipped (out of time) or failed on",
                                  ["target", "status"], registry=r)

    def observe_round(self, reports: list[Any], store: ResultsStore, seconds: float) -> None:
        for report in reports:
            if report.status in ("skipped", "error"):  # no fresh probe: the gauges keep the last one
                self.not_probed.labels(report.target, report.status).inc()
                continue
            self._observe_target(report, store)
            if report.event:
                self.incidents.labels(report.target, report.event).inc()
            if report.remediation:
                self.remediations.labels(report.remediation.get("action") or "none",
                                         report.remediation.get("result") or "unknown").inc()
        self.open_incidents.set(len(store.list_incidents(open_only=True, limit=10_000)))
        self.targets.set(len(reports))
        self.rounds.inc()
        self.round_duration.observe(seconds)

    def _observe_target(self, report: Any, store: ResultsStore) -> None:
        name = report.target
        self.success.labels(name).set(0 if report.status == "down" else 1)
        self.degraded.labels(name).set(1 if report.status == "degraded" else 0)
        state = store.get_state(name)
        if state is not None:
            self.state_up.labels(name).set(1 if state.status == "UP" else 0)
        newest = store.history(name, limit=1)
        probe = ((newest[0].result or {}).get("probe") or {}) if newest else {}
        timings = probe.get("timings_ms") or {}
        total = timings.get("total", report.latency_ms)
        if isinstance(total, int | float):
            self.duration.labels(name).set(total / 1000.0)
        for ours, theirs in PHASES.items():
            value = timings.get(ours)
            self.phase.labels(name, theirs).set((value or 0.0) / 1000.0)
        self.status_code.labels(name).set((probe.get("http") or {}).get("status") or 0)
        not_after = (probe.get("tls") or {}).get("not_after")
        if not_after:
            try:
                self.cert_expiry.labels(name).set(datetime.fromisoformat(not_after.replace("Z", "+00:00"))
                                                  .timestamp())
            except ValueError:
                pass

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Start the /metrics endpoint in a background thread; returns the server (``shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
