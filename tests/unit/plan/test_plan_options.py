"""Contradictory or unsafe options: clear errors naming the option and the fact; and what ``auto`` decides."""

from __future__ import annotations

from typing import Any

import pytest
from plan_helpers import get, make_plan, values

from cni_migrate.analysis.plan import PlanError
from cni_migrate.facts import ClusterFacts
from cni_migrate.facts.model import Fact


def error_of(facts: ClusterFacts, strategy: str = "offline", version: str = "1.16.5", **kw: Any) -> PlanError:
    with pytest.raises(PlanError) as e:
        make_plan(facts, strategy, version, **kw)
    return e.value


def text(e: PlanError) -> str:
    return " | ".join(e.problems)


def test_native_routing_without_anything_routing_the_pod_cidr(flannel: ClusterFacts) -> None:
    e = error_of(flannel, routing="native")
    assert "--routing native" in text(e) and "--auto-direct-node-routes" in text(e) and "fact" in text(e)
    assert e.kind == "options"


def test_native_routing_without_a_routable_cidr(flannel: ClusterFacts) -> None:
    nodes = [n.model_copy(update={"pod_cidr": None, "pod_cidrs": []}) for n in flannel.nodes]
    net = flannel.network.model_copy(update={"pod_cidrs": Fact.missing("no kube-controller-manager in the input")})
    facts = flannel.model_copy(update={"nodes": nodes, "network": net})
    e = error_of(facts, routing="native", auto_direct_node_routes=True, ipam="cluster-pool")
    assert "--routing native without a routable CIDR" in text(e)
    assert "fact network.pod_cidrs unknown: no kube-controller-manager in the input" in text(e)
    assert "--native-routing-cidr" in text(e)


def test_kube_proxy_replacement_on_an_old_kernel(lossy: ClusterFacts) -> None:
    nodes = list(lossy.nodes)
    nodes[4] = nodes[4].model_copy(update={"kernel_version": "4.14.0-1.el7.x86_64"})
    facts = lossy.model_copy(update={"nodes": nodes})
    e = error_of(facts, version="1.13.4", kube_proxy_replacement="true", bgp="kube-router")
    assert "--kube-proxy-replacement true" in text(e)
    assert f"node {nodes[4].name} runs kernel 4.14.0-1.el7.x86_64" in text(e)
    assert f"fact nodes[{nodes[4].name}].kernel_version" in text(e)
    # auto: kube-proxy replacement is left off (and kube-proxy kept) instead
    p = make_plan(facts, "offline", "1.13.4", bgp="kube-router", routing="tunnel")
    kpr = next(d for d in p.decisions if d.option == "kube-proxy-replacement")
    assert kpr.value is False and "too old" in kpr.reason
    assert not any(s.id == "remove-kube-proxy" for s in p.steps())
    assert values(p, "values/install.yaml")["kubeProxyReplacement"] == "disabled"


def test_cilium_release_needs_a_newer_kernel(multipool: ClusterFacts) -> None:
    e = error_of(multipool, version="1.18.2")
    assert "--cilium-version 1.18.2: node gpu-r2-1 runs kernel 5.4.0-150-generic" in text(e)
    assert "fact nodes[gpu-r2-1].kernel_version" in text(e)


def test_pod_cidr_overlapping_the_service_cidr(flannel: ClusterFacts, lossy: ClusterFacts) -> None:
    e = error_of(flannel, "rolling", cluster_pool_cidr="10.96.0.0/16")
    assert "--cluster-pool-cidr 10.96.0.0/16 overlaps service CIDR (fact network.service_cidrs) 10.96.0.0/12" in text(e)
    e = error_of(lossy, ipam="cluster-pool", cluster_pool_cidr="10.33.128.0/20", bgp="none", routing="tunnel")
    assert (
        "--cluster-pool-cidr 10.33.128.0/20 overlaps service CIDR (fact network.service_cidrs) 10.33.128.0/18"
        in text(e)
    )


