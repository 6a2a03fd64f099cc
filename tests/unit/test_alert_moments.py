"""Moments besides DOWN/UP, through the real pipeline and store with a fake clock: certificate expiry (one
notification per threshold, a daily reminder below critical, independent of up/down), flapping (opens once,
diagnosed from the failing round, resolves after clean rounds), reminders while open, catch-up after maintenance."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gatewatch.clock import FakeClock
from gatewatch.config import load_config_text
from gatewatch.pipeline import Pipeline
from gatewatch.store import SQLiteStore
from gatewatch.tree import diagnose
from tests.factsbuilder import outside, probe

FACTS = Path(__file__).resolve().parents[1] / "events" / "facts" / "classic"
TLS = {"version": "TLSv1.3", "subject": "CN=shop.example.com", "issuer": "CN=R3", "sans": ["shop.example.com"],
       "not_before": "2025-10-01T00:00:00Z", "not_after": "2026-01-11T00:00:00Z", "days_to_expiry": 10.0,
       "verified": True, "verify_error": None, "hostname_match": True}


class Recorder:
    def __init__(self):
        self.sent = []

    def send(self, notification):
        self.sent.append(notification)

    def kinds(self):
        return [(n.kind, n.subject.split()[1]) for n in self.sent]


def make(tmp_path, alerting: str = "", extra: str = ""):
    config = load_config_text(f"""
