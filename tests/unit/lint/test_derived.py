"""The derived variables: computed once, per version, from values and facts (what --explain shows)."""

from __future__ import annotations

from typing import Any

import pytest

from cni_migrate.analysis.lint import lint

from .helpers import make_facts, run


def derived(vals: str, version: str, facts: Any = None, **ctx: Any) -> dict[str, Any]:
    return run(vals, version, facts, **ctx).derived


@pytest.mark.parametrize(
    ("vals", "version", "routing", "tproto", "port"),
    [
        ("", "1.11", "tunnel", "vxlan", 8472),
        ("tunnel=disabled", "1.13", "native", "disabled", 8472),
        ("tunnel=geneve", "1.12", "tunnel", "geneve", 6081),
        ("routingMode=native", "1.13", "tunnel", "vxlan", 8472),  # routingMode unknown before 1.14
        ("tunnel=disabled", "1.14", "native", "vxlan", 8472),  # 1.14 chart maps the deprecated value
        ("tunnel=geneve routingMode=native", "1.14", "tunnel", "geneve", 6081),
        ("routingMode=native", "1.14", "native", "vxlan", 8472),
        ("tunnel=disabled", "1.15", "tunnel", "vxlan", 8472),  # removed value ignored: VXLAN
        ("gke.enabled=true", "1.16", "native", "vxlan", 8472),
        ("tunnelProtocol=geneve tunnelPort=7000", "1.16", "tunnel", "geneve", 7000),
    ],
)
def test_routing(vals: str, version: str, routing: str, tproto: str, port: int) -> None:
    d = derived(vals, version)
    assert (d["routing"], d["tproto"], d["tunnel_port"]) == (routing, tproto, port)
    assert d["tunnel_device"] == (f"cilium_{tproto}" if routing == "tunnel" else None)


def test_dsr_geneve_in_native_routing_has_a_geneve_device() -> None:
    d = derived("routingMode=native kubeProxyReplacement=true loadBalancer.mode=dsr loadBalancer.dsrDispatch=geneve "
                "tunnelProtocol=geneve", "1.16")  # fmt: skip
    assert (d["tunnel_device"], d["tunnel_port"], d["dsr"]) == ("cilium_geneve", 6081, True)


@pytest.mark.parametrize(
    ("vals", "version", "kpr", "full", "node_port", "socket_lb"),
    [
        ("", "1.11", "probe", False, False, False),
        ("", "1.12", "disabled", False, False, False),
        ("", "1.13", "disabled", False, False, False),
        ("upgradeCompatibility=1.11", "1.13", "probe", False, False, False),
        ("", "1.16", "false", False, False, False),
        ("upgradeCompatibility=1.12", "1.16", "disabled", False, False, False),
        ("upgradeCompatibility=1.10", "1.16", "probe", False, False, False),
        ("kubeProxyReplacement=strict", "1.12", "strict", True, True, True),
        ("kubeProxyReplacement=true", "1.16", "true", True, True, True),
        ("kubeProxyReplacement=partial nodePort.enabled=true", "1.13", "partial", False, True, False),
        ("socketLB.enabled=true", "1.16", "false", False, False, True),
        ("socketLB.enabled=true", "1.12", "disabled", False, False, False),  # socketLB.* from 1.13
        ("hostServices.enabled=true", "1.12", "disabled", False, False, True),
        ("nodePort.enabled=true", "1.19", "false", False, False, False),  # 1.19: only KPR enables NodePort
        ("ingressController.enabled=true", "1.14", "false", False, True, False),
    ],
)
def test_kube_proxy_replacement(
    vals: str, version: str, kpr: str, full: bool, node_port: bool, socket_lb: bool
) -> None:
    d = derived(vals, version)
    assert (d["kpr"], d["kpr_full"], d["node_port"], d["socket_lb"]) == (kpr, full, node_port, socket_lb)


def test_set_string_true_is_the_same_as_bool() -> None:
    assert lint({"kubeProxyReplacement": "true"}, "1.16").derived["kpr_full"] is True
    assert lint({"kubeProxyReplacement": True}, "1.16").derived["kpr"] == "true"


def test_masquerading() -> None:
    d = derived("ipv6.enabled=true", "1.16")
    assert (d["v4masq"], d["v6masq"], d["bpf_masq"]) == (True, True, False)
    assert derived("eni.enabled=true ipam.mode=eni", "1.18")["v4masq"] is False
    assert derived("eni.enabled=true ipam.mode=eni", "1.17")["v4masq"] is True
    assert derived("eni.enabled=true upgradeCompatibility=1.17", "1.18")["v4masq"] is True
    assert derived("ipv4.enabled=false ipv6.enabled=true", "1.16")["v4masq"] is False


def test_pod_cidrs() -> None:
    assert derived("", "1.16")["pod_cidrs_v4"] == ["10.0.0.0/8"]
    assert derived("ipam.operator.clusterPoolIPv4PodCIDRList=10.1.0.0/16", "1.16")["pod_cidrs_v4"] == ["10.1.0.0/16"]
    assert derived("ipam.operator.clusterPoolIPv4PodCIDR=10.2.0.0/16", "1.13")["pod_cidrs_v4"] == ["10.2.0.0/16"]
    assert derived("ipam.operator.clusterPoolIPv4PodCIDR=10.2.0.0/16", "1.14")["pod_cidrs_v4"] == ["10.0.0.0/8"]
    assert derived("ipam.mode=kubernetes", "1.16")["pod_cidrs_v4"] is None
    pools = "ipam.mode=multi-pool ipam.operator.autoCreateCiliumPodIPPools.default.ipv4.cidrs={10.5.0.0/16,10.6.0.0/16}"
    assert derived(pools, "1.16")["pod_cidrs_v4"] == ["10.5.0.0/16", "10.6.0.0/16"]


def test_host_routing_needs_facts() -> None:
    fast = "kubeProxyReplacement=true bpf.masquerade=true"
    assert derived(fast, "1.16")["host_routing"] == "unknown"
    assert derived(fast, "1.16", make_facts())["host_routing"] == "bpf"
    assert derived(fast, "1.16", make_facts(kernels=("5.4.0",)))["host_routing"] == "legacy"
    assert derived(fast + " bpf.hostLegacyRouting=true", "1.16")["host_routing"] == "legacy"
    assert derived(fast + " encryption.enabled=true", "1.18", make_facts())["host_routing"] == "legacy"
    assert derived(fast + " encryption.enabled=true", "1.19", make_facts())["host_routing"] == "bpf"
    assert derived(fast + " cni.chainingMode=generic-veth", "1.16", make_facts())["host_routing"] == "legacy"


def test_facts_in_derived_and_explanations() -> None:
    facts = make_facts(kernels={"a": "5.4.0-150-generic", "b": "6.1.0", "c": "5.4.0-150-generic"}, cni="flannel")
    report = run("tunnel=disabled", "1.16", facts)
    assert report.derived["lowest_kernel"] == "5.4.0-150-generic"
    assert report.derived_from["lowest_kernel"].startswith("5.4.0-150-generic on a, c")
    assert report.derived["old_cni"] == "flannel" and report.derived["kube_proxy_present"] is True
    assert "ignored" in report.derived_from["routing"]
    off = run("", "1.16", facts, old_cni_present=False, kube_proxy_present=False).derived
    assert off["old_cni"] == "none" and off["kube_proxy_present"] is False
    none = run("", "1.16").derived
    assert none["lowest_kernel"] is None and none["old_cni"] is None
