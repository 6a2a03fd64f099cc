"""Firewall: iptables/ip6tables and nft rules that drop or reject the ports that matter."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import re

from .common import FAIL, OK, UNKNOWN, _short, run_cmd
from .registry import check, result

PORT_SPEC_RE = re.compile(r"--dports? ([0-9:,]+)")
NFT_PORT_RE = re.compile(r"\bdport (?:\{ ([^}]*) \}|([0-9-]+))")


def _ports_in(spec: str, sep_range: str) -> list:
    out = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        if sep_range in part:
            lo, _, hi = part.partition(sep_range)
            if lo.isdigit() and hi.isdigit():
                out.append((int(lo), int(hi)))
        elif part.isdigit():
            out.append((int(part), int(part)))
    return out


def firewall_rules(text: str, tool: str, backend_port: int, web_ports) -> list:
    """DROP/REJECT rules that hit the backend port, the web ports, or all loopback traffic."""
    found = []
    # Tables iptables-nft manages were already read through iptables -S: do not count their rules twice.
    managed = set(re.findall(r"table (\S+ \S+) is managed by iptables-nft", text)) if tool == "nft" else set()
    table = None
    for line in text.splitlines():
        rule = line.strip()
        m = re.match(r"^table (\S+ \S+) \{", rule)
        if m:
            table = m.group(1)
            continue
        if table in managed:
            continue
        if tool == "iptables":
            if not rule.startswith("-A "):
                continue
            m = re.search(r"-j (DROP|REJECT)\b", rule)
            if not m:
                continue
            action = m.group(1).lower()
            ranges = []
            for spec in PORT_SPEC_RE.findall(rule):
                ranges += _ports_in(spec, ":")
            loopback = bool(re.search(r"-[io] lo\b", rule))
        else:
            m = re.search(r"\b(drop|reject)\b", rule)
            if not m or rule.startswith(("type ", "policy", "chain ", "table ")) or "policy" in rule:
                continue
            action = m.group(1)
            ranges = []
            for group, single in NFT_PORT_RE.findall(rule):
                ranges += _ports_in(group or single, "-")
            loopback = bool(re.search(r'\b(iif|oif|iifname|oifname) "?lo"?\b', rule))
        hits = [port for port in [backend_port] + list(web_ports) if any(lo <= port <= hi for lo, hi in ranges)]
        if not ranges and loopback:
            hits = [backend_port]
        for port in hits:
            found.append({"rule": _short(rule, 200), "port": port, "action": action})
    return found


@check("firewall")
def check_firewall(ctx):
    p = ctx.p
    web_ports = sorted({80, 443, p["nginx_port"]})
    value = {"tool": None, "tools": [], "blocking_rules": [], "blocks_backend": False, "blocks_web": False}
    evidence, errors = [], []
    ctx.publish("firewall", value, evidence)
    for tool, argvs in (("iptables", (["iptables", "-S"], ["ip6tables", "-S"])), ("nft", (["nft", "list",
                                                                                          "ruleset"],))):
        worked = False
        for argv in argvs:
            res = run_cmd(ctx, argv, timeout=2.0)
            if res.error:
                errors.append(res.error)
                continue
            if not res.ok:
                errors.append("%s: %s" % (" ".join(argv), _short(res.text(), 160)))
                continue
            worked = True
            for r in firewall_rules(res.out + "\n" + res.err, tool, p["backend_port"], web_ports):
                r["tool"] = argv[0]
                value["blocking_rules"].append(r)
        if worked:
            value["tools"].append(tool)
    if not value["tools"]:
        return result(UNKNOWN, value, evidence, "; ".join(errors) or "no firewall tool")
    value["tool"] = value["blocking_rules"][0]["tool"].replace("ip6tables", "iptables") if value["blocking_rules"] \
        else value["tools"][0]
    value["blocks_backend"] = any(r["port"] == p["backend_port"] for r in value["blocking_rules"])
    value["blocks_web"] = any(r["port"] in web_ports for r in value["blocking_rules"])
    for r in value["blocking_rules"][:5]:
        evidence.append("%s: %s" % (r["tool"], r["rule"]))
    if not value["blocking_rules"]:
        evidence.append("no DROP/REJECT rule for ports %s (%s)" % (
            ", ".join(str(x) for x in [p["backend_port"]] + web_ports), ", ".join(value["tools"])))
    value["blocking_rules"] = value["blocking_rules"][:20]
    bad = value["blocks_backend"] or value["blocks_web"]
    return result(FAIL if bad else OK, value, evidence, "; ".join(errors) or None)
