"""The offline plan end to end, API objects and node state in one run: the executor runs the Calico lossy example's
offline plan against the real control plane, and its node steps go through the real ``local`` transport (the one
``apply --node-transport local --node-netns NODE=NETNS`` builds, plus a private root per node) into network
namespaces where real kube-proxy (iptables mode) programmed Services of the same API server and Calico's state is
present as calico-node writes it. After apply: the plan's objects are as it promises, and on every node nothing of
Calico or kube-proxy is left (the agent's inspect and independent iptables-save/ip/ipset output) while the host's
own state is byte-identical to before they existed. After rollback: the objects are the starting ones and every
node's state is the one the plan's node backup saved (modulo counters).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cni_migrate.kube.client import Cluster
from cni_migrate.kube.rest import Rest
from cni_migrate_testbed import ControlPlane
from cni_migrate_testbed.netns import NetnsLab, node_snapshot, snapshot_diff, wait_until

from .apply_helpers import Events, executor_for, make_plan, replan
from .node_local_support import (
    KUBE_PROXY,
    Container,
    KubeletStandIn,
    calico_state,
    inspect_counts,
    iptables_all,
    kernel_paths,
    kube_proxy_nodes,
    local_transport,
    make_services,
    node_addresses,
    node_state_fixtures,
)
from .support import load_example, object_set

pytestmark = pytest.mark.netns

SERVICES_NS = "node-local-e2e"
PENDING_RACE = "restart-unmanaged-pods: success check failed: no pod is left without an address"
WORKLOAD_VETH = "cali1a2b3c4d5e6"  # its peer was in the pod's namespace: restore reports it as not restorable


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


def _without_workload_veth(snap: dict[str, object]) -> dict[str, object]:
    """A snapshot minus the workload's veth (and what hangs off it), which no restore can bring back: its peer was
    in the pod's namespace; the pod's restart re-creates it (the agent lists it under "not restorable")."""
    out = dict(snap)
    for key in ("links", "addresses"):
        out[key] = {k: v for k, v in snap[key].items() if k != WORKLOAD_VETH}  # type: ignore[attr-defined]
    for key in ("routes4", "routes6", "fdb"):
        out[key] = [r for r in snap[key] if WORKLOAD_VETH not in r]  # type: ignore[attr-defined]
    return out


def test_calico_offline_plan_cleans_and_restores_real_node_state_through_the_local_transport(
    fresh_control_plane: ControlPlane, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("calico-bgp-lossy", out, strategy="offline", bgp="cilium")
    cluster = load_example(cp, "calico-bgp-lossy", plan)
    rest = cluster.rest()
    make_services(rest, SERVICES_NS)
    plan = replan(cluster, out, strategy="offline", bgp="cilium")
    node_dir = f"/var/backups/cni-migrate/{plan.id}"  # the plan's node backup directory (on each node)
    before = object_set(rest)
    hosts = node_addresses(rest)
    assert sorted({n for s in plan.steps() for n in s.nodes}) == [n for n, _ in hosts]
    fx = node_state_fixtures()
    kubelet: KubeletStandIn | None = None
    lab = NetnsLab("e2eloc", nodes=len(hosts), names=[n for n, _ in hosts], ips=[ip for _, ip in hosts])
    try:
        with lab:
            lab.forward_api(cp.apiserver_port)
            transport = local_transport(lab)
            baseline = {}
            for node in lab.nodes:
                fx.host_state(lab, node)
                fx.kubelet_chains(lab, node)
                baseline[node.name] = node_snapshot(lab, node)  # before Calico and kube-proxy existed

            # Real kube-proxy where its DaemonSet placed a pod, programming this API server's Services. (The
            # example's DaemonSets carry no tolerations, so on this control plane their pods are on the three
            # workers only; the control-plane nodes get no kube-proxy, and Calico's state on every node.)
            proxied = kube_proxy_nodes(rest)
            procs = {
                n.name: lab.start_kube_proxy(n, cp.admin_kubeconfig, cluster_cidr="10.33.0.0/16")
                for n in lab.nodes
                if n.name in proxied
            }
            assert procs, "no kube-proxy pod on any node"
            for node in lab.nodes:
                if node.name in procs:
                    wait_until(
                        lambda node=node: iptables_all(lab, node).count(":KUBE-SEP-") >= 4,  # type: ignore[misc]
                        120,
                        f"kube-proxy's KUBE-SEP chains on {node.name}",
                    )
            for i, node in enumerate(lab.nodes):
                calico_state(lab, node, i, backend="legacy")
            present, absent = kernel_paths(lab)
            print(
                f"paths ran: kube-proxy iptables mode (its rules in iptables-nft, IPv4 and IPv6) on {len(procs)} of"
                f" {len(lab.nodes)} nodes; Calico's chains in iptables-legacy, ipsets, vxlan.calico, proto bird/80"
                " and blackhole routes, a workload veth; the plan's node steps through the local transport with"
                " private roots; kernel has: "
                f"{', '.join(present) or 'none of ipip, wireguard, ip_vs'}; kernel lacks: {', '.join(absent) or '-'}"
                " (tunl0, WireGuard links and IPVS not made, so not cleaned or restored by this test)"
            )
            for node in lab.nodes:
                counts = inspect_counts(transport, node)
                assert counts["calico"] > 20 and counts["flannel"] == 0, counts
                assert (counts["kube-proxy"] > 10) == (node.name in procs), (node.name, counts)
            # The state the plan's backup step saves: nothing changes on the nodes until then (the steps before it
            # only read the cluster and write backups of its objects).
            at_backup = {n.name: node_snapshot(lab, n) for n in lab.nodes}

            # kube-proxy has to stop before the nodes are cleaned, or it writes its chains again. On a real node
            # the kubelet stops it when the plan's remove-kube-proxy step deletes its DaemonSet (the garbage
            # collector deletes the pods, the kubelet kills their containers); here the stand-in kubelet does
            # exactly that, reacting to the pods' deletion only. The step deletes with background propagation and
            # waits for the DaemonSet object, not for its pods, so on a real cluster clean-nodes can start while
            # kube-proxy is still being stopped. To test the plan's node work rather than that race, the run stops
            # after remove-kube-proxy (`apply --until remove-kube-proxy`), the test waits until the stand-in
            # kubelet has stopped every kube-proxy, and the run resumes (`apply --resume`), as an SRE would.
            kubelet = KubeletStandIn(rest, lab, [Container(n, KUBE_PROXY, p) for n, p in procs.items()])
            kubelet.start()
            first = executor_for(cp, out, transport, Events(), cluster, until="remove-kube-proxy").apply()  # type: ignore[arg-type]
            assert first.ok and first.as_requested, first.message
            wait_until(kubelet.all_stopped, 60, "the stand-in kubelet to stop kube-proxy")
            assert not kubelet.errors, kubelet.errors
            assert all(p.poll() is not None for p in procs.values())
            print(
                "kube-proxy stopped by the stand-in kubelet: "
                + ", ".join(sorted({c.stopped for c in kubelet.containers}))
            )
            pre_clean = {n.name: node_snapshot(lab, n) for n in lab.nodes}
            for node in lab.nodes:  # what the plan's node backup saved is what clean-nodes starts from
                diff = snapshot_diff(at_backup[node.name], pre_clean[node.name])
                assert diff == [], f"{node.name} changed between backup-nodes and clean-nodes:\n" + "\n".join(diff)
            for node in lab.nodes:
                rules = iptables_all(lab, node)
                assert ":cali-INPUT" in rules and (":KUBE-SVC-" in rules) == (node.name in procs)  # rules outlive it
                assert (
                    node.root / f"{node_dir.lstrip('/')}/iptables.rules"
                ).is_file()  # the plan's backup, in the node

            t_clean = time.monotonic()
            events = Events()
            summary = executor_for(cp, out, transport, events, cluster, resume=True).apply()  # type: ignore[arg-type]
            if summary.state == "failed" and PENDING_RACE in summary.message:
                # The step's success check runs once, right after the pods were deleted, so it can see their
                # replacements still Pending (a race of the plan, not of the node work; reported to the lead).
                # An SRE waits for the pods and resumes; so does the test, once.
                print(f"restart-unmanaged-pods saw Pending replacement pods; resuming once: {summary.message}")
                wait_until(lambda: not rest.list("v1", "Pod", field_selector="status.phase=Pending"), 60, "pods")
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
            for gone in (
                "apps/DaemonSet/kube-system/calico-node",
                "apps/DaemonSet/kube-system/kube-proxy",
                "/ConfigMap/kube-system/kube-proxy",
                "apiextensions.k8s.io/CustomResourceDefinition//ippools.crd.projectcalico.org",
            ):
                assert before.get(gone) is not None and gone not in after_objects, gone
            assert {n["metadata"]["name"] for n in rest.list("v1", "Node")} == {n.name for n in lab.nodes}

            # The nodes: nothing of Calico or kube-proxy, by the agent and independently; the rest byte-identical.
            for node in lab.nodes:
                counts = inspect_counts(transport, node, fail_if_found=True)
                assert counts == dict.fromkeys(counts, 0), (node.name, counts)
                rules = iptables_all(lab, node)
                for owned in ("cali-", "cali:", ":KUBE-SVC-", ":KUBE-SEP-", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY"):
                    assert owned not in rules, (node.name, owned)
                assert "KUBE-FIREWALL" in rules and "KUBE-KUBELET-CANARY" in rules  # kubelet's stay
                assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in rules and ":DOCKER-USER" in rules
                routes = lab.run(node, ["ip", "route", "show", "table", "all"]).stdout
                assert "proto bird" not in routes and "proto 80" not in routes and "blackhole" not in routes
                assert "10.99.0.0/16 via 192.168.77.1 dev eth0 onlink" in routes
                links = lab.run(node, ["ip", "-o", "link"]).stdout
                assert "cali" not in links and "vxlan.calico" not in links and "docker0" in links
                assert "cali" not in lab.run(node, ["ipset", "list", "-n"]).stdout
                cni = sorted(p.name for p in (node.root / "etc/cni/net.d").iterdir())
                assert cni == ["99-loopback.conf"], cni
                assert not (node.root / "var/lib/calico").exists()
                diff = snapshot_diff(baseline[node.name], node_snapshot(lab, node))
                assert diff == [], f"{node.name}:\n" + "\n".join(diff)
                assert (node.root / f"{node_dir.lstrip('/')}/agent").is_dir()  # the agent made the clean
            assert not Path(node_dir).exists() and not Path("/etc/cni/net.d/10-calico.conflist").exists()

            # Rollback: the objects are the starting ones; each node's state is the one the plan's node backup saved
            # (the agent's restore, then the plan's own restore of iptables-save's rules and state directories).
            rb = executor_for(cp, out, transport, Events(), cluster).rollback()  # type: ignore[arg-type]
            assert rb.state == "rolled-back", rb.message
            restored = object_set(rest)
            assert set(restored) == set(before), (
                sorted(set(restored) - set(before)),
                sorted(set(before) - set(restored)),
            )
            for k in before:
                assert restored[k] == before[k], k
            for node in lab.nodes:
                back = node_snapshot(lab, node)
                diff = snapshot_diff(_without_workload_veth(pre_clean[node.name]), back)
                assert diff == [], f"{node.name}:\n" + "\n".join(diff)
    finally:
        if kubelet is not None:
            kubelet.close()
        Cluster.close(cluster)
    assert lab.leftovers() == []
    print(f"test took {time.monotonic() - t_start:.1f} s")
