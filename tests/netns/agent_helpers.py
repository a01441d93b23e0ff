"""Helpers of the netns tests: run the agent in a node through the local transport; probe the kernel."""

from __future__ import annotations

import shlex
import sys

from cni_migrate.actions.nodes.transport import CommandResult, LocalTransport
from cni_migrate_testbed.netns import NetnsLab


def transport_for(lab: NetnsLab) -> LocalTransport:
    return LocalTransport({n.name: n.netns for n in lab.nodes}, {n.name: n.env for n in lab.nodes})


def agent(lab: NetnsLab, node_index: int, *args: str, env: str = "", timeout: float = 120) -> CommandResult:
    """Run ``cni-migrate node ARGS`` inside the node's namespace through the local transport."""
    node = lab.nodes[node_index]
    script = f"{env} {shlex.quote(sys.executable)} -m cni_migrate -o json node {shlex.join(args)}"
    return transport_for(lab).run(node.name, script, timeout=timeout)


def kernel_has(lab: NetnsLab, kind: str) -> bool:
    """Whether the kernel can make a link of this kind (ipip, wireguard...); tried inside a lab namespace."""
    node = lab.nodes[0]
    p = lab.run(node, ["ip", "link", "add", f"probe-{kind[:6]}", "type", kind], check=False)
    if p.returncode == 0:
        lab.run(node, ["ip", "link", "del", f"probe-{kind[:6]}"])
        return True
    return False
