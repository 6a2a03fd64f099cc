"""The script's guarantees, in-process: a broken or slow check cannot break the report; output stays bounded."""

from __future__ import annotations

import json
import time

import pytest

from gatewatch.onbox import checks


def _params(**extra):
    return checks.validate_params(dict({"service_manager": "command", "process_match": "gwtest-none"}, **extra))


@pytest.fixture
def only_checks(monkeypatch):
    def install(*pairs):
        monkeypatch.setattr(checks, "CHECKS", list(pairs))

    return install


def test_a_check_that_raises_is_unknown_and_the_others_still_report(only_checks):
    def boom(ctx):
        raise RuntimeError("disk on fire")

    def fine(ctx):
        return checks.result("ok", {"x": 1}, ["fine"])

    only_checks(("boom", boom), ("fine", fine))
    report = checks.run_checks(_params())
    assert report["boom"] == {"status": "unknown", "value": {}, "evidence": [],
                              "error": "check raised RuntimeError: disk on fire"}
    assert report["fine"]["status"] == "ok"
    json.loads(checks.bound_output(report))


def test_a_check_that_overruns_the_budget_is_unknown_timed_out(only_checks):
    def slow(ctx):
        time.sleep(5)
        return checks.result("ok", {})

    def waits_for_slow(ctx):
        other = ctx.wait_for("slow", reserve_s=0.2)
        return checks.result("ok", {"slow_seen": other is not None})

    only_checks(("slow", slow), ("waits", waits_for_slow))
    start = time.monotonic()
    report = checks.run_checks(_params(), budget_s=0.6)
    assert time.monotonic() - start < 2.0
    assert report["slow"] == {"status": "unknown", "value": {}, "evidence": [], "error": "timed out"}
    assert report["waits"]["value"] == {"slow_seen": False}
    assert report["meta"]["timed_out_checks"] == ["slow"]


def _huge_report():
    report = {"schema": 1, "meta": {"host": "h", "collected_at": "2026-11-25T13:00:00.000Z", "duration_ms": 1.0,
                                    "truncated": False, "python": "3.8.18"}}
    for name in ("service", "port", "app_log", "resources"):
        report[name] = {"status": "fail", "value": {"items": ["x" * 500] * 40, "note": "y" * 5000},
                        "evidence": ["e" * 2000] * 30, "error": "z" * 3000}
    report["nginx"] = {"status": "fail", "value": {"upstreams": [{"name": "u", "servers": ["s" * 300] * 50}]},
                       "evidence": ["n" * 900] * 20, "error": None, "primary_signature": "connection_refused",
                       "error_signatures": [{"signature": "other", "count": 1, "sample": "q" * 3000,
                                             "first": "", "last": "", "upstream": None}] * 19}
    return report


def test_oversized_reports_are_trimmed_evidence_first_and_stay_valid():
    text = checks.bound_output(_huge_report())
    assert len(text) <= checks.MAX_OUTPUT_CHARS
    doc = json.loads(text)
    assert doc["meta"]["truncated"] is True
    for name in ("service", "port", "app_log", "resources", "nginx"):
        assert {"status", "value", "evidence", "error"} <= set(doc[name])
        assert doc[name]["status"] == "fail"
    assert doc["nginx"]["primary_signature"] == "connection_refused"


def test_evidence_goes_before_values():
    report = _huge_report()
    for name in ("service", "port", "app_log", "resources"):
        report[name]["value"] = {"pid": 42}
        report[name]["error"] = None
    report["nginx"]["value"] = {"running": True}
    report["nginx"]["error_signatures"] = []
    doc = json.loads(checks.bound_output(report))
    assert doc["meta"]["truncated"] is True
    assert doc["service"]["value"] == {"pid": 42}  # values untouched: trimming evidence was enough
    assert all(len(e) <= 200 for e in doc["service"]["evidence"])


def test_small_reports_are_untouched():
    report = {"schema": 1, "meta": {"truncated": False}, "service": checks.result("ok", {"pid": 1}, ["e"])}
    assert json.loads(checks.bound_output(report)) == report


def test_params_defaults_match_the_config_defaults():
    from gatewatch.config import Host

    defaults = checks.validate_params({})
    host = Host()
    for key in ("service_manager", "backend_host", "backend_port", "health_path", "nginx_port", "nginx_bin",
                "nginx_error_log", "log_window_minutes"):
        assert defaults[key] == getattr(host, key), key
