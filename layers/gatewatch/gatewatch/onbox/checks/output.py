"""Keeping the report under SSM's output limit, and the error document."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import json
import platform
import socket
import time

from .common import MAX_OUTPUT_CHARS, SCHEMA, VERSION, _short, utc_iso


def _dumps(doc) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, default=str, sort_keys=False)


def _trim_strings(node, limit: int):
    if isinstance(node, str):
        return _short(node, limit)
    if isinstance(node, list):
        return [_trim_strings(x, limit) for x in node]
    if isinstance(node, dict):
        return {k: _trim_strings(v, limit) for k, v in node.items()}
    return node


def _trim_lists(node, limit: int):
    if isinstance(node, list):
        return [_trim_lists(x, limit) for x in node[:limit]]
    if isinstance(node, dict):
        return {k: _trim_lists(v, limit) for k, v in node.items()}
    return node


def bound_output(report: dict, limit: int = MAX_OUTPUT_CHARS) -> str:
    """The JSON text, under ``limit`` characters: evidence is trimmed first, then samples, then lists."""
    text = _dumps(report)
    if len(text) <= limit:
        return text
    doc = json.loads(text)
    doc.setdefault("meta", {})["truncated"] = True
    checks = [k for k, v in doc.items() if isinstance(v, dict) and "status" in v]
    steps = []
    for n_items, n_chars in ((4, 200), (2, 120), (1, 80), (0, 0)):
        steps.append(("evidence", n_items, n_chars))
    for n_chars in (200, 100, 40):
        steps.append(("samples", n_chars, None))
    for n_items in (5, 2, 1):
        steps.append(("lists", n_items, None))
    for step in steps:
        kind = step[0]
        for name in checks:
            c = doc[name]
            if kind == "evidence":
                c["evidence"] = [_short(e, step[2]) for e in c.get("evidence", [])[: step[1]]]
            elif kind == "samples":
                c["value"] = _trim_strings(c.get("value"), step[1])
                if "error_signatures" in c:
                    c["error_signatures"] = _trim_strings(c["error_signatures"], step[1])
                if c.get("error"):
                    c["error"] = _short(c["error"], max(step[1], 80))
            else:
                c["value"] = _trim_lists(c.get("value"), step[1])
                if "error_signatures" in c:
                    c["error_signatures"] = c["error_signatures"][: max(step[1], 3)]
        text = _dumps(doc)
        if len(text) <= limit:
            return text
    # Last resort: statuses and errors only; still valid, still the same keys.
    slim = {"schema": SCHEMA, "meta": doc.get("meta", {})}
    for name in checks:
        slim[name] = {"status": doc[name].get("status"), "value": {}, "evidence": [],
                      "error": _short(doc[name].get("error"), 80)}
        if name == "nginx":
            slim[name]["error_signatures"] = []
            slim[name]["primary_signature"] = doc[name].get("primary_signature")
    return _dumps(slim)[:limit]


def error_document(message: str, field=None) -> str:
    return _dumps({"schema": SCHEMA, "error": _short(message, 2000), "field": field,
                   "meta": {"host": socket.gethostname(), "collected_at": utc_iso(time.time()), "duration_ms": 0.0,
                            "truncated": False, "python": platform.python_version(), "script_version": VERSION}})
