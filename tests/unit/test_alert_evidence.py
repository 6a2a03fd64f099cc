"""Evidence that decides: every recorded lab facts document renders a notification a person can trust.

No duplicate facts, no placeholders (``?``, ``None``, ``{...}``), the fact that decided the verdict present, the
quoted log line the one carrying the verdict's own signature and nearest to the failure, whole-word subjects.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from gatewatch.messages import SUBJECT_LIMIT, incident_opened, subject_line
from gatewatch.tree import diagnose
from gatewatch.tree.evidence import signature_for

FACTS = sorted(Path(__file__).resolve().parents[1].joinpath("events", "facts").rglob("*.json"))
CLASSIC = Path(__file__).resolve().parents[1].joinpath("events", "facts", "classic")  # the classic topology's run
CLASSIC = Path(__file__).resolve().parents[1] / "events" / "facts" / "classic"
PLACEHOLDER = re.compile(r"(^|[\s(:=])\?([\s).,]|$)|\bNone\b|\{\.\.\.\}|\{[a-z_]+\}")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", FACTS, ids=[f"{p.parent.name}:{p.stem}" for p in FACTS])
def test_every_recorded_lab_document_renders_a_trustworthy_notification(path):
    facts = _load(path)
    verdict = diagnose(facts)
    subject, text = incident_opened("inc-1", facts["target"], facts.get("outside") or {}, verdict)
    decided = verdict["deciding"]
    # each fact once, by key and by text
    assert len({d["fact"] for d in decided}) == len(decided)
    assert len({d["text"] for d in decided}) == len(decided)
    assert len({e["fact"] for e in verdict["evidence"]}) == len(verdict["evidence"])
    # no placeholder anywhere a human reads
    for line in [subject, *text.splitlines()]:
        assert not PLACEHOLDER.search(line.replace("Next steps:", "")), (path.stem, line)
    # the outside comes first; the deciding log line, when there is one, last
    assert decided[0]["fact"] == "outside"
    assert all(d["fact"] != "signature_line" for d in decided[:-1])
    # the subject: ASCII, whole words, at most 100 characters, naming the target and the category
    assert len(subject) <= SUBJECT_LIMIT and subject.isascii() and "\n" not in subject
    assert facts["target"] in subject and verdict["category"] in subject
    if verdict["category"] not in ("healthy",):
        # the deciding fact: a yes answer's quoted fact or the leaf's named fact is present
        assert len(decided) >= 2, (path.stem, decided)


def test_tls_verify_error_is_not_filled_with_an_http_error():
    facts = _load(CLASSIC / "backend_hung.json")
    verdict = diagnose(facts)
    assert all(e["fact"] != "tls_verify_error" or "HTTP" not in str(e["value"]) for e in verdict["evidence"])
    assert not [e for e in verdict["evidence"] if e["fact"] == "cf_code" and e["value"] == "none"]


def test_hung_backend_quotes_the_timeout_not_an_older_connection_refused():
    """The reproduced case: a refused line 30 s earlier was quoted for a hung backend."""
    facts = copy.deepcopy(_load(CLASSIC / "backend_hung.json"))
    refused = ("2026/11/25 14:17:27 [error] 32443#32443: *20 connect() failed (111: Connection refused) while "
               'connecting to upstream, upstream: "http://127.0.0.1:8000/api/v1/auth/demo-login"')
    nginx = facts["onbox"]["nginx"]
    nginx["error_signatures"].insert(0, {"signature": "connection_refused", "count": 3, "first": "2026/11/25 14:17:27",
                                         "last": "2026/11/25 14:17:27", "sample": refused, "in_latest_burst": True,
                                         "upstream": "http://127.0.0.1:8000/api/v1/auth/demo-login"})
    nginx["primary_signature"] = "connection_refused"
    timeout = nginx["error_signatures"][1]
    timeout["last_sample"] = timeout["sample"].replace("14:17:54", "14:18:00").replace("*37", "*41")
    verdict = diagnose(facts)
    assert verdict["category"] == "backend_hung"
    log = verdict["deciding"][-1]
    assert log["label"] == "nginx error log" and "upstream timed out" in log["text"]
    assert "14:18:00" in log["text"] and "Connection refused" not in verdict["explanation"]
    assert "s before the checks finished" in log["text"]


def test_signature_falls_back_to_the_primary_and_is_empty_without_a_log():
    facts = _load(CLASSIC / "nginx_config_broken.json")
    assert signature_for(facts, "proxy_config_invalid")["signature"] == "other"
    assert signature_for({}, "backend_down") == {}


def test_subject_cuts_between_words_and_spells_unicode_in_ascii():
    s = subject_line("DOWN", "api", "backend_hung", "api: " + "wörd " * 40 + "…")
    assert len(s) <= SUBJECT_LIMIT and s.endswith("...") and s.isascii()
    assert s.startswith("[gatewatch] DOWN api backend_hung: word word")
    assert not s[:-3].endswith(" ") and "wor..." not in s


def test_outside_only_5xx_with_healthy_health_is_endpoint_error_with_steps_from_the_response():
    """The reproduced case: it was `unknown (low)` with the single step 'configure the host section'."""
    from tests.cases import CASES

    verdict = diagnose(CASES["outside_500_health_ok"][0])
    assert verdict["category"] == "endpoint_error" and verdict["confidence"] == "medium"
    steps = " ".join(verdict["next_steps"])
    assert "curl -si -X POST https://backend.example.com/api/v1/auth/demo-login" in steps
    assert '"<h1>Internal Server Error</h1> \\xe9\\x07"' in steps  # escaped: no control byte, no raw non-ASCII
    assert "8a1b2c3d4e5f-LHR" in steps and "nginx/1.22.1" in verdict["explanation"]
    assert "could not be asked: is the backend process running" in verdict["explanation"]
    labels = [d["label"] for d in verdict["deciding"]]
    assert labels[:4] == ["What the outside sees", "Server header", "Cloudflare ray", "Health endpoint"]


def test_the_on_box_classifier_keeps_the_latest_line_of_each_signature():
    import datetime as dt

    from gatewatch.onbox.checks import nginx_log

    lines = [
        "2026/11/25 14:17:27 [error] 7#7: *20 connect() failed (111: Connection refused) while connecting to "
        'upstream, client: 127.0.0.1, upstream: "http://127.0.0.1:8000/x"',
        "2026/11/25 14:17:54 [error] 7#7: *37 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 127.0.0.1, upstream: "http://127.0.0.1:8000/x"',
        "2026/11/25 14:18:00 [error] 7#7: *41 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 127.0.0.1, upstream: "http://127.0.0.1:8000/x"',
    ]
    out = nginx_log.classify_error_log(lines, 15, now=dt.datetime(2026, 11, 25, 14, 18, 5))
    timeout = next(s for s in out["signatures"] if s["signature"] == "upstream_timeout")
    assert "14:17:54" in timeout["sample"] and "14:18:00" in timeout["last_sample"]
    assert timeout["last_message"].startswith("upstream timed out (110")
    refused = next(s for s in out["signatures"] if s["signature"] == "connection_refused")
    assert "last_sample" not in refused  # one line: nothing more to say
    facts = {"onbox": {"nginx": {"error_signatures": out["signatures"], "primary_signature": out["primary"]},
                       "meta": {"collected_at": "2026-11-25T13:18:03.000Z", "duration_ms": 1000.0,
                                "utc_offset_s": 3600}}}
    sig = signature_for(facts, "backend_hung")
    assert sig["logged_at"] == "2026-11-25 14:18:00" and sig["age_s"] == 4.0  # local time, offset applied
