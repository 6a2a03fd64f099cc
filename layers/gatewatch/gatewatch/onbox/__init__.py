"""The on-box checks: one stdlib-only script (``checks.py``) and the helpers that feed and read it.

``checks.py`` is run as a file by the host's own python3 (locally or through SSM), never imported there; the
library imports it only to reuse its pure functions (the error-log classifier) and to find its path and text.
"""

from __future__ import annotations

from pathlib import Path

from gatewatch.onbox.params import decode_params, encode_params, onbox_params

SCRIPT_PATH = Path(__file__).with_name("checks.py")
SIGNATURES = (
    "connection_refused", "connect_timeout", "upstream_timeout", "upstream_closed", "connection_reset",
    "header_too_big", "permission_denied", "socket_missing", "no_live_upstreams", "too_many_open_files",
    "no_space", "cannot_assign_address", "resolve_failed", "upstream_ssl_error", "invalid_upstream_response",
    "no_route_to_host", "resource_unavailable", "bind_conflict", "other",
)
CHECK_NAMES = ("service", "port", "local_health", "local_endpoint", "nginx", "app_log", "firewall", "resources",
               "selinux", "database")


def script_path() -> Path:
    """Where the script lives, for a subprocess: ``[python3, script_path(), encode_params(...)]``."""
    return SCRIPT_PATH


def script_text() -> str:
    """The script's source, for embedding in an SSM Command document."""
    return SCRIPT_PATH.read_text(encoding="utf-8")


__all__ = ["CHECK_NAMES", "SIGNATURES", "decode_params", "encode_params", "onbox_params", "script_path",
           "script_text"]