targets:
  - name: shop
    url: https://shop.example.com/api/v1/auth/demo-login
    alerting: {{failure_threshold: 2, success_threshold: 2{alerting}}}
{extra}""")
    clock, notes = FakeClock(), Recorder()
    pipeline = Pipeline(config, SQLiteStore(tmp_path / "g.db"), notes, clock=clock, runner_for=lambda t: None)
    return pipeline, config.target("shop"), clock, notes


def up(days=None, not_after="2026-01-11T00:00:00Z"):
    tls = None if days is None else TLS | {"days_to_expiry": days, "not_after": not_after}
    return outside(probe(401, tls=tls))


def down():
    return outside(probe(502, "http_5xx_origin"))


def transient():
    return outside(probe(401), retried=probe(502, "http_5xx_origin"))


# -- certificate expiry ------------------------------------------------------------------------------------------
def test_certificate_warns_once_per_threshold_and_reminds_daily_below_critical(tmp_path):
    pipeline, target, clock, notes = make(tmp_path)
    assert pipeline.handle_result(target, up(30.0)).certificate is None and notes.sent == []
    report = pipeline.handle_result(target, up(10.0))
    assert report.status == "up" and report.verdict["category"] == "tls_certificate_expiring"  # an UP round
    assert report.cert_days_left == 10.0
    assert [n.kind for n in notes.sent] == ["certificate"]
    warn = notes.sent[0]
    assert warn.subject.startswith("[gatewatch] CERT WARNING shop tls_certificate_expiring:")
    assert "below the warn threshold of 14 days" in warn.text and "still up" in warn.text
    for _ in range(3):
        pipeline.handle_result(target, up(9.5))
    assert len(notes.sent) == 1  # one notification per threshold crossed
    pipeline.handle_result(target, up(2.5))
    assert notes.sent[-1].subject.startswith("[gatewatch] CERT CRITICAL shop") and len(notes.sent) == 2
    assert "below the critical threshold of 3 days" in notes.sent[-1].text
    clock.advance(3600)
    pipeline.handle_result(target, up(2.4))
    assert len(notes.sent) == 2  # the crossing was today's
    clock.advance(86400)
    pipeline.handle_result(target, up(1.4))
    assert len(notes.sent) == 3 and notes.sent[-1].text.startswith("Daily reminder")
    pipeline.handle_result(target, down() | {"probe": down()["probe"] | {"tls": TLS | {"days_to_expiry": 1.3}}})
    assert len(notes.sent) == 3  # still the same day: independent of up/down, not repeated
    pipeline.handle_result(target, up(89.0, not_after="2026-04-10T00:00:00Z"))
    pipeline.handle_result(target, up(13.0, not_after="2026-04-10T00:00:00Z"))
    assert notes.sent[-1].subject.startswith("[gatewatch] CERT WARNING")  # a renewed certificate starts afresh


def test_certificate_thresholds_are_per_target(tmp_path):
    pipeline, target, _, notes = make(tmp_path, ", certificate: {warn_days: 30, critical_days: 7}")
    pipeline.handle_result(target, up(20.0))
    assert "warn threshold of 30 days" in notes.sent[0].text
    pipeline, target, _, notes = make(tmp_path / "b", ", certificate: {enabled: false}")
    pipeline.handle_result(target, up(1.0))
    assert notes.sent == []


# -- flapping ----------------------------------------------------------------------------------------------------
def test_intermittent_failures_open_one_flapping_incident_diagnosed_from_the_failing_round(tmp_path):
    """The reproduced case: half the first attempts fail, the retry passes, it stayed 'up (transient)' forever."""
    pipeline, target, clock, notes = make(tmp_path, ", flapping: {failures: 3, rounds: 6}")
    lab = json.loads((FACTS / "localhost_ipv6.json").read_text())
    failing_rounds = []

    def diagnose_failing(target_, outside_, incident_id=None):
        failing_rounds.append(outside_)
        facts = copy.deepcopy(lab)
        return facts, diagnose(facts)

    pipeline.diagnose_failing_round = diagnose_failing
    reports = []
    for i in range(5):
        clock.advance(60)
        reports.append(pipeline.handle_result(target, transient() if i % 2 == 0 else up()))
    assert [r.status for r in reports] == ["up"] * 5
    [note] = notes.sent
    assert reports[4].event == "flapping" and note.kind == "diagnosed"
    assert note.subject.startswith("[gatewatch] FLAPPING shop flapping (proxy_upstream_mismatch): 3 of the last")
    assert "nginx tries [::1]" in note.text and "x.x.x" in note.text and failing_rounds[0]["transient"]
    [incident] = pipeline.store.list_incidents(open_only=True)
    assert incident.category == "flapping" and incident.verdict["cause_category"] == "proxy_upstream_mismatch"
    for i in range(5):  # still flapping: notified once
        clock.advance(60)
        pipeline.handle_result(target, transient() if i % 2 == 0 else up())
    assert len(notes.sent) == 1
    for _ in range(5):
        clock.advance(60)
        pipeline.handle_result(target, up())
    assert len(notes.sent) == 1  # five clean rounds of six: not yet
    clock.advance(60)
    pipeline.handle_result(target, up())
    assert notes.sent[-1].kind == "resolved" and "stable again" in notes.sent[-1].subject
    assert pipeline.store.get_incident(incident.id).resolution == "stable"
    assert pipeline.store.get_state("shop").flapping_incident_id is None


def test_a_target_that_goes_down_for_good_is_an_incident_not_a_flap(tmp_path):
    pipeline, target, clock, notes = make(tmp_path, ", flapping: {failures: 2, rounds: 4}")
    for _ in range(4):
        clock.advance(60)
        pipeline.handle_result(target, down())
    assert [n.subject.split()[1] for n in notes.sent] == ["DOWN"]


# -- reminders and catch-up ----------------------------------------------------------------------------------------
def test_reminders_every_n_minutes_say_how_long_and_what_changed(tmp_path):
    pipeline, target, clock, notes = make(tmp_path, ", reminder_minutes: 60")
    pipeline.handle_result(target, down())
    clock.advance(30)
    pipeline.handle_result(target, down())
    assert [n.kind for n in notes.sent] == ["diagnosed"]
    clock.advance(30 * 60)
    pipeline.handle_result(target, down())
    assert len(notes.sent) == 1
    clock.advance(31 * 60)
    pipeline.handle_result(target, down())
    first = notes.sent[-1]
    assert first.kind == "reminder" and first.subject.startswith("[gatewatch] STILL DOWN shop unknown: open for 1 h")
    assert "has been open for 1 h 1 min" in first.text and "still sees the same failure" in first.text
    clock.advance(10 * 60)
    pipeline.handle_result(target, down())
    assert len(notes.sent) == 2
    clock.advance(50 * 60)
    pipeline.handle_result(target, outside(probe(503, "http_5xx_origin")))
    second = notes.sent[-1]
    assert second.kind == "reminder" and "Reminder 2" in second.text
    assert "Since the last reminder: the outside now sees" in second.text and "answered 503" in second.text
    assert "(was " in second.text and "answered 502" in second.text


def test_reminders_can_be_disabled(tmp_path):
    pipeline, target, clock, notes = make(tmp_path, ", reminder_minutes: 0")
    for _ in range(5):
        pipeline.handle_result(target, down())
        clock.advance(3600)
    assert [n.kind for n in notes.sent] == ["diagnosed"]


def test_an_incident_opened_in_maintenance_is_announced_when_the_window_ends(tmp_path):
    window = """    maintenance:
      - {start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z", reason: "db upgrade"}
"""
    pipeline, target, clock, notes = make(tmp_path, ", reminder_minutes: 30", window)
    for _ in range(4):
        clock.advance(600)
        pipeline.handle_result(target, down())
    assert notes.sent == []  # opened and still in the window: silent, no reminders either
    clock.advance(1800)  # 01:10, the window is over
    pipeline.handle_result(target, down())
    [note] = notes.sent
    assert note.subject.startswith("[gatewatch] STILL DOWN shop unknown: opened during maintenance")
    assert "maintenance window 2026-01-01T00:00:00Z to 2026-01-01T01:00:00Z (db upgrade)" in note.text
    clock.advance(60)
    pipeline.handle_result(target, down())
    assert len(notes.sent) == 1  # announced once


@pytest.mark.parametrize("seconds, words", [(42, "42 s"), (125, "2 min"), (3660, "1 h 1 min"),
                                            (7200, "2 h"), (200000, "2 days 7 h")])
def test_durations_read_as_words(seconds, words):
    from gatewatch.moments import duration_words

    assert duration_words(seconds) == words
