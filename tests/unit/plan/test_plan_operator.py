"""The tigera-operator example (multi-pool, route reflectors, policies, a blocking PDB): uninstalling Calico the
way it was installed, stuck finalizers, the rolling strategy's Calico preparations, and BGP translation."""

from __future__ import annotations

from plan_helpers import actions, index, make_plan, manifest, values

from cni_migrate.analysis.plan.model import (
    AnnotateNodes,
    Backup,
    DeleteObjects,
    ManualGate,
    ObjectCheck,
    PatchObject,
    RemoveFinalizers,
    WaitFor,
)
from cni_migrate.facts import ClusterFacts


def test_operator_uninstall_order(multipool: ClusterFacts) -> None:
    """Delete the Installation while tigera-operator runs, then the operator and its namespaces, then clear the
    finalizers left stuck (objects the namespace deletion leaves terminating are only stuck after it), then CRDs."""
    p = make_plan(multipool, "offline")
    i_inst = index(p, "uninstall-calico-operator-resources")
    step = p.step("uninstall-calico-operator-resources")
    deleted = [o.key() for a in step.actions if isinstance(a, DeleteObjects) for o in a.objects]
    assert "operator.tigera.io/Installation//default" in deleted
    pre = [c for c in step.preconditions if isinstance(c, ObjectCheck)]
    assert pre[0].target.name == "tigera-operator"  # the operator must still run
    i_fin = index(p, "clear-stuck-finalizers")
    i_op = index(p, "delete-old-cni")
    assert i_inst < i_op < i_fin < index(p, "delete-old-cni-crds")
    # a stuck operator leaves the Installation terminating: the uninstall step succeeds on the workloads being gone
    assert not [c for c in step.success if isinstance(c, ObjectCheck) and c.target.kind == "Installation"]
    clear = p.step("clear-stuck-finalizers")
    waits = [a.target.key() for a in clear.actions if isinstance(a, WaitFor)]
    assert "/Namespace//calico-system" in waits
    op_deleted = {o.key() for _, s, a in actions(p, DeleteObjects) if s.id == "delete-old-cni" for o in a.objects}
    assert "apps/Deployment/tigera-operator/tigera-operator" in op_deleted


def test_stuck_finalizers_handled_and_backed_up(multipool: ClusterFacts) -> None:
    p = make_plan(multipool, "offline")
    fins = [(i, a) for i, _, a in actions(p, RemoveFinalizers)]
    targets = {a.target.key(): a.finalizers for _, a in fins}
    assert targets["/ServiceAccount/calico-system/calico-node"] == ["tigera.io/cni-protector"]
    assert targets["operator.tigera.io/Installation//default"] == ["tigera.io/operator-cleanup"]  # from the facts
    backups = [(i, a) for i, _, a in actions(p, Backup)]
    for i, a in fins:
        assert any(j < i and b.covers(a.target) for j, b in backups), a.target.text()
        assert a.after_seconds >= 120  # only what is still terminating after a grace time


def test_rolling_pins_autodetection_before_cilium(multipool: ClusterFacts) -> None:
    """Calico's firstFound would pick cilium_host: patch the Installation before Cilium is installed."""
    p = make_plan(multipool, "rolling")
    (i, _, patch), *_ = actions(p, PatchObject)
    assert patch.target.key() == "operator.tigera.io/Installation//default" and patch.patch_type == "merge"
    assert patch.patch == {
        "spec": {"calicoNetwork": {"nodeAddressAutodetectionV4": {"firstFound": False, "kubernetes": "NodeInternalIP"}}}
    }
    assert i < index(p, "install-cilium")


