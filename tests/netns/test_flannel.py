"""Real flanneld (kube subnet manager; vxlan and host-gw backends) in two node namespaces against the test API
server: a pod in node 1 pings a pod in node 2 over Flannel's VXLAN (or its host-gw routes); ``clean --old-cni flannel`` removes flannel.1, FLANNEL-*
chains and /run/flannel (and the cni0 bridge with the pod veths) and leaves the rest as it was before Flannel;
a route installed afterwards, as Cilium's native routing would, carries the ping again; ``restore`` brings
Flannel's links, routes, neighbours and FDB back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.netns import NetnsLab, node_snapshot, snapshot_diff, wait_until

from .agent_helpers import agent
from .node_state import host_state

# The conflist Flannel's DaemonSet installs (kube-flannel.yml, install-cni container): the flannel CNI plugin,
# delegating to the bridge plugin with bridge cni0.
FLANNEL_CONFLIST = (
    '{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel", "delegate": '
    '{"hairpinMode": true, "isDefaultGateway": true}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}\n'
)


@pytest.fixture
def lab(control_plane: ControlPlane, name_prefix: str) -> Iterator[NetnsLab]:
    with NetnsLab(name_prefix, nodes=2) as lab:
        lab.forward_api(control_plane.apiserver_port)
        for i, node in enumerate(lab.nodes, start=1):
            control_plane.create_fake_node(node.name, internal_ip=node.ip, pod_cidr=f"10.244.{i}.0/24")
        try:
            yield lab
        finally:
            control_plane.delete_nodes([n.name for n in lab.nodes])
    assert lab.leftovers() == []


def ping(lab: NetnsLab, pod_ns: str, dst: str) -> bool:
    return lab.run_in(pod_ns, ["ping", "-c", "1", "-W", "1", dst], check=False).returncode == 0


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_flannel_ping_clean_restore(lab: NetnsLab, control_plane: ControlPlane, backend: str) -> None:
    for node in lab.nodes:
        host_state(lab, node)
    before = [node_snapshot(lab, n) for n in lab.nodes]

    procs = [lab.start_flannel(n, control_plane.admin_kubeconfig, backend=backend) for n in lab.nodes]
    pods = []
    for i, node in enumerate(lab.nodes, start=1):
        wait_until(lambda n=node: (n.root / "run/flannel/subnet.env").exists(), 60, f"{node.name} subnet.env")
        # cni0 and the pod's veth, as the bridge plugin makes them from Flannel's subnet.env.
        lab.sh(node, f"ip link add cni0 type bridge && ip addr add 10.244.{i}.1/24 dev cni0 && ip link set cni0 up")
        pods.append(
            lab.add_pod(node, f"pod{i}", f"10.244.{i}.2", f"10.244.{i}.1", host_if=f"veth{i}pod", bridge="cni0")
        )
        (node.root / "etc/cni/net.d/10-flannel.conflist").write_text(FLANNEL_CONFLIST)
    for i, node in enumerate(lab.nodes, start=1):
        other = f"10.244.{3 - i}.0/24"
        wait_until(lambda n=node, o=other: o in lab.run(n, ["ip", "route"]).stdout, 60, f"{node.name} {backend} routes")
    assert wait_until(lambda: ping(lab, pods[0], "10.244.2.2"), 30, f"pod-to-pod ping over Flannel ({backend})")
    for p in procs:
        lab.terminate(p)
    node1 = lab.nodes[0]
    routes = lab.run(node1, ["ip", "route"]).stdout
    if backend == "vxlan":
        link = json.loads(lab.run(node1, ["ip", "-j", "-d", "link", "show", "flannel.1"]).stdout)[0]
        assert link["linkinfo"]["info_kind"] == "vxlan" and link["linkinfo"]["info_data"]["id"] == 1
        assert "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in routes
    else:
        assert "10.244.2.0/24 via 192.168.77.12 dev eth0" in routes and "flannel.1" not in routes
    assert "FLANNEL-POSTRTG" in lab.run(node1, ["iptables-nft-save"]).stdout
    with_flannel = node_snapshot(lab, node1)

    cleaned = agent(lab, 0, "clean", "--old-cni", "flannel")
    assert cleaned.ok, cleaned.stderr
    agent(lab, 1, "clean", "--old-cni", "flannel")
    diff = snapshot_diff(before[0], node_snapshot(lab, node1))
    assert diff == [], "\n".join(diff)
    assert not (node1.root / "run/flannel").exists()
    assert "FLANNEL" not in lab.run(node1, ["iptables-nft-save"]).stdout
    assert (
        "flannel.1" not in lab.run(node1, ["ip", "link"]).stdout and "cni0" not in lab.run(node1, ["ip", "link"]).stdout
    )

    # After clean: a route installed as Cilium's native routing would (pod veth + /32 route, node routes via
    # eth0) carries traffic between new pod interfaces.
    for i, node in enumerate(lab.nodes, start=1):
        other = lab.nodes[2 - i]
        host_if = f"lxc{i}"
        ns = lab.add_pod(node, f"new{i}", f"10.244.{i}.20", "169.254.1.1", host_if=host_if, prefixlen=32)
        lab.sh(
            node,
            f"""
            ip route add 10.244.{i}.20/32 dev {host_if} scope link
            ip addr add 169.254.1.1/32 dev {host_if}
            ip route add 10.244.{3 - i}.0/24 via {other.ip} dev eth0
        """,
        )
        pods.append(ns)
    assert wait_until(lambda: ping(lab, pods[2], "10.244.2.20"), 20, "ping over the route installed after clean")
    lab.sh(node1, "ip link del lxc1 && ip route del 10.244.2.0/24")

    restored = agent(lab, 0, "restore")
    assert restored.ok, restored.stderr
    rep = json.loads(restored.stdout)
    assert [x.split(" ")[1] for x in rep["not_restorable"]] == ["veth1pod"]
    # veth1pod (peer in the pod's namespace) cannot come back; cni0 does (bridge, MAC, address) but without a
    # port it has no carrier, hence no IPv6 link-local address, "linkdown" routes and other FDB entries until
    # the pod is recreated. Both are compared apart; everything else must be as it was with Flannel.
    gone = ("veth1pod", "cni0")
    expected = dict(with_flannel)
    back = node_snapshot(lab, node1)
    for snap in (expected, back):
        for key in ("links", "addresses"):
            snap[key] = {k: v for k, v in snap[key].items() if k not in gone}
        for key in ("routes4", "routes6", "fdb"):
            snap[key] = [r for r in snap[key] if not any(g in r for g in gone)]
    diff = snapshot_diff(expected, back)
    assert diff == [], "\n".join(diff)
    cni0 = json.loads(lab.run(node1, ["ip", "-j", "-d", "addr", "show", "cni0"]).stdout)[0]
    assert cni0["linkinfo"]["info_kind"] == "bridge"
    assert cni0["address"] == with_flannel["links"]["cni0"]["address"]
    assert [a["local"] for a in cni0["addr_info"] if a["family"] == "inet"] == ["10.244.1.1"]
