"""Seed 000 (Calico BGP -> Cilium, offline) checked step by step against the bundled example's plan.

Each test names the seed's step it covers. The seed's own choices (Maglev, hybrid DSR, XDP, Hubble UI, no
masquerading, kube-router) are passed as options; everything else comes from the facts.
"""

from __future__ import annotations

import re

import pytest
from plan_helpers import actions, get, index, make_plan, manifest, node_runs, values

from cni_migrate.analysis.plan import Plan
from cni_migrate.analysis.plan.model import (
    AnnotateNodes,
    ApplyObjects,
    Backup,
    CommandCheck,
    DeleteObjects,
    HelmRelease,
    NodePortCheck,
    RestartPods,
)
from cni_migrate.facts import ClusterFacts

SEED_OPTIONS = {
    "bgp": "kube-router",
    "maglev": True,
    "maglev_table_size": 65521,
    "lb_mode": "hybrid",
    "lb_acceleration": "native",
    "hubble_ui": True,
    "masquerade": "false",
    "socket_lb_host_namespace_only": "true",
}


@pytest.fixture(scope="module", params=["1.12.6", "1.16.5"])
def plan(request: pytest.FixtureRequest, lossy: ClusterFacts) -> Plan:
    return make_plan(lossy, "offline", request.param, **SEED_OPTIONS)


def _deleted(plan: Plan) -> list[tuple[int, str]]:
    return [(i, o.key()) for i, _, a in actions(plan, DeleteObjects) for o in a.objects]


def test_uninstall_calico_from_manifests(plan: Plan) -> None:
    """Seed 2: `kubectl delete -f` the manifests Calico was installed from (install method: manifest)."""
    keys = {k for _, k in _deleted(plan)}
    assert "apps/DaemonSet/kube-system/calico-node" in keys
    assert "apps/Deployment/kube-system/calico-kube-controllers" in keys
    assert "apiextensions.k8s.io/CustomResourceDefinition//ippools.crd.projectcalico.org" in keys
    assert not any("tigera-operator" in k for k in keys)  # not an operator install


def test_leftovers_found_by_name(plan: Plan) -> None:
    """Seed 2: look for anything named calico|tigera in every listable kind, namespaced or not, and remove it."""
    sweeps = [(i, a) for i, _, a in actions(plan, DeleteObjects) if a.name_match is not None]
    assert len(sweeps) == 1
    i, sweep = sweeps[0]
    assert sweep.name_match is not None and sweep.name_match.pattern == "calico|tigera"
    backed = [j for j, _, b in actions(plan, Backup) if b.name_match and b.name_match.pattern == "calico|tigera"]
    assert backed and backed[0] < i
    assert i > index(plan, "delete-old-cni")


def test_node_cleanup_matches_the_seed(plan: Plan) -> None:
    """Seed 2: rm /etc/cni/net.d (kept as backups here), flush bird routes, delete cali* links, unload ipip,
    drop cali iptables rules, ipvsadm -C; seed 3.1: drop KUBE rules, ipvsadm -C, delete kube-ipvs0."""
    runs = [r for i, r in node_runs(plan) if i == index(plan, "clean-nodes")]
    text = "\n".join(runs)
    assert "/etc/cni/net.d" in text and "-name '*calico*'" in text and "mv -t" in text
    assert "ip route flush proto bird" in text
    assert re.search(r"cali\[0-9a-f\]\+", text) and "kube-ipvs0" in text and "xargs -r -n1 ip link delete" in text
    assert "modprobe -r ipip" in text
    # not the seed's whole-table rewrite: only the owned chains and the jumps to them (tests/netns checks it)
    assert "$b-save | awk -v own='^(cali-|KUBE-)'" in text and "$b-restore --noflush" in text
    assert "ipvsadm -C" in text


def test_kube_proxy_backed_up_then_removed(plan: Plan) -> None:
    """Seed 3.1: save the kube-proxy DaemonSet and ConfigMap as YAML, delete both (the ConfigMap so that kubeadm
    upgrade does not reinstall kube-proxy)."""
    ds, cm = "apps/DaemonSet/kube-system/kube-proxy", "/ConfigMap/kube-system/kube-proxy"
    backup = index(plan, "backup-kube-proxy")
    b = plan.step("backup-kube-proxy").actions[0]
    assert isinstance(b, Backup) and {o.key() for o in b.objects} == {ds, cm}
    deleted = {k: i for i, k in _deleted(plan)}
    assert deleted[ds] > backup and deleted[cm] > backup


