"""CNI detection from each CNI's own objects, including clusters mid-migration."""

from __future__ import annotations

from typing import Any

from cni_migrate.facts import extract_facts
from cni_migrate.facts.objects import ObjectStore


def _ds(
    name: str, ns: str, containers: list[dict[str, Any]], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": md,
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def _cm(name: str, ns: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data}


def _store(*objs: dict[str, Any]) -> ObjectStore:
    s = ObjectStore(location="test")
    s.add_all(objs)
    return s


def test_canal() -> None:
    store = _store(
        _ds(
            "canal",
            "kube-system",
            [
                {"name": "calico-node", "image": "calico/node:v3.25.0"},
                {"name": "kube-flannel", "image": "flannel:v0.15.1", "args": ["--ip-masq"]},
            ],
        ),
        _cm(
            "canal-config",
            "kube-system",
            {"net-conf.json": '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 8473}}'},
        ),
    )
    cni = extract_facts(store).cni
    assert cni.detected == "canal"
    assert cni.flannel is not None and cni.flannel.canal and cni.flannel.backend_port.value == 8473
    assert cni.calico is not None and cni.calico.version.value == "v3.25.0"


def test_cilium_mid_migration_with_calico() -> None:
    store = _store(
        _ds("calico-node", "kube-system", [{"name": "calico-node", "image": "calico/node:v3.26.1"}]),
        _ds(
            "cilium",
            "kube-system",
            [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.16.5@sha256:abc"}],
            {"meta.helm.sh/release-name": "cilium"},
        ),
        _cm(
            "cilium-config",
            "kube-system",
            {
                "ipam": "cluster-pool",
                "routing-mode": "tunnel",
                "tunnel-protocol": "geneve",
                "kube-proxy-replacement": "false",
            },
        ),
    )
    facts = extract_facts(store)
    assert facts.cni.detected == "calico"
    assert facts.cni.also_present == ["cilium"]
    ci = facts.cni.cilium
    assert ci is not None
    assert ci.version.value == "v1.16.5"
    assert (ci.ipam_mode.value, ci.routing_mode.value, ci.tunnel_protocol.value) == ("cluster-pool", "tunnel", "geneve")
    assert ci.annotate_k8s_node.value is False and "default" in str(ci.annotate_k8s_node.source)


def test_legacy_cilium_tunnel_key() -> None:
    store = _store(_cm("cilium-config", "kube-system", {"tunnel": "disabled", "annotate-k8s-node": "true"}))
    ci = extract_facts(store).cni.cilium
    assert ci is not None and ci.routing_mode.value == "native" and ci.annotate_k8s_node.value is True
    assert not ci.tunnel_protocol.known


def test_kube_router_as_bgp_speaker_only_is_not_the_cni() -> None:
    kr = _ds(
        "kube-router",
        "kube-system",
        [{"name": "kube-router", "image": "kube-router:v1.2", "args": ["--run-router=true", "--enable-cni=false"]}],
    )
    cilium = _ds("cilium", "kube-system", [{"name": "cilium-agent", "image": "cilium:v1.12.6"}])
    facts = extract_facts(_store(kr, cilium))
    assert facts.cni.detected == "cilium"
    assert facts.cni.kube_router is not None and "--enable-cni=false" in facts.cni.kube_router.args
    alone = extract_facts(
        _store(
            _ds(
                "kube-router",
                "kube-system",
                [{"name": "kube-router", "image": "kube-router:v1.6", "args": ["--run-router=true"]}],
            )
        )
    )
    assert alone.cni.detected == "kube-router"


def test_flannel_bad_netconf_is_unknown_with_reason() -> None:
    store = _store(
        _ds("kube-flannel-ds", "kube-flannel", [{"name": "kube-flannel", "image": "flannel:v0.22"}]),
        _cm("kube-flannel-cfg", "kube-flannel", {"net-conf.json": "{not json"}),
    )
    f = extract_facts(store).cni.flannel
    assert f is not None
    assert not f.network.known and "not valid JSON" in str(f.network.unknown)
    assert f.ip_masq.value is False


def test_no_cni() -> None:
    facts = extract_facts(
        _store(
            _ds(
                "kube-proxy",
                "kube-system",
                [{"name": "kube-proxy", "image": "kube-proxy:v1.30.0", "args": ["--proxy-mode=nftables"]}],
            )
        )
    )
    assert facts.cni.detected == "none"
    assert facts.kube_proxy.present.value is True
    assert facts.kube_proxy.mode.value == "nftables"
