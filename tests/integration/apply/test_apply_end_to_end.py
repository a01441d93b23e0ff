"""apply and rollback end to end on the real control plane: the bundled examples loaded into it, the plan run
to completion with the real helm binary (a local chart of Cilium's shape), node steps in sandboxed namespaces, and
the cluster compared object by object before, after and after rollback."""

from __future__ import annotations

from pathlib import Path

from cni_migrate.kube.client import Cluster
from cni_migrate_testbed import ControlPlane

from .apply_helpers import Events, executor_for, make_plan, replan
from .support import NodeSandbox, load_example, object_set, seed_calico_like, seed_flannel_like


def _cilium_objects(rest) -> set[str]:  # type: ignore[no-untyped-def]
    names = set()
    for api, kind, name in (
        ("apps/v1", "DaemonSet", "cilium"),
        ("apps/v1", "Deployment", "cilium-operator"),
        ("v1", "ConfigMap", "cilium-config"),
    ):
        if rest.get(api, kind, name, "kube-system") is not None:
            names.add(f"{kind}/{name}")
    return names


def test_flannel_rolling_runs_to_completion_and_rolls_back(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("flannel-graceful", out, strategy="rolling")
    cluster = load_example(cp, "flannel-graceful", plan)
    plan = replan(cluster, out, strategy="rolling")
    rest = cluster.rest()
    before = object_set(rest)
    nodes = sorted({n for s in plan.steps() for n in s.nodes})
    sandbox = NodeSandbox(tmp_path / "nodes", nodes)
    for i, n in enumerate(nodes):
        seed_flannel_like(sandbox, n, f"10.243.{i}.0/24", i)
    try:
        events = Events()
        summary = executor_for(cp, out, sandbox, events, cluster).apply()
        assert summary.state == "succeeded", summary.message
        assert summary.not_run_checks, "exec checks cannot run on kwok and must be reported as not run"
        assert _cilium_objects(rest) == {"DaemonSet/cilium", "Deployment/cilium-operator", "ConfigMap/cilium-config"}
        ds = rest.get("apps/v1", "DaemonSet", "cilium", "kube-system")
        assert ds is not None and ds["status"]["numberReady"] == len(nodes)
        after = object_set(rest)
        assert "apps/DaemonSet/kube-system/kube-flannel-ds" not in after
        for n in nodes:
            node = rest.get("v1", "Node", n)
            assert node is not None and not node["spec"].get("unschedulable")
        # rollback returns the cluster to the starting objects
        events2 = Events()
        rb = executor_for(cp, out, sandbox, events2, cluster).rollback()
        assert rb.state == "rolled-back", rb.message
        restored = object_set(rest)
        assert set(restored) == set(before), (sorted(set(restored) - set(before)), sorted(set(before) - set(restored)))
        for k in before:
            assert restored[k] == before[k], k
    finally:
        sandbox.close()
        Cluster.close(cluster)


def test_calico_offline_runs_to_completion_and_rolls_back(fresh_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = fresh_control_plane
    out = tmp_path / "plan"
    plan = make_plan("calico-bgp-lossy", out, strategy="offline", bgp="cilium")
    cluster = load_example(cp, "calico-bgp-lossy", plan)
    plan = replan(cluster, out, strategy="offline", bgp="cilium")
    rest = cluster.rest()
    before = object_set(rest)
    nodes = sorted({n for s in plan.steps() for n in s.nodes})
    sandbox = NodeSandbox(tmp_path / "nodes", nodes)
    for i, n in enumerate(nodes):
        seed_calico_like(sandbox, n, f"10.33.{i}.0/26", f"10.33.{(i + 1) % len(nodes)}.0/26")
    try:
        summary = executor_for(cp, out, sandbox, Events(), cluster).apply()
        assert summary.state == "succeeded", summary.message
        assert _cilium_objects(rest) == {"DaemonSet/cilium", "Deployment/cilium-operator", "ConfigMap/cilium-config"}
        after = object_set(rest)
        for gone in (
            "apps/DaemonSet/kube-system/calico-node",
            "apps/DaemonSet/kube-system/kube-proxy",
            "/ConfigMap/kube-system/kube-proxy",
            "apiextensions.k8s.io/CustomResourceDefinition//ippools.crd.projectcalico.org",
        ):
            assert before.get(gone) is not None and gone not in after, gone
        # the nodes' names contain "calico": the sweep by name must never take a Node (or its mirror pods)
        assert {n["metadata"]["name"] for n in rest.list("v1", "Node")} == set(nodes)
        assert rest.list("v1", "Pod", namespace="kube-system", label_selector="component=kube-apiserver")
        # the nodes: the old CNI's state is gone, the host's own firewall chain stays
        for n in nodes:
            r = sandbox.run(n, "ls /etc/cni/net.d; ip route show proto bird; ip -o link; iptables-save", timeout=30)
            assert r.ok, r.stderr
            assert "calico" not in r.stdout.split("\n")[0] and "proto bird" not in r.stdout
            assert "cali1a2b3c4d5e6" not in r.stdout and "cali-INPUT" not in r.stdout
            assert "HOST-OWN" in r.stdout
        rb = executor_for(cp, out, sandbox, Events(), cluster).rollback()
        assert rb.state == "rolled-back", rb.message
        restored = object_set(rest)
        assert set(restored) == set(before), (sorted(set(restored) - set(before)), sorted(set(before) - set(restored)))
        for k in before:
            assert restored[k] == before[k], k
        r = sandbox.run(nodes[0], "ls /etc/cni/net.d; iptables-save", timeout=30)
        assert "10-calico.conflist" in r.stdout and "cali-INPUT" in r.stdout, r.stdout
    finally:
        sandbox.close()
