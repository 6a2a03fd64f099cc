"""Host-side allow-lists for the on-box checks: ``gatewatch/hostpaths.py`` is the one source.

The zipapp carries a copy of that file as ``hostpaths.py`` in this package (``bundle.py`` vendors it); in the
library the same file is imported from ``gatewatch``. The SSM documents, the config schema and the remediation path
read ``gatewatch.hostpaths`` directly.
"""

from __future__ import annotations

try:  # inside the zipapp: the vendored copy
    from .hostpaths import NGINX_BINARIES, log_path_problem, log_root_problem, nginx_bin_allowed
except ImportError:  # in the library: the file itself
    from gatewatch.hostpaths import NGINX_BINARIES, log_path_problem, log_root_problem, nginx_bin_allowed

NGINX_BIN_NAME = "nginx"  # looked up on PATH; what it resolves to must still be one of NGINX_BIN_PATHS
NGINX_BIN_PATHS = tuple(b for b in NGINX_BINARIES if b.startswith("/"))
# The names an nginx master's /proc/PID/exe may resolve to (basename), beside NGINX_BIN_PATHS themselves.
NGINX_EXE_NAMES = ("nginx", "nginx-debug", "openresty")

__all__ = ["NGINX_BINARIES", "NGINX_BIN_NAME", "NGINX_BIN_PATHS", "NGINX_EXE_NAMES", "log_path_problem",
           "log_root_problem", "nginx_bin_allowed"]
