"""JSON from someone else (a probed server's body, the on-box report, a facts file), parsed within bounds.

``json.loads`` recurses once per nesting level: ``[[[[...]]]]`` a few thousand deep raises RecursionError, which
is not a ValueError, escapes the usual ``except ValueError`` and would turn one hostile answer into a crashed
round. ``loads`` refuses a document over ``max_bytes`` or nested deeper than ``max_depth`` before parsing, and
raises only ``JsonError`` (a ValueError). Stdlib only.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 128
MAX_BYTES = 8 * 1024 * 1024
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class JsonError(ValueError):
    """Not JSON, too large or too deep; the message says which."""


def depth(data: bytes, stop: int | None = None) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without recursion; counting
    stops once ``stop`` is exceeded."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    deepest = level = 0
    for b in brackets:
        level += 1 if b in (0x5B, 0x7B) else -1
        if level > deepest:
            deepest = level
            if stop is not None and deepest > stop:
                break
    return deepest


def loads(data: str | bytes | bytearray, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JsonError(f"JSON document of {len(raw)} bytes is over the {max_bytes}-byte limit")
    if depth(raw, stop=max_depth) > max_depth:
        raise JsonError(f"JSON nested more than {max_depth} levels deep")
    try:
        return json.loads(raw)
    except RecursionError:  # cannot happen after the depth check; kept so no caller ever sees one
        raise JsonError(f"JSON nested over the limit of {max_depth}") from None
    except (ValueError, TypeError) as exc:
        raise JsonError(f"not JSON: {exc}") from None
