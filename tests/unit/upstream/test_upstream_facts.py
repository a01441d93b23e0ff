"""Facts of clusters built from the upstream manifests: IPPools missing from the input, and calico-node's own
reading of its env when no pool exists yet."""

from __future__ import annotations

import copy

import pytest
from upstream_data import ANNOTATIONS, cluster_objects, facts

from cni_migrate.facts import extract_facts
from cni_migrate.facts.objects import KindRef, ObjectStore, calico


@pytest.mark.parametrize("name", [n for n in ANNOTATIONS if n != "kube-flannel"])
def test_ippools_absent_from_the_input_make_the_pool_facts_unknown(name: str) -> None:
    f = facts(name, ippools="absent")
    c = f.cni.calico
    assert c is not None
    assert not c.ip_pools.known and c.ip_pools.value is None
    assert not c.uses_vxlan.known and not c.uses_ipip.known
    assert "IPPool.crd.projectcalico.org" in f.source.missing_kinds
    assert "no Calico IPPool objects" in str(c.ip_pools.unknown)


def test_the_unknown_reason_says_what_calico_node_would_create() -> None:
    c = facts("calico-vxlan-3.28", ippools="absent").cni.calico
    assert c is not None
    assert "10.244.0.0/16 (IPIP Never, VXLAN Always)" in str(c.ip_pools.unknown)


@pytest.mark.parametrize(
    ("name", "ipip", "vxlan"),
    [("calico-3.26", "Always", "Never"), ("calico-3.29", "Always", "Never"), ("calico-vxlan-3.28", "Never", "Always")],
)
def test_pool_objects_are_read(name: str, ipip: str, vxlan: str) -> None:
    c = facts(name).cni.calico
    assert c is not None
    (pool,) = c.ip_pools.value or []
    assert (pool.name, pool.cidr, pool.ipip_mode, pool.vxlan_mode) == (
        "default-ipv4-ippool",
        "10.244.0.0/16",
        ipip,
        vxlan,
    )
    assert c.uses_ipip.value is (ipip != "Never") and c.uses_vxlan.value is (vxlan != "Never")
    assert facts(name).source.missing_kinds == []


@pytest.mark.parametrize(
    ("name", "ipip", "vxlan"),
    [("calico-3.28", "Always", "Never"), ("calico-vxlan-3.28", "Never", "Always"), ("canal-3.28", "Never", "Never")],
)
def test_no_pool_yet_means_the_pool_calico_node_creates_from_kubeadms_pod_subnet(
    name: str, ipip: str, vxlan: str
) -> None:
    # The manifests leave CALICO_IPV4POOL_CIDR commented out: calico-node takes kubeadm's podSubnet.
    c = facts(name, ippools="none").cni.calico
    assert c is not None
    (pool,) = c.ip_pools.value or []
    assert (pool.cidr, pool.block_size, pool.ipip_mode, pool.vxlan_mode, pool.nat_outgoing) == (
        "10.244.0.0/16",
        26,
        ipip,
        vxlan,
        True,
    )
    assert "networking.podSubnet" in pool.source


def _calico_node_env(objs: list[dict[str, object]]) -> list[dict[str, object]]:
    ds = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")  # type: ignore[index]
    return ds["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index,no-any-return]


def _store(objs: list[dict[str, object]]) -> ObjectStore:
    s = ObjectStore(location="test")
    s.add_all(copy.deepcopy(objs))
    for ref in (KindRef("", "Node"), KindRef("apps", "DaemonSet"), KindRef("", "ConfigMap"), *calico("IPPool")):
        s.mark_listed(ref)
    return s


def test_unset_encapsulation_env_means_never_and_no_kubeadm_means_192_168() -> None:
    objs = [o for o in cluster_objects("calico-3.28", ippools=False) if o["metadata"]["name"] != "kubeadm-config"]
    env = _calico_node_env(objs)
    env[:] = [e for e in env if e["name"] not in ("CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN")]
    c = extract_facts(_store(objs)).cni.calico
    assert c is not None
    (pool,) = c.ip_pools.value or []
    assert (pool.cidr, pool.ipip_mode, pool.vxlan_mode) == ("192.168.0.0/16", "Never", "Never")
    assert c.uses_ipip.value is False and c.uses_vxlan.value is False


def test_explicit_pool_env_and_no_default_pools() -> None:
    objs = cluster_objects("calico-3.28", ippools=False)
    env = _calico_node_env(objs)
    env += [
        {"name": "CALICO_IPV4POOL_CIDR", "value": "10.50.0.0/16"},
        {"name": "CALICO_IPV4POOL_BLOCK_SIZE", "value": "24"},
    ]
    for e in env:
        if e["name"] == "CALICO_IPV4POOL_IPIP":
            e["value"] = "cross-subnet"
    c = extract_facts(_store(objs)).cni.calico
    assert c is not None
    (pool,) = c.ip_pools.value or []
    assert (pool.cidr, pool.block_size, pool.ipip_mode) == ("10.50.0.0/16", 24, "CrossSubnet")
    env.append({"name": "NO_DEFAULT_POOLS", "value": "true"})
    c = extract_facts(_store(objs)).cni.calico
    assert c is not None and c.ip_pools.value == [] and c.uses_vxlan.value is False


def test_canal_has_no_address_autodetection_and_no_bgp() -> None:
    c = facts("canal-3.28").cni.calico
    assert c is not None
    assert c.daemonset == "canal"
    assert c.calico_networking_backend.value == "none"
    assert c.ip_autodetection_method.value == "none"
    assert "CALICO_NETWORKING_BACKEND=none" in str(c.ip_autodetection_method.source)


def test_vxlan_manifest_backend_and_typha() -> None:
    c = facts("calico-vxlan-3.28").cni.calico
    assert c is not None and c.calico_networking_backend.value == "vxlan" and c.typha.value is False
    t = facts("calico-typha-3.28").cni.calico
    assert t is not None and t.typha.value is True
