"""The on-box checks: a stdlib-only package (``checks/``) shipped as one zipapp, and the helpers that feed and read it.

``checks/`` runs on the host's own python3 (3.8+) as ``python3 gatewatch-onbox.pyz ARG`` (``bundle.py`` builds the
zipapp; the SSM document embeds it, the local runner runs it). The library imports the package's modules only to
reuse their pure functions (the error-log classifier) and in tests.
"""

from __future__ import annotations

from pathlib import Path

from gatewatch.onbox.params import decode_params, encode_params, onbox_params

PACKAGE_DIR = Path(__file__).with_name("checks")
SIGNATURES = (
    "connection_refused", "connect_timeout", "upstream_timeout", "upstream_closed", "connection_reset",
    "header_too_big", "permission_denied", "socket_missing", "no_live_upstreams", "too_many_open_files",
    "no_space", "cannot_assign_address", "resolve_failed", "upstream_ssl_error", "invalid_upstream_response",
    "no_route_to_host", "resource_unavailable", "bind_conflict", "other",
)
CHECK_NAMES = ("service", "port", "local_health", "local_endpoint", "nginx", "app_log", "firewall", "resources",
               "selinux", "database")


def script_path() -> Path:
    """The zipapp as a file, for a subprocess: ``[python3, script_path(), encode_params(...)]``."""
    from gatewatch.onbox.bundle import zipapp_path

    return zipapp_path()


def script_bytes() -> bytes:
    """The zipapp's bytes, for embedding in an SSM Command document."""
    from gatewatch.onbox.bundle import zipapp_bytes

    return zipapp_bytes()


__all__ = ["CHECK_NAMES", "PACKAGE_DIR", "SIGNATURES", "decode_params", "encode_params", "onbox_params",
           "script_bytes", "script_path"]