def test_rolling_pod_cidr_overlapping_the_old_cni(flannel: ClusterFacts) -> None:
    e = error_of(flannel, "rolling", cluster_pool_cidr="10.243.128.0/17")
    assert "overlaps Flannel network (fact cni.flannel.network) 10.243.0.0/16" in text(e)
    assert "both CNIs allocate" in text(e)


def test_native_routing_cidr_overlapping_services(lossy: ClusterFacts) -> None:
    e = error_of(lossy, native_routing_cidr="10.33.0.0/16")
    assert "--native-routing-cidr 10.33.0.0/16 overlaps service CIDR (fact network.service_cidrs)" in text(e)


def test_rolling_needs_a_tunnel_and_its_own_ipam(flannel: ClusterFacts) -> None:
    assert "--routing native with --strategy rolling" in text(error_of(flannel, "rolling", routing="native"))
    e = error_of(flannel, "rolling", ipam="kubernetes")
    assert "--ipam kubernetes with --strategy rolling" in text(e) and "fact cni.flannel" in text(e)


def test_tunnel_port_of_the_old_vxlan(flannel: ClusterFacts) -> None:
    e = error_of(flannel, "rolling", tunnel_protocol="vxlan", tunnel_port=8472)
    assert "--tunnel-port 8472" in text(e) and "fact cni.flannel.backend_port=8472" in text(e)
    p = make_plan(flannel, "rolling", tunnel_protocol="vxlan")
    v = values(p, "values/10-migration.yaml")
    assert (v["tunnelProtocol"], v["tunnelPort"]) == ("vxlan", 8473)


def test_dsr_with_vxlan_and_load_balancing_without_kpr(lossy: ClusterFacts, flannel: ClusterFacts) -> None:
    e = error_of(flannel, lb_mode="dsr")
    assert "--lb-mode dsr with a VXLAN tunnel" in text(e)
    e = error_of(flannel, "rolling", maglev=True)
    assert "--maglev needs kube-proxy replacement" in text(e)
    e = error_of(lossy, kube_proxy_replacement="false", lb_mode="hybrid")
    assert "--lb-mode hybrid needs kube-proxy replacement" in text(e)


def test_maglev_seed_and_table_size(lossy: ClusterFacts) -> None:
    assert "--maglev-seed: decodes to 9 bytes" in text(error_of(lossy, maglev=True, maglev_seed="YWJjZGVmZ2hp"))
    assert "not standard base64" in text(error_of(lossy, maglev=True, maglev_seed="not base64!"))
    assert "--maglev-table-size 1000" in text(error_of(lossy, maglev=True, maglev_table_size=1000))


def test_no_kube_proxy_and_no_replacement(flannel: ClusterFacts) -> None:
    kp = flannel.kube_proxy.model_copy(update={"present": Fact.of(False, "no kube-proxy DaemonSet")})
    facts = flannel.model_copy(update={"kube_proxy": kp})
    e = error_of(facts, kube_proxy_replacement="false")
    assert "--kube-proxy-replacement false: kube-proxy is not installed (fact kube_proxy.present=false" in text(e)


def test_api_endpoint_needed_without_kube_proxy(lossy: ClusterFacts) -> None:
    net = lossy.network.model_copy(update={"api_endpoint": Fact.missing("no controlPlaneEndpoint")})
    e = error_of(lossy.model_copy(update={"network": net}))
    assert "--k8s-service-host" in text(e) and "fact network.api_endpoint unknown: no controlPlaneEndpoint" in text(e)


def test_versions(lossy: ClusterFacts, flannel: ClusterFacts) -> None:
    assert "is not a release version" in text(error_of(lossy, version="1.16"))
    assert "supports Cilium 1.11 through 1.19" in text(error_of(lossy, version="1.9.18"))
    assert "needs CiliumNodeConfig" in text(error_of(flannel, "rolling", version="1.12.9"))


