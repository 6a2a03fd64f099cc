"""nginx error log: real wording across versions and builds, mapped to a fixed vocabulary."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import datetime as _dt
import re

from .common import _short, now_local

# nginx error log: real wording across versions and builds, mapped to a fixed vocabulary.

SIGNATURES = (
    "connection_refused", "connect_timeout", "upstream_timeout", "upstream_closed", "connection_reset",
    "header_too_big", "permission_denied", "socket_missing", "no_live_upstreams", "too_many_open_files",
    "no_space", "cannot_assign_address", "resolve_failed", "upstream_ssl_error", "invalid_upstream_response",
    "no_route_to_host", "resource_unavailable", "bind_conflict", "other",
)
# Consequences, never causes: the primary signature is the earliest one NOT in this set (when there is one).
SECONDARY_SIGNATURES = ("no_live_upstreams", "other")
# A backend that dies mid-request drops what it was serving (reset, closed) and then refuses every new connection:
# when a drop is followed, in the same burst, by a connect failure, the drop was the moment it died and the
# connect failure is its state now, so the latter is primary.
DROPPED_SIGNATURES = ("connection_reset", "upstream_closed")
GONE_SIGNATURES = ("connection_refused", "socket_missing")

# First match wins; order matters (a bind() failure mentions 98, a unix socket failure mentions errno 2).
SIGNATURE_RULES = [
    ("bind_conflict", re.compile(r"bind\(\) to \S+ failed \(98:|\(98: Address (already )?in use\)", re.I)),
    ("too_many_open_files", re.compile(r"\(24: |Too many open files", re.I)),
    ("no_space", re.compile(r"\(28: |No space left on device", re.I)),
    ("cannot_assign_address", re.compile(r"\(99: |Cannot assign requested address", re.I)),
    ("no_live_upstreams", re.compile(r"no live upstreams", re.I)),
    ("socket_missing", re.compile(r"connect\(\) to unix:\S+ failed \(2: |\(2: No such file or directory\) while "
                                  r"connecting to upstream", re.I)),
    ("permission_denied", re.compile(r"\(13: |Permission denied\) while connecting to upstream", re.I)),
    ("connection_refused", re.compile(r"\(111: |Connection refused", re.I)),
    ("no_route_to_host", re.compile(r"\(113: |No route to host|\(101: Network is unreachable", re.I)),
    ("connect_timeout", re.compile(r"timed out \(110: [^)]*\) while connecting to upstream|upstream timed out "
                                   r".*while connecting to upstream", re.I)),
    ("upstream_timeout", re.compile(r"upstream timed out|\(110: ", re.I)),
    ("connection_reset", re.compile(r"\(104: |Connection reset by peer", re.I)),
    ("upstream_closed", re.compile(r"upstream prematurely closed|upstream closed prematurely", re.I)),
    ("header_too_big", re.compile(r"upstream sent too big header", re.I)),
    ("invalid_upstream_response", re.compile(r"upstream sent (invalid|no valid|duplicate|unexpected|"
                                             r"more data than)|invalid (status|header) .*upstream", re.I)),
    ("upstream_ssl_error", re.compile(r"(SSL_do_handshake\(\) failed|SSL_read\(\) failed|SSL_write\(\) failed)"
                                      r".*(to upstream|upstream:)|upstream SSL certificate", re.I)),
    ("resolve_failed", re.compile(r"could not be resolved|host not found in upstream|no resolver defined", re.I)),
    ("resource_unavailable", re.compile(r"\(11: |Resource temporarily unavailable", re.I)),
]

NGINX_LINE_RE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*\d+ )?(.*)$")
# What nginx appends after its own message; request, host, referrer (and a request's URI in some messages) are
# written by whoever sent the request.
REQUEST_FIELDS = ("client", "server", "request", "subrequest", "upstream", "host", "referrer")
# A quoted argument nginx itself chose (a temp file, a log file, a config path) has only these characters; anything
# else may be a client's URI, and nothing after it is trusted as nginx's own words.
SAFE_QUOTED_RE = re.compile(r"[A-Za-z0-9._/+:-]{0,512}")
UPSTREAM_VALUE_RE = re.compile(r"(?:https?|grpcs?|uwsgi|fastcgi|scgi|memcached)://[^\s\"]{1,512}")
ERROR_LEVELS = ("error", "crit", "alert", "emerg")
BURST_GAP_S = 120


def own_message(message: str) -> str:
    """nginx's own words in an error-log message: up to the request fields, and never past a quoted value that
    could have come from a client (a request line, a URI, a header)."""
    parts, rest = [], message
    while True:
        q = rest.find('"')
        if q < 0:
            parts.append(rest)
            break
        parts.append(rest[:q])
        end = rest.find('"', q + 1)
        if end < 0 or not SAFE_QUOTED_RE.fullmatch(rest[q + 1:end]):
            break
        parts.append(rest[q:end + 1])
        rest = rest[end + 1:]
    own = "".join(parts)
    cut = own.find(", client: ")  # before any client-controlled quote: the real field list starts here
    return own[:cut] if cut >= 0 else own


def request_fields(message: str) -> dict:
    """The request-controlled fields, as data. A quoted field is kept only when it occurs exactly once (a client
    can forge a second ``upstream: "..."`` inside its referrer); ``upstream`` must look like what nginx writes."""
    out = {}
    for name in REQUEST_FIELDS:
        marker = ", %s: " % name
        if message.count(marker) != 1:
            continue
        value = message.split(marker, 1)[1]
        if value.startswith('"'):
            end = value.find('", ', 1)
            value = value[1:end] if end > 0 else value[1:-1] if value.endswith('"') else value[1:]
        else:
            value = value.split(", ", 1)[0]
        out[name] = _short(value, 300)
    up = out.get("upstream")
    if up is not None and not UPSTREAM_VALUE_RE.fullmatch(up):
        out["upstream"] = None
    return out


def classify_line(message: str) -> str:
    """The signature of nginx's own words in ``message`` (never of the request fields)."""
    own = own_message(message)
    for name, rule in SIGNATURE_RULES:
        if rule.search(own):
            return name
    return "other"


