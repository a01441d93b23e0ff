"""Offline plans end to end, API objects and node state in one run. The executor runs an example's offline plan
against the real control plane, and its node steps go through the real ``local`` transport (the one ``apply
--node-transport local --node-netns NODE=NETNS`` builds, plus a private root per node) into network namespaces named
as the example's Nodes, where real kube-proxy (iptables mode) programmed Services of the same API server and the
old CNI's state is present: Calico's as calico-node writes it (a fixture), Flannel's made by the real flanneld.

After apply: the plan's objects are as it promises, and on every node nothing of the old CNI or kube-proxy is left
(the agent's inspect, and iptables-save/ip/ipset/files read independently) while the node equals its snapshot from
before they existed (the host's INPUT rules, Docker's chains and docker0, a static route, an ipset, an nftables
table, kubelet's chains, another CNI file). After rollback: the objects are the starting ones and every node's
state is the one before clean (modulo counters, and the pod-side links no restore can re-create).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cni_migrate.kube.client import Cluster
from cni_migrate.kube.rest import Rest
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.netns import NetnsLab, NodeNs, node_snapshot, snapshot_diff, wait_until

from .apply_helpers import Events, executor_for, make_plan, replan
from .node_local_support import (
    KUBE_PROXY,
    Container,
    KubeletStandIn,
    calico_state,
    daemonset_nodes,
    inspect_counts,
    iptables_all,
    kernel_paths,
    local_transport,
    make_services,
    node_addresses,
    node_state_fixtures,
    on_nodes,
)
from .support import load_example, object_set

pytestmark = pytest.mark.netns

SERVICES_NS = "node-local-e2e"
FLANNEL_PODS = "k8s-app=kube-flannel-ds"
# The conflist Flannel's DaemonSet installs (kube-flannel.yml, install-cni container), as tests/netns/test_flannel.py.
FLANNEL_CONFLIST = (
    '{"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel", "delegate": '
    '{"hairpinMode": true, "isDefaultGateway": true}}, {"type": "portmap", "capabilities": {"portMappings": true}}]}\n'
)


@dataclass
class OldCni:
    """What differs between the two runs: the example, how its CNI gets onto the nodes, and what of it must be
    gone after clean."""

    name: str
    example: str
    plan_options: dict[str, Any]
    gone_objects: tuple[str, ...]  # object_set keys apply deletes
    seed: Callable[[NetnsLab, Rest, ControlPlane], list[Container]]  # the processes standing for its pods
    check_gone: Callable[[NetnsLab, NodeNs], None]  # independent of the agent
    unrestorable: tuple[str, ...]  # links a restore cannot re-create as they were (compared apart)
    paths: str  # what of it this run exercises, for the test's output


def _kube_proxy_cidr(rest: Rest) -> str:
    """clusterCIDR of the kube-proxy ConfigMap, which the DaemonSet's kube-proxy would run with."""
    cm = rest.get("v1", "ConfigMap", "kube-proxy", "kube-system") or {}
    return str(yaml.safe_load((cm.get("data") or {})["config.conf"])["clusterCIDR"])


def _cilium_objects(rest: Rest) -> set[str]:
    return {
        f"{kind}/{name}"
        for api, kind, name in (
            ("apps/v1", "DaemonSet", "cilium"),
            ("apps/v1", "Deployment", "cilium-operator"),
            ("v1", "ConfigMap", "cilium-config"),
        )
        if rest.get(api, kind, name, "kube-system") is not None
    }