def test_rolling_allows_all_in_calico_while_both_run(multipool: ClusterFacts) -> None:
    """Calico enforces policies (3 NetworkPolicies, 2 GlobalNetworkPolicies): an allow-all GNP meanwhile."""
    p = make_plan(multipool, "rolling")
    (gnp,) = manifest(p, "manifests/calico-allow-all.yaml")
    assert gnp["kind"] == "GlobalNetworkPolicy" and gnp["spec"]["selector"] == "all()"
    assert gnp["spec"]["ingress"] == [{"action": "Allow"}] and gnp["spec"]["egress"] == [{"action": "Allow"}]
    assert index(p, "calico-allow-all") < index(p, "install-cilium")
    assert values(p, "values/10-migration.yaml")["policyEnforcementMode"] == "never"


def test_blocking_pdbs_listed_up_front(multipool: ClusterFacts) -> None:
    p = make_plan(multipool, "rolling")
    assert p.blocking_pdbs == ["data/zk (disruptions allowed: 0)"]
    gate = p.step("blocking-pdbs")
    assert isinstance(gate.actions[0], ManualGate) and gate.actions[0].details == p.blocking_pdbs
    assert index(p, "blocking-pdbs") < min(i for i, s in enumerate(p.steps()) if s.id.startswith("migrate-"))


def test_workers_first_control_plane_last(multipool: ClusterFacts) -> None:
    p = make_plan(multipool, "rolling", batch_size=2)
    batches = [s.nodes for s in p.steps() if s.id.startswith("migrate-")]
    assert batches == [
        ["edge-1", "gpu-r2-1"],
        ["worker-r1-1", "worker-r1-2"],
        ["worker-r2-1"],
        ["cp-1"],
        ["cp-2"],
        ["cp-3"],
    ]


def test_cilium_bgp_translation_without_route_reflectors(multipool: ClusterFacts) -> None:
    """Route reflectors have no Cilium equivalent: the ToR peers apply to the whole rack, per-rack configs."""
    p = make_plan(multipool, "offline")
    objs = manifest(p, "manifests/cilium-bgp.yaml")
    configs = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "CiliumBGPClusterConfig"}
    assert configs["cni-migrate-tor-r1"]["nodeSelector"] == {"matchLabels": {"rack": "r1"}}
    assert configs["cni-migrate-tor-r2"]["nodeSelector"] == {"matchLabels": {"rack": "r2"}}
    peers = configs["cni-migrate-tor-r1"]["bgpInstances"][0]["peers"]
    assert [(x["peerAddress"], x["peerASN"]) for x in peers] == [("10.70.1.1", 65001)]
    assert any("route reflectors" in w for w in p.warnings)
    assert any("peer-with-route-reflectors" in w for w in p.warnings)


def test_kube_router_keeps_route_reflectors(multipool: ClusterFacts) -> None:
    """kube-router reproduces Calico's topology: route reflectors and node-scoped peers as node annotations."""
    nodes = [
        n.model_copy(update={"pod_cidr": f"10.60.{i}.0/24", "pod_cidrs": [f"10.60.{i}.0/24"]})
        for i, n in enumerate(multipool.nodes)
    ]
    facts = multipool.model_copy(update={"nodes": nodes})
    p = make_plan(facts, "offline", ipam="kubernetes", bgp="kube-router")
    ann = next(a for _, _, a in actions(p, AnnotateNodes)).annotations
    assert ann["cp-1"]["kube-router.io/rr.server"] == "244.0.0.1"
    assert ann["worker-r1-1"]["kube-router.io/rr.client"] == "244.0.0.1"
    rr_r1 = [
        n.name for n in multipool.nodes if n.labels.get("route-reflector") == "true" and n.labels.get("rack") == "r1"
    ]
    assert rr_r1
    for name in rr_r1:
        assert ann[name]["kube-router.io/peer.ips"] == "10.70.1.1"
        assert ann[name]["kube-router.io/peer.asns"] == "65001"
    ds = next(o for o in manifest(p, "manifests/kube-router.yaml") if o["kind"] == "DaemonSet")
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--nodes-full-mesh=false" in args and "--cluster-asn=64512" in args
    assert not any(a.startswith("--peer-router-ips") for a in args)  # no global peer
    # annotations are added before kube-router starts, and removed by its rollback
    assert index(p, "bgp") > index(p, "install-cilium")
