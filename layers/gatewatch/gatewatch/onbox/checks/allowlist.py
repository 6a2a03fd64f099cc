"""Host-side allow-lists: the ONE source for the on-box checks, the SSM documents' allowedPattern and the config.

Pure data (stdlib ``re`` only), so the library imports it too: ``gatewatch.onbox.checks.allowlist``.
"""

from __future__ import annotations

import re

# Where an nginx binary may be: the distributions' packages, nginx.org's and OpenResty's builds, a source install.
NGINX_BIN_PATHS = (
    "/usr/sbin/nginx",
    "/usr/bin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/bin/nginx",
    "/usr/local/nginx/sbin/nginx",
    "/opt/nginx/sbin/nginx",
    "/usr/local/openresty/nginx/sbin/nginx",
    "/usr/local/openresty/bin/openresty",
)
NGINX_BIN_NAME = "nginx"  # looked up on PATH; what it resolves to must still be one of NGINX_BIN_PATHS
# The names an nginx master's /proc/PID/exe may resolve to (basename), beside NGINX_BIN_PATHS themselves.
NGINX_EXE_NAMES = ("nginx", "nginx-debug", "openresty")

# Log files named by the targets config are read only under these roots, or under a target's own ``log_roots``:
# never one of SYSTEM_TREES or inside one, never a parent of one (so never ``/``, ``/var``), and on the host a
# directory no non-root user can write (trust.py).
LOG_ROOTS = ("/var/log",)
SYSTEM_TREES = ("/etc", "/root", "/home", "/boot", "/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib32",
                "/lib64", "/libx32", "/var/lib", "/var/backups", "/var/spool", "/var/mail", "/var/cache",
                "/run/secrets", "/snap")
# A root may sit inside these, never be one of them or above them.
SHARED_PARENTS = ("/var", "/run", "/tmp", "/opt", "/srv", "/var/tmp")  # noqa: S108 - names, never files we create


def nginx_bin_allowed(value: str) -> bool:
    """``nginx`` (on PATH) or exactly one of NGINX_BIN_PATHS."""
    return value == NGINX_BIN_NAME or value in NGINX_BIN_PATHS


def nginx_bin_pattern() -> str:
    """The SSM allowedPattern for an nginx binary parameter (anchored; no trailing newline accepted by SSM's Java)."""
    return "^(" + "|".join(re.escape(v) for v in (NGINX_BIN_NAME,) + NGINX_BIN_PATHS) + ")$"


def _under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both absolute and normalised)."""
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


def log_root_allowed(root: str) -> bool:
    """A configured log root: absolute, normalised, not a system directory and not a parent of one."""
    if not root.startswith("/") or "/../" in root + "/" or "/./" in root + "/" or "//" in root:
        return False
    norm = root.rstrip("/") or "/"
    if any(_under(norm, s) for s in SYSTEM_TREES):
        return False
    return not any(_under(s, norm) for s in SYSTEM_TREES + SHARED_PARENTS)



def log_path_allowed(path: str, extra_roots=()) -> bool:
    """A log path under LOG_ROOTS or one of ``extra_roots`` (already checked with ``log_root_allowed``)."""
    if not path.startswith("/") or "/../" in path + "/" or "/./" in path + "/":
        return False
    return any(_under(path, r) and path != r.rstrip("/") for r in LOG_ROOTS + tuple(extra_roots))
