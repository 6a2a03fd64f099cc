"""SELinux: enforcing mode, httpd_can_network_connect and AVC denials."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os

from .common import FAIL, LOG_TAIL_BYTES, OK, UNKNOWN, _errtext, read_file, read_tail, run_cmd
from .registry import check, result


@check("selinux")
def check_selinux(ctx):
    value = {"present": False, "mode": None, "httpd_can_network_connect": None, "denials": 0}
    evidence = []
    if os.path.exists("/sys/fs/selinux/enforce"):
        value["present"] = True
        try:
            value["mode"] = "enforcing" if read_file("/sys/fs/selinux/enforce", 8).strip() == "1" else "permissive"
        except OSError as exc:
            res = run_cmd(ctx, ["getenforce"], timeout=2.0)
            if res.ok:
                value["mode"] = res.out.strip().lower()
            else:
                return result(UNKNOWN, value, evidence, "cannot read SELinux mode: %s" % _errtext(exc))
        try:
            current = read_file("/sys/fs/selinux/booleans/httpd_can_network_connect", 16).split()
            value["httpd_can_network_connect"] = current[0] == "1" if current else None
        except OSError:
            pass
    else:
        res = run_cmd(ctx, ["getenforce"], timeout=2.0)
        if res.ok and res.out.strip():
            value["present"] = res.out.strip().lower() != "disabled"
            value["mode"] = res.out.strip().lower()
    if not value["present"]:
        evidence.append("SELinux not present")
        return result(OK, value, evidence)
    try:
        text, _ = read_tail("/var/log/audit/audit.log", LOG_TAIL_BYTES)
        value["denials"] = sum(1 for line in text.splitlines() if "avc:" in line and "denied" in line and
                               ("httpd" in line or "nginx" in line))
    except OSError as exc:
        evidence.append("audit log unreadable: %s" % _errtext(exc))
    evidence.append("SELinux %s, httpd_can_network_connect=%s, %d nginx/httpd AVC denial(s)"
                    % (value["mode"], value["httpd_can_network_connect"], value["denials"]))
    bad = value["mode"] == "enforcing" and (value["httpd_can_network_connect"] is False or value["denials"] > 0)
    return result(FAIL if bad else OK, value, evidence)
