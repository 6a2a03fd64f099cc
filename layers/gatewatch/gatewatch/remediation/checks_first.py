"""Checks run on the host immediately before an action (named in catalogue.yaml as ``check_first``).

The facts that allowed the action are a minute old; the file may have changed since. So the runner tests the
nginx configuration again right before starting or reloading nginx, and runs nothing if it fails now
(the SSM remediation document does the same on its side).
"""

from __future__ import annotations

from collections.abc import Callable

from gatewatch import hostpaths
from gatewatch.config.models import Host


def nginx_config_test(host: Host) -> list[str]:
    if not hostpaths.nginx_bin_allowed(host.nginx_bin):
        from gatewatch.remediation.commands import CommandError

        raise CommandError(f"host.nginx_bin {host.nginx_bin!r} is not one of {', '.join(hostpaths.NGINX_BINARIES)}")
    argv = [host.nginx_bin, "-t"]
    if host.nginx_prefix:
        argv += ["-p", host.nginx_prefix.rstrip("/") + "/"]
    if host.nginx_conf:
        argv += ["-c", host.nginx_conf]
    return argv


CHECKS_FIRST: dict[str, Callable[[Host], list[str]]] = {"nginx_config_test": nginx_config_test}
