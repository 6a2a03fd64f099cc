"""The nginx error-log classifier on real nginx lines (tests/fixtures/nginx/<signature>.log) and its burst logic."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gatewatch.onbox import SIGNATURES
from gatewatch.onbox.checks import nginx_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nginx"
NOW = datetime(2026, 11, 25, 13, 10, 0)
SIGNATURE_FILES = sorted(p for p in FIXTURES.glob("*.log") if p.stem in SIGNATURES)


def test_every_signature_has_a_fixture_file():
    assert {p.stem for p in SIGNATURE_FILES} == set(SIGNATURES)
    assert nginx_log.SIGNATURES == SIGNATURES


@pytest.mark.parametrize("path", SIGNATURE_FILES, ids=lambda p: p.stem)
def test_each_real_line_gets_its_signature(path):
    lines = path.read_text().splitlines()
    assert lines
    for line in lines:
        message = nginx_log.NGINX_LINE_RE.match(line).group(5)
        assert nginx_log.classify_line(message) == path.stem, line


def test_upstream_field_and_counts_are_reported():
    lines = (FIXTURES / "connection_refused.log").read_text().splitlines()
    out = nginx_log.classify_error_log(lines, 15, now=NOW)
    [entry] = out["signatures"]
    assert entry["signature"] == "connection_refused"
    assert entry["count"] == 4
    assert entry["first"] == "2026/11/25 13:05:01" and entry["last"] == "2026/11/25 13:05:04"
    assert entry["upstream"] == "http://127.0.0.1:8000/api/v1/auth/demo-login"
    assert "111: Connection refused" in entry["sample"]
    assert out["primary"] == "connection_refused"


def test_no_live_upstreams_is_secondary_to_its_cause():
    lines = (FIXTURES / "burst-refused-then-no-live.log").read_text().splitlines()
    out = nginx_log.classify_error_log(lines, 15, now=NOW)
    assert out["primary"] == "connection_refused"
    counts = {s["signature"]: s["count"] for s in out["signatures"]}
    # The [warn] "temporarily disabled" line is a consequence nginx logs at warn level: not counted.
    assert counts == {"connection_refused": 1, "no_live_upstreams": 3}


def test_no_live_upstreams_alone_is_primary():
    lines = (FIXTURES / "no_live_upstreams.log").read_text().splitlines()
    assert nginx_log.classify_error_log(lines, 15, now=NOW)["primary"] == "no_live_upstreams"


def test_window_excludes_old_and_future_lines_and_latest_burst_decides():
    lines = (FIXTURES / "window-and-bursts.log").read_text().splitlines()
    out = nginx_log.classify_error_log(lines, 15, now=NOW)
    by_sig = {s["signature"]: s for s in out["signatures"]}
    # 12:40 (upstream_timeout) is before the window; 13:20 is after "now"; [notice] lines never count.
    assert set(by_sig) == {"connection_refused", "header_too_big", "no_live_upstreams"}
    assert out["lines_in_window"] == 5
    assert by_sig["connection_refused"]["count"] == 2 and not by_sig["connection_refused"]["in_latest_burst"]
    # The restart ten minutes earlier does not explain the current burst.
    assert out["primary"] == "header_too_big"
    assert out["burst_start"] == "2026/11/25 13:08:00"

    narrow = nginx_log.classify_error_log(lines, 5, now=NOW)
    assert {s["signature"] for s in narrow["signatures"]} == {"header_too_big", "no_live_upstreams"}


def test_empty_log_has_no_primary():
    out = nginx_log.classify_error_log([], 15, now=NOW)
    assert out == {"signatures": [], "primary": None, "lines_in_window": 0, "upstreams": [], "burst_start": None}


def test_unparseable_lines_are_ignored():
    out = nginx_log.classify_error_log(["garbage", "", "2026/13/45 99:99:99 [error] 1#1: bad date"], 15, now=NOW)
    assert out["signatures"] == []


def _line(hms: str, fixture: str) -> str:
    first = (FIXTURES / f"{fixture}.log").read_text().splitlines()[0]
    return f"2026/11/25 {hms}" + first[len("2026/11/25 13:05:01"):]


@pytest.mark.parametrize("dropped", ["connection_reset", "upstream_closed"])
@pytest.mark.parametrize("gone", ["connection_refused", "socket_missing"])
def test_a_backend_killed_mid_request_is_named_by_what_it_does_now(dropped, gone):
    """SIGKILL drops the request in flight (reset or closed), then every new connection fails: the drop was the
    moment it died, the connect failure is its state now (CI: a killed backend's stale socket was called a reset)."""
    lines = [_line("13:05:01", dropped), _line("13:05:02", gone), _line("13:05:03", gone)]
    assert nginx_log.classify_error_log(lines, 15, now=NOW)["primary"] == gone


def test_a_drop_without_a_connect_failure_stays_primary():
    lines = [_line("13:05:01", "connection_reset"), _line("13:05:02", "no_live_upstreams")]
    assert nginx_log.classify_error_log(lines, 15, now=NOW)["primary"] == "connection_reset"
    # a connect failure in an older burst does not rename the current one
    old = [_line("12:58:00", "connection_refused")]
    assert nginx_log.classify_error_log(old + lines, 15, now=NOW)["primary"] == "connection_reset"
