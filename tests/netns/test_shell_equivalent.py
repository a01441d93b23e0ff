"""The runbook's by-hand iptables cleanup (the plan's shell equivalent of the agent) removes exactly the owned
chains and the jumps to them, in both backends and families, and leaves the rest as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from cni_migrate.analysis.plan.cleanup import iptables_clean_shell
from cni_migrate_testbed.netns import NetnsLab, node_snapshot, snapshot_diff

from .node_state import CALICO_IPTABLES, host_state, kubelet_chains

IPTABLES_KEYS = ("iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save")


@pytest.fixture
def lab(name_prefix: str) -> Iterator[NetnsLab]:
    with NetnsLab(name_prefix, nodes=1) as lab:
        yield lab
    assert lab.leftovers() == []


def test_runbook_iptables_shell_removes_only_owned_chains(lab: NetnsLab) -> None:
    node = lab.nodes[0]
    host_state(lab, node)
    kubelet_chains(lab, node)
    before = {k: v for k, v in node_snapshot(lab, node).items() if k in IPTABLES_KEYS}
    ipsets = "ipset create cali40masq-ipam-pools hash:net; ipset create cali40all-ipam-pools hash:net"
    lab.sh(node, ipsets)
    for backend in ("legacy", "nft"):  # Calico in both backends, and kube-proxy-like chains in IPv6
        lab.run(node, [f"iptables-{backend}-restore", "--noflush"], stdin=CALICO_IPTABLES)
    lab.run(
        node,
        ["ip6tables-nft-restore", "--noflush"],
        stdin="*filter\n:KUBE-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n-A INPUT -j KUBE-FIREWALL\n"
        "-A OUTPUT -j KUBE-SERVICES\nCOMMIT\n",
    )
    script = iptables_clean_shell(["cali-", "KUBE-"])
    subprocess.run(["sh", "-n", "-c", script], check=True)
    lab.sh(node, script)
    after = {k: v for k, v in node_snapshot(lab, node).items() if k in IPTABLES_KEYS}
    diff = snapshot_diff(before, after)
    assert diff == [], "\n".join(diff)
    lab.sh(node, script)  # a second run changes nothing and does not fail
    assert {k: v for k, v in node_snapshot(lab, node).items() if k in IPTABLES_KEYS} == before