def test_helm_install_with_the_seeds_values(plan: Plan) -> None:
    """Seed 3.2: helm install cilium with the values the seed sets, valid for the chosen version."""
    (_, _, helm), *_ = actions(plan, HelmRelease)
    assert (helm.release, helm.chart, helm.namespace) == ("cilium", "cilium/cilium", "kube-system")
    assert helm.repo_url == "https://helm.cilium.io/"
    assert helm.version == plan.inputs.cilium_version
    v = values(plan, helm.values_file or "")
    old = plan.inputs.cilium_version.startswith("1.12")
    expected = {
        "k8sServiceHost": "10.31.90.0",
        "k8sServicePort": 8443,
        "kubeProxyReplacement": "strict" if old else True,
        "ipam.mode": "kubernetes",
        "ipv4NativeRoutingCIDR": "10.33.0.0/17",
        "bpf.lbExternalClusterIP": True,  # the seed's top-level lbExternalClusterIP is not a chart value
        "enableIPv4Masquerade": False,
        "hubble.relay.enabled": True,
        "hubble.ui.enabled": True,
        "loadBalancer.algorithm": "maglev",
        "maglev.tableSize": 65521,
        "maglev.hashSeed": "c2VlZC1zZWVkLXNl",
        "loadBalancer.mode": "hybrid",
        "socketLB.hostNamespaceOnly": True,
        "loadBalancer.acceleration": "native",
    }
    for key, want in expected.items():
        assert get(v, key) == want, key
    if old:
        assert v["tunnel"] == "disabled" and "routingMode" not in v
    else:
        assert v["routingMode"] == "native" and "tunnel" not in v
    # the seed's ipam.operator.clusterPoolIPv4PodCIDRList is unused with ipam.mode=kubernetes: not emitted
    assert get(v, "ipam.operator.clusterPoolIPv4PodCIDRList") is None


def test_maglev_seed_recorded(plan: Plan) -> None:
    """Seed 3.2: SEED=$(head -c12 /dev/urandom | base64) - here supplied and recorded."""
    assert [(g.name, g.origin) for g in plan.generated] == [("maglev.hashSeed", "supplied")]


def test_kube_router_as_in_the_seed(plan: Plan) -> None:
    """Seed 3.3: kube-router's generic advertise-routes DaemonSet in kube-system with the seed's arguments; the
    peers, their ASNs and the cluster ASN come from Calico's BGPPeers and BGPConfiguration."""
    objs = manifest(plan, "manifests/kube-router.yaml")
    ds = next(o for o in objs if o["kind"] == "DaemonSet")
    assert ds["metadata"]["namespace"] == "kube-system"
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in (
        "--run-router=true",
        "--run-firewall=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-pod-egress=false",
        "--enable-ibgp=true",
        "--enable-overlay=true",
        "--advertise-pod-cidr=true",
        "--advertise-cluster-ip=true",
        "--advertise-loadbalancer-ip=true",
        "--bgp-graceful-restart=true",
        "--cluster-asn=64517",
    ):
        assert flag in args
    # The seed also advertises external IPs; Calico's BGPConfiguration lists no serviceExternalIPs, so the flag
    # is present but follows the fact.
    assert "--advertise-external-ip=false" in args
    ips = next(a for a in args if a.startswith("--peer-router-ips=")).split("=", 1)[1].split(",")
    asns = next(a for a in args if a.startswith("--peer-router-asns=")).split("=", 1)[1].split(",")
    assert dict(zip(ips, asns, strict=True)) == {"10.31.254.253": "64512", "10.31.100.100": "64516"}
    assert not list(actions(plan, AnnotateNodes))  # all peers are global: nothing per node
    assert index(plan, "bgp") > index(plan, "install-cilium")


def test_restart_pods_cilium_does_not_manage(plan: Plan) -> None:
    """Seed 3.2: pods left Pending/Unknown without a CNI get Cilium addresses once Cilium runs."""
    (i, _, restart), *_ = actions(plan, RestartPods)
    assert restart.unmanaged_only and i > index(plan, "install-cilium")


