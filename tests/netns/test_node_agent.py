"""The node agent against real kube-proxy (iptables mode) state and Calico's state, in network namespaces.

Before anything of the old CNI or kube-proxy exists, a snapshot of the node is taken (the host's own state and
kubelet's chains); after ``clean`` the node must equal that snapshot, and after ``restore`` the snapshot taken
with Calico and kube-proxy in place (minus the one workload veth, which cannot be recreated and is reported so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from lightkube.generic_resource import create_namespaced_resource  # noqa: F401 - keeps lightkube's models loaded
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.discovery_v1 import Endpoint, EndpointPort
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service
from lightkube.resources.discovery_v1 import EndpointSlice

from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.netns import NetnsLab, node_snapshot, snapshot_diff, wait_until

from .agent_helpers import agent, kernel_has
from .node_state import calico_state, host_state, kubelet_chains


@pytest.fixture
def lab(control_plane: ControlPlane, name_prefix: str) -> Iterator[NetnsLab]:
    with NetnsLab(name_prefix, nodes=1) as lab:
        lab.forward_api(control_plane.apiserver_port)
        for i, node in enumerate(lab.nodes, start=1):
            control_plane.create_fake_node(node.name, internal_ip=node.ip, pod_cidr=f"10.244.{i}.0/24")
        try:
            yield lab
        finally:
            control_plane.delete_nodes([n.name for n in lab.nodes])
    assert lab.leftovers() == []


def make_services(control_plane: ControlPlane, namespace: str) -> None:
    client = control_plane.client
    for name, kind in (("web", "ClusterIP"), ("edge", "NodePort")):
        client.create(
            Service(
                metadata=ObjectMeta(name=name, namespace=namespace),
                spec=ServiceSpec(type=kind, ports=[ServicePort(port=80, protocol="TCP")]),
            )
        )
        client.create(
            EndpointSlice(
                metadata=ObjectMeta(name=f"{name}-1", namespace=namespace, labels={"kubernetes.io/service-name": name}),
                addressType="IPv4",
                endpoints=[Endpoint(addresses=["10.244.2.5"]), Endpoint(addresses=["10.244.3.7"])],
                ports=[EndpointPort(port=8080, protocol="TCP", name="")],
            )
        )


def iptables_all(lab: NetnsLab) -> str:
    node = lab.nodes[0]
    return "".join(
        lab.run(node, [s], check=False).stdout
        for s in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save")
    )


def kube_proxy_nft(lab: NetnsLab) -> str:
    return lab.run(lab.nodes[0], ["nft", "list", "ruleset"]).stdout


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_clean_and_restore_calico_and_real_kube_proxy(
    lab: NetnsLab, control_plane: ControlPlane, admin_kubeconfig: object, test_namespace: str, mode: str
) -> None:
    node = lab.nodes[0]
    host_state(lab, node)
    kubelet_chains(lab, node)
    baseline = node_snapshot(lab, node)

    # Real kube-proxy programs the Services of the test namespace, then stops (as when its DaemonSet is deleted
    # during a migration: its rules stay behind).
    make_services(control_plane, test_namespace)
    proxy = lab.start_kube_proxy(node, control_plane.admin_kubeconfig, mode=mode)
    if mode == "iptables":
        wait_until(lambda: iptables_all(lab).count("KUBE-SEP-") >= 4, 90, "kube-proxy's KUBE-SEP chains")
    else:
        # both families: kube-proxy syncs them one after the other (a loaded machine showed the ip table alone)
        wait_until(
            lambda: (t := kube_proxy_nft(lab)).count("chain endpoint-") >= 4 and "table ip6 kube-proxy" in t,
            90,
            "kube-proxy's endpoint chains in both families",
        )
    lab.terminate(proxy)
    rules = iptables_all(lab)
    if mode == "iptables":
        assert "KUBE-SVC-" in rules and "KUBE-NODEPORTS" in rules and "KUBE-POSTROUTING" in rules
    else:
        assert "table ip kube-proxy" in kube_proxy_nft(lab) and "table ip6 kube-proxy" in kube_proxy_nft(lab)
    calico_state(lab, node, backend="legacy")
    ran = [f"kube-proxy {mode} mode", "iptables-nft + iptables-legacy (Calico)", "ipset", "vxlan.calico"]
    absent = [k for k in ("ipip", "wireguard") if not kernel_has(lab, k)]
    if not lab.run(node, ["test", "-e", "/proc/net/ip_vs"], check=False).returncode:
        ran.append("(ip_vs present, IPVS mode not run by this test)")
    else:
        absent.append("ip_vs")
    print(f"paths ran: {', '.join(ran)}; kernel lacks: {', '.join(absent) or 'nothing'} (those paths not run)")
    with_cni = node_snapshot(lab, node)

    inspected = agent(lab, 0, "inspect")
    assert inspected.ok, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["found"]["counts"]["calico"] > 20
    assert report["found"]["counts"]["kube-proxy"] > (10 if mode == "iptables" else 1)
    assert report["found"]["counts"]["flannel"] == 0

    dry = agent(lab, 0, "clean", "--old-cni", "calico", "--kube-proxy", "--dry-run")
    assert dry.ok, dry.stderr
    assert json.loads(dry.stdout)["changes"]
    assert snapshot_diff(with_cni, node_snapshot(lab, node)) == []  # a dry run changes nothing

    t0 = time.monotonic()
    cleaned = agent(lab, 0, "clean", "--old-cni", "calico", "--kube-proxy")
    assert cleaned.ok, cleaned.stderr
    print(f"clean took {time.monotonic() - t0:.1f} s")
    after = node_snapshot(lab, node)
    diff = snapshot_diff(baseline, after)
    assert diff == [], "\n".join(diff)
    # Independent checks, not through the agent.
    rules = iptables_all(lab)
    assert "cali-" not in rules and "KUBE-SVC" not in rules and "KUBE-PROXY-CANARY" not in rules
    assert "kube-proxy" not in lab.run(node, ["nft", "list", "tables"]).stdout
    assert "KUBE-FIREWALL" in rules and "KUBE-KUBELET-CANARY" in rules  # kubelet's stay
    routes = lab.run(node, ["ip", "route", "show", "table", "all"]).stdout
    assert "proto bird" not in routes and "proto 80" not in routes and "10.244." not in routes
    assert "cali" not in lab.run(node, ["ipset", "list", "-n"]).stdout
    assert "vxlan.calico" not in lab.run(node, ["ip", "link"]).stdout
    assert not (node.root / "etc/cni/net.d/10-calico.conflist").exists()
    assert (node.root / "etc/cni/net.d/99-loopback.conf").exists()
    check = agent(lab, 0, "inspect", "--fail-if-found")
    assert check.exit_code == 0, check.stdout

    again = agent(lab, 0, "clean", "--old-cni", "calico", "--kube-proxy")
    assert again.ok and json.loads(again.stdout)["changes"] == []  # idempotent

    restored = agent(lab, 0, "restore")
    assert restored.ok, restored.stderr
    rep = json.loads(restored.stdout)
    assert [x.split(" ")[1] for x in rep["not_restorable"]] == ["cali1a2b3c4d5e6"]
    back = node_snapshot(lab, node)
    # The workload's veth (its peer was in the pod's namespace) and its /32 route are the only difference.
    expected = dict(with_cni.items())
    expected["links"] = {k: v for k, v in with_cni["links"].items() if k != "cali1a2b3c4d5e6"}
    expected["addresses"] = {k: v for k, v in with_cni["addresses"].items() if k != "cali1a2b3c4d5e6"}
    expected["routes4"] = [r for r in with_cni["routes4"] if "cali1a2b3c4d5e6" not in r]
    expected["routes6"] = [r for r in with_cni["routes6"] if "cali1a2b3c4d5e6" not in r]
    expected["fdb"] = [r for r in with_cni["fdb"] if "cali1a2b3c4d5e6" not in r]
    assert snapshot_diff(expected, back) == []
