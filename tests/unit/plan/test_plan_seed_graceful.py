"""Seed 003 (Flannel -> Cilium, graceful) and Cilium's per-node migration guide, checked against the plan for the
bundled flannel-graceful example, step by step."""

from __future__ import annotations

import ipaddress

import pytest
from plan_helpers import actions, get, index, make_plan, manifest, values

from cni_migrate.analysis.plan import Plan
from cni_migrate.analysis.plan.model import (
    CordonNodes,
    DeleteObjects,
    EvictPods,
    FactCheck,
    HelmRelease,
    LabelNodes,
    ManualGate,
    RestartPods,
    RolloutRestart,
    UncordonNodes,
    Verify,
)
from cni_migrate.facts import ClusterFacts


@pytest.fixture(scope="module", params=["1.14.12", "1.16.5", "1.18.2"])
def plan(request: pytest.FixtureRequest, flannel: ClusterFacts) -> Plan:
    return make_plan(flannel, "rolling", request.param, hubble=False)


def test_mixed_cluster_conditions_checked_up_front(plan: Plan) -> None:
    """Seed: different IPAM, distinct networks, the node as gateway, VXLAN on one CNI only."""
    facts = [c for c in plan.step("preflight").preconditions if isinstance(c, FactCheck)]
    descriptions = " | ".join(c.description for c in facts)
    for needle in ("different IPAM", "distinct CIDRs", "gateway", "one VXLAN"):
        assert needle in descriptions
    assert all(c.result == "pass" for c in facts)


def test_values_like_the_seed(plan: Plan) -> None:
    """Seed: tunnel geneve (Flannel owns VXLAN), cluster-pool IPAM on a distinct CIDR, Hubble off; the guide's
    migration values on top."""
    v = values(plan, "values/10-migration.yaml")
    assert v["routingMode"] == "tunnel" and v["tunnelProtocol"] == "geneve"
    assert get(v, "ipam.mode") == "cluster-pool"
    (cidr,) = get(v, "ipam.operator.clusterPoolIPv4PodCIDRList")
    net = ipaddress.ip_network(cidr)
    for taken in ("10.243.0.0/16", "10.96.0.0/12"):
        assert not net.overlaps(ipaddress.ip_network(taken))
    assert get(v, "hubble.enabled") is False
    assert v["enableIPv4Masquerade"] is True  # Flannel runs with --ip-masq
    guide = {
        "cni.customConf": True,
        "cni.uninstall": False,
        "policyEnforcementMode": "never",
        "bpf.hostLegacyRouting": True,
        "operator.unmanagedPodWatcher.restart": False,
    }
    for key, want in guide.items():
        assert get(v, key) == want, key
    assert v["kubeProxyReplacement"] is False  # kube-proxy stays during the migration


def test_cilium_installed_without_restarting_pods(plan: Plan) -> None:
    """Seed: `helm template | kubectl apply`, so pods keep their Flannel addresses until each is restarted."""
    helms = [a for _, _, a in actions(plan, HelmRelease)]
    assert helms[0].values_file == "values/10-migration.yaml"
    assert not any(a.unmanaged_only for _, _, a in actions(plan, RestartPods))


def test_node_config_as_in_the_guide(plan: Plan) -> None:
    (cnc,) = manifest(plan, "manifests/ciliumnodeconfig-cilium-default.yaml")
    want_api = "cilium.io/v2" if plan.inputs.cilium_version >= "1.16" else "cilium.io/v2alpha1"
    assert cnc["apiVersion"] == want_api and cnc["metadata"] == {"name": "cilium-default", "namespace": "kube-system"}
    assert cnc["spec"] == {
        "nodeSelector": {"matchLabels": {"io.cilium.migration/cilium-default": "true"}},
        "defaults": {
            "write-cni-conf-when-ready": "/host/etc/cni/net.d/05-cilium.conflist",
            "custom-cni-conf": "false",
            "cni-chaining-mode": "none",
            "cni-exclusive": "true",
        },
    }


def test_per_node_loop(plan: Plan) -> None:
    """Guide: cordon, drain, label, delete the node's cilium pod, verify with a pinned pod, uncordon; workers first,
    the control plane last."""
    batches = [s for s in plan.steps() if s.id.startswith("migrate-")]
    assert [s.nodes[0].split(".")[0] for s in batches] == ["node-02", "node-03", "node-01"]  # node-01 is control plane
    for s in batches:
        kinds = [type(a) for a in s.actions]
        order = [CordonNodes, EvictPods, LabelNodes, RestartPods, Verify, UncordonNodes]
        positions = [kinds.index(k) for k in order]
        assert positions == sorted(positions)
        label = next(a for a in s.actions if isinstance(a, LabelNodes))
        assert label.labels == {"io.cilium.migration/cilium-default": "true"}
        restart = next(a for a in s.actions if isinstance(a, RestartPods))
        assert restart.selector == "k8s-app=cilium" and restart.nodes == s.nodes
        verify = next(a for a in s.actions if isinstance(a, Verify))
        assert any(getattr(c, "expect_in_cidr", None) for c in verify.checks)
        assert s.disruption.disruptive and s.disruption.scope == "node"


def test_final_values_restart_and_old_cni_removal(plan: Plan) -> None:
    """Guide: final values, helm upgrade, rollout restart, delete the CiliumNodeConfig, then delete the old CNI
    (seed: `kubectl delete ds -n kube-system kube-flannel-ds`)."""
    v = values(plan, "values/20-final.yaml")
    assert get(v, "cni.customConf") is False and get(v, "policyEnforcementMode") == "default"
    assert get(v, "operator.unmanagedPodWatcher.restart") is True and get(v, "bpf.hostLegacyRouting") is False
    final = plan.step("cilium-final-values")
    assert any(isinstance(a, RolloutRestart) for a in final.actions)
    deleted = {o.key(): i for i, _, a in actions(plan, DeleteObjects) for o in a.objects}
    assert deleted["apps/DaemonSet/kube-flannel/kube-flannel-ds"] > index(plan, "cilium-final-values")
    assert deleted["cilium.io/CiliumNodeConfig/kube-system/cilium-default"] > index(plan, "cilium-final-values")
    last_batch = max(i for i, s in enumerate(plan.steps()) if s.id.startswith("migrate-"))
    assert index(plan, "cilium-final-values") > last_batch


def test_flannel_leftovers_on_nodes(plan: Plan) -> None:
    runs = " ".join(c.run for c in plan.step("clean-nodes").actions[0].commands)  # type: ignore[union-attr]
    assert "flannel\\.1" in runs and "cni0" in runs and "FLANNEL" in runs and "*.cilium_bak" in runs
    assert "KUBE-" not in runs  # kube-proxy stays


def test_no_blocking_pdb_gate_without_blocking_pdbs(plan: Plan) -> None:
    assert not plan.blocking_pdbs
    assert not any(s.id == "blocking-pdbs" for s in plan.steps())
    assert any(isinstance(a, ManualGate) for a in plan.step("review").actions)


def test_batches_and_order_options(flannel: ClusterFacts) -> None:
    p = make_plan(flannel, "rolling", batch_size=2, first_nodes=["node-03.staging.vms.svc.fraction.cluster"])
    batches = [s.nodes for s in p.steps() if s.id.startswith("migrate-")]
    assert [[n.split(".")[0] for n in b] for b in batches] == [["node-03", "node-02"], ["node-01"]]