def test_verification_as_in_the_seeds(plan: Plan) -> None:
    """Seed 3.3: cilium status, node list, service list, endpoint list; seed 001: the KubeProxyReplacement mode
    and a NodePort reachable on every node."""
    step = plan.step("verify-nodeport")
    argvs = [" ".join(c.argv) for c in step.success if isinstance(c, CommandCheck)]
    dbg = "cilium" if plan.inputs.cilium_version.startswith("1.12") else "cilium-dbg"
    for sub in ("status", "node list", "service list", "endpoint list"):
        assert any(a.endswith(f"-- {dbg} {sub}") and "exec ds/cilium" in a for a in argvs), sub
    kpr = [c for c in step.success if isinstance(c, CommandCheck) and c.expect and "KubeProxyReplacement" in c.expect]
    assert kpr
    np = [c for c in step.success if isinstance(c, NodePortCheck)]
    assert np and sorted(np[0].addresses.values()) == [f"10.31.90.{i}" for i in range(1, 7)]
    applied = [o["kind"] for _, s, a in actions(plan, ApplyObjects) if s.id == "verify-nodeport" for o in a.objects]
    assert applied == ["Namespace", "Deployment", "Service"]


def test_order_of_the_seed(plan: Plan) -> None:
    """Calico goes, kube-proxy goes, nodes are cleaned, then Cilium, then kube-router, then verification."""
    order = [
        "backup-old-cni",
        "backup-kube-proxy",
        "backup-nodes",
        "delete-old-cni",
        "remove-kube-proxy",
        "clean-nodes",
        "install-cilium",
        "bgp",
        "restart-unmanaged-pods",
        "verify-nodeport",
    ]
    assert [index(plan, s) for s in order] == sorted(index(plan, s) for s in order)


def test_disruption_is_declared(plan: Plan) -> None:
    for sid in ("delete-old-cni", "remove-kube-proxy", "clean-nodes", "install-cilium"):
        d = plan.step(sid).disruption
        assert d.disruptive and d.scope == "cluster" and d.estimate_seconds > 0
    for sid in ("backup-old-cni", "backup-nodes", "preflight"):
        assert not plan.step(sid).disruption.disruptive


def test_every_step_has_a_rollback_and_relies_on_facts(plan: Plan) -> None:
    for s in plan.steps():
        assert s.rollback.description
    assert {f.path for f in plan.step("install-cilium").relies_on} >= {"network.api_endpoint", "network.pod_cidrs"}
    ep = next(f for f in plan.step("install-cilium").relies_on if f.path == "network.api_endpoint")
    assert ep.value == {"host": "10.31.90.0", "port": 8443} and "controlPlaneEndpoint" in str(ep.source)


def test_default_options_use_cilium_bgp(lossy: ClusterFacts) -> None:
    """Without --bgp, Cilium 1.16's BGP control plane takes over Calico's peers (kube-router is the seed's
    choice, kept as an option)."""
    p = make_plan(lossy, "offline", "1.16.5")
    objs = manifest(p, "manifests/cilium-bgp.yaml")
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["CiliumBGPAdvertisement", "CiliumBGPClusterConfig", "CiliumBGPPeerConfig"]
    peer_config = next(o for o in objs if o["kind"] == "CiliumBGPPeerConfig")
    # both routers lie outside the nodes' 10.31.90.0/24 (Calico's node addresses): eBGP multihop as BIRD did
    assert peer_config["spec"]["ebgpMultihop"] == 64
    cc = next(o for o in objs if o["kind"] == "CiliumBGPClusterConfig")
    assert cc["apiVersion"] == "cilium.io/v2alpha1"
    inst = cc["spec"]["bgpInstances"][0]
    assert inst["localASN"] == 64517
    assert {(x["peerAddress"], x["peerASN"]) for x in inst["peers"]} == {
        ("10.31.254.253", 64512),
        ("10.31.100.100", 64516),
    }
    adv = next(o for o in objs if o["kind"] == "CiliumBGPAdvertisement")["spec"]["advertisements"]
    assert adv[0] == {"advertisementType": "PodCIDR"}
    assert adv[1]["service"]["addresses"] == ["ClusterIP", "LoadBalancerIP"]
    assert get(values(p, "values/install.yaml"), "bgpControlPlane.enabled") is True