def _without(snap: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = dict(snap)
    for key in ("links", "addresses"):
        out[key] = {k: v for k, v in snap[key].items() if k not in names}
    for key in ("routes4", "routes6", "fdb"):
        out[key] = [r for r in snap[key] if not any(n in r for n in names)]
    return out


# --- Calico ------------------------------------------------------------------------------------------------------


def _seed_calico(lab: NetnsLab, rest: Rest, cp: ControlPlane) -> list[Container]:
    for i, node in enumerate(lab.nodes):
        calico_state(lab, node, i, backend="legacy")
    return []  # no process: Felix and BIRD cannot be built here (tests/netns/node_state.py)


def _calico_gone(lab: NetnsLab, node: NodeNs) -> None:
    rules = iptables_all(lab, node)
    assert "cali-" not in rules and "cali:" not in rules, node.name
    routes = lab.run(node, ["ip", "route", "show", "table", "all"]).stdout
    assert "proto bird" not in routes and "proto 80" not in routes and "blackhole" not in routes, routes
    links = lab.run(node, ["ip", "-o", "link"]).stdout
    assert "cali" not in links and "vxlan.calico" not in links, links
    assert "cali" not in lab.run(node, ["ipset", "list", "-n"]).stdout
    assert not (node.root / "var/lib/calico").exists()


CALICO = OldCni(
    name="calico",
    example="calico-bgp-lossy",
    plan_options={"strategy": "offline", "bgp": "cilium"},
    gone_objects=(
        "apps/DaemonSet/kube-system/calico-node",
        "apps/DaemonSet/kube-system/kube-proxy",
        "/ConfigMap/kube-system/kube-proxy",
        "apiextensions.k8s.io/CustomResourceDefinition//ippools.crd.projectcalico.org",
    ),
    seed=_seed_calico,
    check_gone=_calico_gone,
    # the workload's veth: its peer was in the pod's namespace (the agent lists it under "not restorable")
    unrestorable=("cali1a2b3c4d5e6",),
    paths="Calico's fixture state on every node (chains in iptables-legacy, ipsets, vxlan.calico, proto bird/80 and"
    " blackhole routes, a workload veth)",
)


# --- Flannel -----------------------------------------------------------------------------------------------------


def _ping(lab: NetnsLab, pod_ns: str, dst: str) -> bool:
    return lab.run_in(pod_ns, ["ping", "-c", "1", "-W", "1", dst], check=False).returncode == 0


def _seed_flannel(lab: NetnsLab, rest: Rest, cp: ControlPlane) -> list[Container]:
    """Real flanneld (kube subnet manager, vxlan, the example's net-conf) where its DaemonSet placed a pod; cni0 and
    a pod per node as the bridge CNI plugin makes them from Flannel's subnet.env; a pod-to-pod ping over VXLAN."""
    cm = rest.get("v1", "ConfigMap", "kube-flannel-cfg", "kube-flannel") or {}
    net_conf = json.loads((cm.get("data") or {})["net-conf.json"])
    placed = daemonset_nodes(rest, "kube-flannel", "kube-flannel-ds", FLANNEL_PODS)
    assert placed == {n.name for n in lab.nodes}, placed  # the ping needs Flannel on every node
    out = []
    for node in lab.nodes:
        proc = lab.start_flannel(
            node, cp.admin_kubeconfig, network=net_conf["Network"], backend=net_conf["Backend"]["Type"]
        )
        out.append(Container(node.name, FLANNEL_PODS, proc, namespace="kube-flannel"))
    pods, subnets = [], []
    for i, node in enumerate(lab.nodes, start=1):
        env = node.root / "run/flannel/subnet.env"
        wait_until(lambda env=env: env.exists() and "FLANNEL_SUBNET" in env.read_text(), 60, f"{node.name} subnet.env")
        gw_cidr = next(x.split("=", 1)[1] for x in env.read_text().split() if x.startswith("FLANNEL_SUBNET="))
        gw, prefix = gw_cidr.split("/")
        subnets.append(gw.rsplit(".", 1)[0])
        lab.sh(node, f"ip link add cni0 type bridge && ip addr add {gw_cidr} dev cni0 && ip link set cni0 up")
        pod_ip = gw.rsplit(".", 1)[0] + ".2"
        pods.append(
            lab.add_pod(node, f"pod{i}", pod_ip, gw, host_if=f"veth{i}pod", bridge="cni0", prefixlen=int(prefix))
        )
        (node.root / "etc/cni/net.d/10-flannel.conflist").write_text(FLANNEL_CONFLIST)
    for node, own in zip(lab.nodes, subnets, strict=True):
        others = [f"{s}.0/24 via {s}.0 dev flannel.1 onlink" for s in subnets if s != own]
        wait_until(
            lambda n=node, o=others: all(x in lab.run(n, ["ip", "route"]).stdout for x in o),  # type: ignore[misc]
            60,
            f"{node.name} Flannel's VXLAN routes",
        )
    assert wait_until(lambda: _ping(lab, pods[0], f"{subnets[1]}.2"), 30, "pod-to-pod ping over Flannel's VXLAN")
    print(f"ping {subnets[0]}.2 -> {subnets[1]}.2 over Flannel's VXLAN: ok")
    return out


def _flannel_gone(lab: NetnsLab, node: NodeNs) -> None:
    assert "FLANNEL" not in iptables_all(lab, node), node.name
    links = lab.run(node, ["ip", "-o", "link"]).stdout
    assert "flannel" not in links and "cni0" not in links and "pod@" not in links, links
    routes = lab.run(node, ["ip", "route", "show", "table", "all"]).stdout
    assert "10.243." not in routes, routes
    assert not (node.root / "run/flannel").exists()


FLANNEL = OldCni(
    name="flannel",
    example="flannel-graceful",
    plan_options={"strategy": "offline"},
    gone_objects=(
        "apps/DaemonSet/kube-flannel/kube-flannel-ds",
        "apps/DaemonSet/kube-system/kube-proxy",
        "/ConfigMap/kube-system/kube-proxy",
    ),
    seed=_seed_flannel,
    check_gone=_flannel_gone,
    # the pods' veths (peers in the pods' namespaces) cannot come back; cni0 does (bridge, MAC, address) but without
    # a port it has no carrier, hence no IPv6 link-local address, "linkdown" routes, fewer FDB entries, until the
    # pods are re-created: compared apart (see test_flannel.py)
    unrestorable=("cni0", "veth1pod", "veth2pod", "veth3pod"),
    paths="real flanneld v0.28 (vxlan) on every node (flannel.1, its routes, neighbours and FDB, FLANNEL-* chains in"
    " iptables-nft, /run/flannel), cni0 and a pod per node, a pod-to-pod ping over its VXLAN",
)


# --- the run ------------------------------------------------------------------------------------------------------


def _offline_end_to_end(cp: ControlPlane, tmp_path: Path, old: OldCni) -> None:
    t_start = time.monotonic()
    out = tmp_path / "plan"
    plan = make_plan(old.example, out, **old.plan_options)
    cluster = load_example(cp, old.example, plan)
    rest = cluster.rest()
    make_services(rest, SERVICES_NS)
    hosts = node_addresses(rest)
    fx = node_state_fixtures()
    kubelet: KubeletStandIn | None = None
    lab = NetnsLab(f"e2e{old.name[:3]}", nodes=len(hosts), names=[n for n, _ in hosts], ips=[ip for _, ip in hosts])
    try:
        with lab:
            lab.forward_api(cp.apiserver_port)
            transport = local_transport(lab)
            for node in lab.nodes:
                fx.host_state(lab, node)
                fx.kubelet_chains(lab, node)
            baseline = on_nodes(lab, lambda n: node_snapshot(lab, n))  # before the old CNI and kube-proxy existed

            containers = old.seed(lab, rest, cp)
            # Real kube-proxy where its DaemonSet placed a pod, with the cluster CIDR of its ConfigMap, programming
            # this API server's Services. (The example's DaemonSets carry no tolerations: on the Calico example
            # their pods are on the three workers only, so its control-plane nodes get no kube-proxy.)
            proxied = daemonset_nodes(rest, "kube-system", "kube-proxy", KUBE_PROXY)
            cidr = _kube_proxy_cidr(rest)
            for node in lab.nodes:
                if node.name in proxied:
                    proc = lab.start_kube_proxy(node, cp.admin_kubeconfig, cluster_cidr=cidr)
                    containers.append(Container(node.name, KUBE_PROXY, proc))
            for node in lab.nodes:
                if node.name in proxied:
                    wait_until(
                        lambda node=node: iptables_all(lab, node).count(":KUBE-SEP-") >= 4,  # type: ignore[misc]
                        120,
                        f"kube-proxy's KUBE-SEP chains on {node.name}",
                    )
            present, absent = kernel_paths(lab)
            print(
                f"paths ran: kube-proxy iptables mode (rules in iptables-nft, IPv4 and IPv6) on {len(proxied)} of"
                f" {len(lab.nodes)} nodes; {old.paths}; the plan's node steps and the agent through the local"
                f" transport with private roots; kernel has: {', '.join(present) or 'none of ipip, wireguard, ip_vs'}"
                f"; kernel lacks: {', '.join(absent) or '-'} (so tunl0, WireGuard links and IPVS are not tested)"
            )
            # The plan is made from the cluster as it now is (flanneld annotated its Nodes), as an SRE runs it.
            plan = replan(cluster, out, **old.plan_options)
            assert sorted({n for s in plan.steps() for n in s.nodes}) == [n for n, _ in hosts]
            node_dir = f"/var/backups/cni-migrate/{plan.id}"  # the plan's node backup directory, on each node
            before = object_set(rest)
            for name, counts in on_nodes(lab, lambda n: inspect_counts(transport, n)).items():
                assert counts[old.name] > 5 and (counts["kube-proxy"] > 10) == (name in proxied), (name, counts)
                assert sum(v for k, v in counts.items() if k not in (old.name, "kube-proxy")) == 0, (name, counts)
            at_backup = on_nodes(lab, lambda n: node_snapshot(lab, n))

            # kube-proxy (and flanneld) have to stop before the nodes are cleaned, or they write their state again
            # (a running kube-proxy re-created its chains about 25 s after a clean here). On a real node the kubelet
            # stops them when the plan deletes their DaemonSets (the garbage collector deletes the pods, the kubelet
            # kills their containers); here the stand-in kubelet does exactly that, reacting only to the pods'
            # deletion. remove-kube-proxy deletes with background propagation and waits for the DaemonSet object,
            # not its pods, so on a real cluster clean-nodes can start while kube-proxy is still being stopped. To
            # test the node work rather than that race, the run stops after remove-kube-proxy (`apply --until
            # remove-kube-proxy`), the test waits until the stand-in kubelet has stopped everything, and the run
            # resumes (`apply --resume`), as an SRE would.
            kubelet = KubeletStandIn(rest, lab, containers)
            kubelet.start()
            first = executor_for(cp, out, transport, Events(), cluster, until="remove-kube-proxy").apply()  # type: ignore[arg-type]
            assert first.ok and first.as_requested, first.message
            try:
                wait_until(kubelet.all_stopped, 60, "the stand-in kubelet to stop the old CNI and kube-proxy")
            finally:
                assert not kubelet.errors, kubelet.errors
                assert not kubelet.running(), kubelet.running()
            assert all(c.proc.poll() is not None for c in containers)
            print("stopped by the stand-in kubelet: " + ", ".join(f"{c.selector} ({c.stopped})" for c in containers))
            pre_clean = on_nodes(lab, lambda n: node_snapshot(lab, n))
            for node in lab.nodes:  # the plan's node backup saved the state clean-nodes starts from
                diff = snapshot_diff(at_backup[node.name], pre_clean[node.name])
                assert diff == [], f"{node.name} changed between backup-nodes and clean-nodes:\n" + "\n".join(diff)
                assert (node.root / node_dir.lstrip("/") / "iptables.rules").is_file()

            t_clean = time.monotonic()
            events = Events()
            summary = executor_for(cp, out, transport, events, cluster, resume=True).apply()  # type: ignore[arg-type]
            assert summary.state == "succeeded", summary.message
            print(f"apply --resume (clean-nodes to the end) took {time.monotonic() - t_clean:.1f} s")
            clean = [e for e in events.of("action-done") if e.get("step") == "clean-nodes"]
            assert clean and "through the local transport" in str(clean), clean

            # The API side, as the plan promises.
            assert _cilium_objects(rest) == {
                "DaemonSet/cilium",
                "Deployment/cilium-operator",
                "ConfigMap/cilium-config",
            }
            after_objects = object_set(rest)
            for gone in old.gone_objects:
                assert before.get(gone) is not None and gone not in after_objects, gone
            assert {n["metadata"]["name"] for n in rest.list("v1", "Node")} == {n.name for n in lab.nodes}

            # The nodes: nothing of the old CNI or kube-proxy, by the agent and independently; the rest as before.
            after_counts = on_nodes(lab, lambda n: inspect_counts(transport, n, fail_if_found=True))
            after = on_nodes(lab, lambda n: node_snapshot(lab, n))
            for node in lab.nodes:
                counts = after_counts[node.name]
                assert counts == dict.fromkeys(counts, 0), (node.name, counts)
                old.check_gone(lab, node)
                rules = iptables_all(lab, node)
                for owned in (":KUBE-SVC-", ":KUBE-SEP-", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY", "KUBE-POSTROUTING"):
                    assert owned not in rules, (node.name, owned)
                assert "KUBE-FIREWALL" in rules and "KUBE-KUBELET-CANARY" in rules  # kubelet's stay
                assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in rules and ":DOCKER-USER" in rules
                routes = lab.run(node, ["ip", "route", "show", "table", "all"]).stdout
                assert "10.99.0.0/16 via 192.168.77.1 dev eth0 onlink" in routes
                assert "docker0" in lab.run(node, ["ip", "-o", "link"]).stdout
                cni = sorted(p.name for p in (node.root / "etc/cni/net.d").iterdir())
                assert cni == ["99-loopback.conf"], cni
                diff = snapshot_diff(baseline[node.name], after[node.name])
                assert diff == [], f"{node.name}:\n" + "\n".join(diff)
                assert (node.root / node_dir.lstrip("/") / "agent").is_dir()  # the agent made the clean
            # the private roots kept every node path off this machine
            assert not Path(node_dir).exists() and not Path("/run/flannel/subnet.env").exists()

            # Rollback: the starting objects; each node as before clean (the agent's restore, then the plan's own
            # restore of the saved iptables-save rules, CNI files and state directories).
            rb = executor_for(cp, out, transport, Events(), cluster).rollback()  # type: ignore[arg-type]
            assert rb.state == "rolled-back", rb.message
            restored = object_set(rest)
            assert set(restored) == set(before), (
                sorted(set(restored) - set(before)),
                sorted(set(before) - set(restored)),
            )
            for k in before:
                assert restored[k] == before[k], k
            restored_nodes = on_nodes(lab, lambda n: node_snapshot(lab, n))
            for node in lab.nodes:
                back = restored_nodes[node.name]
                diff = snapshot_diff(_without(pre_clean[node.name], old.unrestorable), _without(back, old.unrestorable))
                assert diff == [], f"{node.name}:\n" + "\n".join(diff)
                for name in old.unrestorable:  # a recreatable kind comes back with its MAC and addresses
                    was = pre_clean[node.name]["links"].get(name)
                    if was is not None and was.get("linkinfo", {}).get("info_kind") == "bridge":
                        now = back["links"].get(name) or {}
                        assert now.get("address") == was["address"], (node.name, name, now)
                        v4 = [a for a in back["addresses"][name] if a.get("family") == "inet"]
                        assert v4 == [a for a in pre_clean[node.name]["addresses"][name] if a.get("family") == "inet"]
    finally:
        if kubelet is not None:
            kubelet.close()
        Cluster.close(cluster)
    assert lab.leftovers() == []
    print(f"{old.name}: test took {time.monotonic() - t_start:.1f} s")


def test_calico_offline_plan_cleans_and_restores_node_state_through_the_local_transport(
    fresh_control_plane: ControlPlane, tmp_path: Path
) -> None:
    _offline_end_to_end(fresh_control_plane, tmp_path, CALICO)


def test_flannel_offline_plan_cleans_and_restores_node_state_through_the_local_transport(
    fresh_control_plane: ControlPlane, tmp_path: Path
) -> None:
    _offline_end_to_end(fresh_control_plane, tmp_path, FLANNEL)
