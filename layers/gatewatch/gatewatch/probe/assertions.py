"""Assertions as data: each one keeps its name, what was expected, what was seen and whether it held.

Gatus-style: a failing assertion explains itself, and ``max_latency_ms`` only ever makes a result degraded.
"""

from __future__ import annotations

from typing import Any

from gatewatch.probe.result import Assertion

MISSING = "<missing>"


def check_status(status: int, accepted: list[int] | None) -> Assertion:
    ok = status in accepted if accepted else 200 <= status < 400
    return Assertion("status", list(accepted) if accepted else "2xx/3xx", status, ok)


def check_latency(total_ms: float, max_ms: int) -> Assertion:
    return Assertion("max_latency_ms", max_ms, round(total_ms, 1), total_ms <= max_ms)


def check_body_contains(text: str, needle: str) -> Assertion:
    return Assertion("body_contains", needle, needle in text, needle in text)


def check_json(document: Any, expected: dict[str, Any]) -> list[Assertion]:
    """``expected`` maps dotted paths (``data.items.0.id``) to values; a missing path fails, naming it."""
    out = []
    for path, want in expected.items():
        got = lookup(document, path)
        out.append(Assertion(f"json.{path}", want, got, got != MISSING and _equal(got, want)))
    return out


def lookup(document: Any, path: str) -> Any:
    cur = document
    for part in str(path).split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


def _equal(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    return got == want