def test_bgp_choices(lossy: ClusterFacts, flannel: ClusterFacts, multipool: ClusterFacts) -> None:
    e = error_of(multipool, bgp="kube-router")
    assert "--bgp kube-router with --ipam cluster-pool" in text(e)
    e = error_of(flannel, bgp="cilium", routing="tunnel")
    assert "--bgp cilium: there are no BGP peers to take over" in text(e)
    e = error_of(lossy, "rolling", version="1.15.7")
    assert "fact cni.calico.bgp_peers" in text(e) and "--bgp none" in text(e)
    p = make_plan(lossy, "rolling", version="1.15.7", bgp="none")
    assert any("--bgp none" in w for w in p.warnings)


def test_node_options(flannel: ClusterFacts) -> None:
    assert "--first-nodes nope: no such node" in text(error_of(flannel, "rolling", first_nodes=["nope"]))
    assert "--batch-size 0" in text(error_of(flannel, "rolling", batch_size=0))


def test_calico_ebpf_dataplane_cannot_roll(lossy: ClusterFacts) -> None:
    assert lossy.cni.calico is not None
    calico = lossy.cni.calico.model_copy(update={"felix": {"bpfEnabled": "true"}})
    facts = lossy.model_copy(update={"cni": lossy.cni.model_copy(update={"calico": calico})})
    assert "fact cni.calico.felix.bpfEnabled=true" in text(error_of(facts, "rolling"))


def test_podcidrpools_need_a_pool_for_every_node(multipool: ClusterFacts) -> None:
    e = error_of(multipool, ipam="podcidrpools")
    assert "--ipam podcidrpools: 1 node(s) would get no podCIDR" in text(e) and "edge-1" in text(e)
    assert "edge-pool" in text(e)  # the IPPool whose selector could not be translated


def test_user_values_cannot_break_a_phase(flannel: ClusterFacts, lossy: ClusterFacts) -> None:
    e = error_of(flannel, "rolling", set_values=["cni.customConf=false"])
    assert "--set cni.customConf=False contradicts values/10-migration.yaml" in text(e)
    e = error_of(flannel, "rolling", base_values={"policyEnforcementMode": "default"})
    assert "--values policyEnforcementMode='default' contradicts values/10-migration.yaml" in text(e)


def test_lint_errors_refuse_the_plan(lossy: ClusterFacts) -> None:
    e = error_of(lossy, set_values=["tunnel=vxlan"])
    assert e.kind == "lint"
    assert "values/install.yaml: lint CIL012 at tunnel" in text(e)


def test_user_values_merged_and_recorded(lossy: ClusterFacts) -> None:
    p = make_plan(
        lossy,
        base_values={"operator": {"replicas": 1}, "enableIPv4Masquerade": False},
        set_values=["hubble.enabled=false"],
    )
    v = values(p, "values/install.yaml")
    assert get(v, "operator.replicas") == 1 and v["enableIPv4Masquerade"] is False
    assert get(v, "hubble.enabled") is False
    assert any("enableIPv4Masquerade=False from --values replaces the derived True" in w for w in p.warnings)


def test_auto_decisions_name_their_facts(lossy: ClusterFacts, flannel: ClusterFacts) -> None:
    p = make_plan(lossy)
    d = {x.option: x for x in p.decisions}
    assert d["routing"].value == "native" and {f.path for f in d["routing"].facts} >= {"cni.calico.bgp_peers"}
    assert d["ipam"].value == "kubernetes"
    assert d["k8s-service-host"].value == "10.31.90.0"
    p = make_plan(flannel, "rolling")
    d = {x.option: x for x in p.decisions}
    assert d["tunnel-protocol"].value == "geneve" and d["tunnel-protocol"].facts[0].value == 8472
    assert d["cluster-pool-cidr"].value == "10.245.0.0/16"
