"""Build the on-box checks' parameters from a target's configuration, and carry them as one shell-safe word.

The script validates every value again (it may be handed anything), but the config schema already restricted
them to safe alphabets; this module only picks and renames.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:  # config.models imports the on-box allow-list, which imports this package
    from gatewatch.config.models import Target

HOST_KEYS = (
    "service", "service_manager", "supervisor_config", "process_match", "backend_host", "backend_port",
    "health_path", "nginx_port", "nginx_bin", "nginx_conf", "nginx_prefix", "nginx_error_log", "app_log",
    "log_window_minutes", "extra_paths", "backend_socket",
)


# What the script accepts in a request path besides letters, digits and _ . - ~ (its URL_PATH_RE): anything else a
# URL may hold (| " { } [ ] ^ ` and non-ASCII) is sent percent-encoded, which servers read as the same path.
_PATH_SAFE = "/!$&'()*+,;=:@%"


def endpoint_path(url: str) -> str:
    """The path and query the on-box checks request for ``url``, in the script's alphabet."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return path + (f"?{quote(parts.query, safe=_PATH_SAFE + '?')}" if parts.query else "")


def public_host(url: str) -> str | None:
    """The URL's host as the Host header carries it: an internationalised name in its ASCII (punycode) form."""
    host = urlsplit(url).hostname
    if host is None or host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host  # the script refuses it; config check says why (config.models.Target)


def onbox_params(target: Target) -> dict[str, Any]:
    """The script's parameters for ``target``; ValueError when the target has no ``host`` section."""
    host = target.host
    if host is None:
        raise ValueError(f"target {target.name!r} has no host section: the on-box checks need one")
    params: dict[str, Any] = {key: getattr(host, key) for key in HOST_KEYS}
    params["extra_paths"] = list(host.extra_paths)
    params["log_roots"] = list(host.log_roots)
    params["database"] = None
    if host.database:
        db = host.database
        params["database"] = {"host": db.host, "port": db.port}
        params["database"].update({k: getattr(db, k) for k in ("kind", "name", "user") if getattr(db, k) is not None})
    params["endpoint_path"] = endpoint_path(target.url)
    params["endpoint_method"] = target.method
    params["endpoint_body"] = target.body
    params["public_host"] = public_host(target.url)
    params["expect_status"] = sorted(set(target.expect.status)) if target.expect.status else None
    return params


def encode_params(params: dict[str, Any]) -> str:
    """``b64:`` + base64 of the JSON: one argv word with no quotes for any shell (SSM) to mangle."""
    raw = json.dumps(params, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return "b64:" + base64.b64encode(raw).decode("ascii")


def decode_params(word: str) -> dict[str, Any]:
    """The inverse of ``encode_params`` (plain JSON accepted too), for tests and debugging."""
    text = base64.b64decode(word[4:], validate=True).decode("utf-8") if word.startswith("b64:") else word
    return json.loads(text)
