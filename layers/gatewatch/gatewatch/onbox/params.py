"""Build the on-box checks' parameters from a target's configuration, and carry them as one shell-safe word.

The script validates every value again (it may be handed anything), but the config schema already restricted
them to safe alphabets; this module only picks and renames.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # config.models imports the on-box allow-list, which imports this package
    from gatewatch.config.models import Target

HOST_KEYS = (
    "service", "service_manager", "supervisor_config", "process_match", "backend_host", "backend_port",
    "health_path", "nginx_port", "nginx_bin", "nginx_conf", "nginx_prefix", "nginx_error_log", "app_log",
    "log_window_minutes", "extra_paths", "backend_socket",
)


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
    url = urlsplit(target.url)
    params["endpoint_path"] = (url.path or "/") + (f"?{url.query}" if url.query else "")
    params["endpoint_method"] = target.method
    params["endpoint_body"] = target.body
    params["public_host"] = url.hostname
    params["expect_status"] = list(target.expect.status) if target.expect.status else None
    return params


def encode_params(params: dict[str, Any]) -> str:
    """``b64:`` + base64 of the JSON: one argv word with no quotes for any shell (SSM) to mangle."""
    raw = json.dumps(params, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return "b64:" + base64.b64encode(raw).decode("ascii")


def decode_params(word: str) -> dict[str, Any]:
    """The inverse of ``encode_params`` (plain JSON accepted too), for tests and debugging."""
    text = base64.b64decode(word[4:], validate=True).decode("utf-8") if word.startswith("b64:") else word
    return json.loads(text)
