"""Firewall rules that block the backend or the web ports: parsed from real iptables/nft output, and read for
real inside a network namespace the test creates (so the host's own firewall is never touched)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from gatewatch.config import Host
from gatewatch.onbox.checks import firewall
from gatewatch.runner import SUCCESS, LocalRunner

IPTABLES_S = """-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-A INPUT -p tcp -m tcp --dport 8000 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -i lo -p tcp -m multiport --dports 80,443 -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j DROP
-A OUTPUT -o lo -j REJECT --reject-with icmp-host-unreachable
-A INPUT -p tcp -m tcp --dport 8000 -j ACCEPT
"""

NFT_RULESET = """table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy accept;
		tcp dport 8000 counter packets 0 bytes 0 reject
	}
}
table inet gw {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport { 443, 8443 } reject
		iifname "lo" tcp dport 7990-8010 drop
		tcp dport 9000 drop
	}
}# Warning: table ip filter is managed by iptables-nft, do not touch!
"""


def test_iptables_rules_on_the_backend_web_and_loopback():
    rules = firewall.firewall_rules(IPTABLES_S, "iptables", 8000, [80, 443])
    assert [(r["port"], r["action"]) for r in rules] == [(8000, "reject"), (80, "drop"), (443, "drop"),
                                                         (8000, "reject")]
    assert rules[-1]["rule"].startswith("-A OUTPUT -o lo")  # all loopback traffic, no port needed


def test_nft_rules_sets_ranges_and_iptables_managed_tables_skipped():
    rules = firewall.firewall_rules(NFT_RULESET, "nft", 8000, [80, 443])
    assert [(r["port"], r["action"]) for r in rules] == [(443, "reject"), (8000, "drop")]


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("creating a network namespace needs root and iproute2")
    name = f"gwt-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("ip netns add is not permitted here")
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.skipif(not shutil.which("iptables"), reason="needs iptables (apt-get install iptables)")
def test_real_rules_inside_a_namespace(netns):
    def ns(*argv):
        subprocess.run(["ip", "netns", "exec", netns, *argv], check=True, capture_output=True)

    runner = LocalRunner(python=sys.executable)
    host = Host(local=True, netns=netns)
    params = {"service_manager": "command", "process_match": "gwtest-none", "backend_port": 8000,
              "nginx_conf": "/nonexistent/n.conf"}
    clean = json.loads(runner.run_onbox(host, params).stdout)["firewall"]
    assert clean["status"] == "ok" and clean["value"]["blocking_rules"] == []

    ns("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8000", "-j", "REJECT")
    res = runner.run_onbox(host, params)
    assert res.status == SUCCESS
    fw = json.loads(res.stdout)["firewall"]
    assert fw["status"] == "fail"
    assert fw["value"]["blocks_backend"] is True and fw["value"]["blocks_web"] is False
    assert fw["value"]["tool"] == "iptables"
    assert [r["port"] for r in fw["value"]["blocking_rules"]] == [8000]  # not counted again through nft
    assert any("--dport 8000" in e for e in fw["evidence"])