def parse_nginx_time(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y/%m/%d %H:%M:%S")


def classify_error_log(lines, window_minutes: int, now=None) -> dict:
    """Classify the error-log lines of the last ``window_minutes`` (local time, as nginx writes).

    The primary signature is the earliest cause in the latest burst (lines less than BURST_GAP_S apart):
    a backend restart an hour ago does not explain a header_too_big now, and no_live_upstreams is only the
    consequence of the failures that marked every server down.
    """
    now = now or now_local()
    since = now - _dt.timedelta(minutes=window_minutes)
    events = []
    for line in lines:
        m = NGINX_LINE_RE.match(line.strip())
        if not m:
            continue
        try:
            when = parse_nginx_time(m.group(1))
        except ValueError:
            continue
        if when < since or when > now + _dt.timedelta(minutes=5):
            continue
        level, message = m.group(2), m.group(5)
        sig = classify_line(message)
        if level not in ERROR_LEVELS and (level != "warn" or sig == "other"):
            continue
        fields = request_fields(message)
        events.append((when, sig, line.strip(), fields.get("upstream"), own_message(message), fields))
    events.sort(key=lambda e: e[0])  # several logs merged: by time, file order kept within a second
    burst_start = None
    if events:
        burst_index = len(events) - 1
        while burst_index > 0 and (events[burst_index][0] - events[burst_index - 1][0]).total_seconds() <= \
                BURST_GAP_S:
            burst_index -= 1
        burst_start = events[burst_index][0]
    else:
        burst_index = 0
    sigs = {}
    order = []
    for i, (when, sig, line, up, own, fields) in enumerate(events):
        entry = sigs.get(sig)
        if entry is None:
            entry = sigs[sig] = {"signature": sig, "count": 0, "first": when.strftime("%Y/%m/%d %H:%M:%S"),
                                 "last": None, "sample": _short(line, 400), "message": _short(own, 200),
                                 "fields": fields, "upstream": up, "_burst_first": None}
            order.append(sig)
        elif line.strip() != entry["sample"]:
            # the latest line too: a notification quotes the one nearest the failure (alert)
            entry["last_sample"], entry["last_message"] = _short(line, 400), _short(own, 200)
        entry["count"] += 1
        entry["last"] = when.strftime("%Y/%m/%d %H:%M:%S")
        if entry["upstream"] is None and up:
            entry["upstream"] = up
        if i >= burst_index and entry["_burst_first"] is None:
            entry["_burst_first"] = i
    in_burst = sorted((e["_burst_first"], e["signature"]) for e in sigs.values() if e["_burst_first"] is not None)
    primary = None
    for _, sig in in_burst:
        if sig not in SECONDARY_SIGNATURES:
            primary = sig
            break
    if primary in DROPPED_SIGNATURES:  # every other cause in the burst came at or after the drop
        primary = next((sig for _, sig in in_burst if sig in GONE_SIGNATURES), primary)
    if primary is None and in_burst:
        primary = in_burst[0][1] if in_burst[0][1] != "other" or len(in_burst) == 1 else in_burst[1][1]
        if "no_live_upstreams" in [s for _, s in in_burst]:
            primary = "no_live_upstreams"
    upstreams = []
    for event in reversed(events):  # the latest first: what the running nginx dials now
        if event[3] and event[3] not in upstreams:
            upstreams.append(event[3])
    listed = []
    for sig in order:
        entry = dict(sigs[sig])
        entry["in_latest_burst"] = entry.pop("_burst_first") is not None
        listed.append(entry)
    return {"signatures": listed, "primary": primary, "lines_in_window": len(events), "upstreams": upstreams[:5],
            "burst_start": burst_start.strftime("%Y/%m/%d %H:%M:%S") if burst_start else None}
