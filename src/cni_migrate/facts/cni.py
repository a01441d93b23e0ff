"""Which CNI a cluster runs, and the settings of each CNI found, read from its own objects."""

from __future__ import annotations

import json
from typing import Any

from cni_migrate.facts.cluster import _kubeadm_cluster_config
from cni_migrate.facts.model import (
    BGPPeerFacts,
    CalicoBGPFacts,
    CalicoFacts,
    CalicoNodeBGPFacts,
    CiliumFacts,
    CniFacts,
    CniName,
    Fact,
    FlannelFacts,
    IPPoolFacts,
    KubeRouterFacts,
    RouteReflectorFacts,
)
from cni_migrate.facts.objects import (
    CONFIGMAP,
    DAEMONSET,
    DEPLOYMENT,
    NODE,
    TIGERA_INSTALLATION,
    Obj,
    ObjectStore,
    calico,
    dig,
    meta,
    name_of,
    namespace_of,
    ref_text,
)
from cni_migrate.facts.podspec import args_of, container, containers, env_value, flag, image_tag
from cni_migrate.facts.tigera import blocking_finalizers, tigera_operator
from cni_migrate.facts.validate import FLANNEL_NET_CONF, asn_value, check_embedded

# Felix settings that change what a migration must do (encapsulation, eBPF dataplane, ports, iptables).
FELIX_KEYS = (
    "bpfEnabled",
    "bpfKubeProxyIptablesCleanupEnabled",
    "ipipEnabled",
    "vxlanEnabled",
    "vxlanPort",
    "vxlanVNI",
    "iptablesBackend",
    "wireguardEnabled",
    "routeSource",
    "defaultEndpointToHostAction",
    "chainInsertMode",
    "removeExternalRoutes",
)

CALICO_NODE_ANNOTATIONS = (
    "projectcalico.org/IPv4Address",
    "projectcalico.org/IPv4IPIPTunnelAddr",
    "projectcalico.org/IPv4VXLANTunnelAddr",
    "projectcalico.org/ASNumber",
    "projectcalico.org/RouteReflectorClusterID",
)


def _is_ready(node: Obj) -> bool:
    conditions = dig(node, "status", "conditions")
    return isinstance(conditions, list) and any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def _daemonsets_named(store: ObjectStore, *names: str) -> list[Obj]:
    return [d for d in store.of(DAEMONSET) if name_of(d) in names]


def detect_cni(store: ObjectStore) -> CniFacts:
    found: list[tuple[CniName, str]] = []
    calico_ds = _daemonsets_named(store, "calico-node")
    canal_ds = _daemonsets_named(store, "canal")
    flannel_ds = [d for d in store.of(DAEMONSET) if "flannel" in name_of(d)]
    cilium_ds = _daemonsets_named(store, "cilium")
    kube_router_ds = _daemonsets_named(store, "kube-router")
    installations = store.of(TIGERA_INSTALLATION)

    if canal_ds:
        found.append(("canal", f"{ref_text(canal_ds[0])} runs calico-node and flannel"))
    if calico_ds:
        found.append(("calico", f"{ref_text(calico_ds[0])} exists"))
    elif installations and not canal_ds:
        found.append(("calico", f"{ref_text(installations[0])} (tigera-operator) exists"))
    elif store.of(*calico("IPPool")) and not canal_ds:
        found.append(("calico", "Calico IPPool objects exist but no calico-node DaemonSet was seen"))
    if flannel_ds and not canal_ds:
        found.append(("flannel", f"{ref_text(flannel_ds[0])} exists"))
    if cilium_ds:
        found.append(("cilium", f"{ref_text(cilium_ds[0])} exists"))
    elif store.get(CONFIGMAP, None, "cilium-config") is not None:
        found.append(("cilium", "ConfigMap cilium-config exists (no cilium DaemonSet seen)"))
    kube_router_is_cni = False
    if kube_router_ds:
        c = next(containers(kube_router_ds[0]), None)
        kube_router_is_cni = c is not None and flag(args_of(c), "enable-cni") not in ("false",)
        found.append(
            (
                "kube-router",
                f"{ref_text(kube_router_ds[0])} exists (enable-cni={str(kube_router_is_cni).lower()})",
            )
        )

    # The current CNI is the one pods were networked by: an old CNI outranks Cilium (a migration in progress),
    # and kube-router counts only when it is the CNI, not when it merely advertises routes over BGP.
    order: list[CniName] = ["canal", "calico", "flannel", "cilium"]
    if kube_router_is_cni:
        order.append("kube-router")
    names = [n for n, _ in found]
    detected: CniName
    primary = next((n for n in order if n in names), None)
    if primary is not None:
        detected = primary
    elif "kube-router" in names or store.has_listed(DAEMONSET):
        detected = "none"
    else:
        detected = "unknown"
    evidence = [e for _, e in found]
    ready = [name_of(n) for n in store.of(NODE) if _is_ready(n)]
    if detected == "none" and not found and ready:
        # Ready nodes are networked by something: a CNI outside DaemonSets (static pods, host services) or one
        # this tool does not know. "No CNI" would plan an install next to it.
        detected = "unknown"
        evidence.append(
            f"{len(ready)} node(s) are Ready ({', '.join(ready[:3])}{', ...' if len(ready) > 3 else ''}), so a CNI "
            "networks them, but no DaemonSet of Calico, Canal, Flannel, Cilium or kube-router was found"
        )
    elif detected == "unknown":
        evidence.append("the input has no DaemonSet objects, so no CNI agent could be seen")
    elif detected == "none" and not found:
        evidence.append("no DaemonSet of Calico, Canal, Flannel, Cilium or kube-router exists")

    facts = CniFacts(
        detected=detected,
        evidence=evidence,
        also_present=[n for n in names if n != detected],
    )
    if canal_ds or calico_ds or installations or store.of(*calico("IPPool")):
        node_ds = (canal_ds or calico_ds)[0] if (canal_ds or calico_ds) else None
        facts.calico = calico_facts(store, node_ds, installations)
    if canal_ds or flannel_ds:
        facts.flannel = flannel_facts(store, (canal_ds or flannel_ds)[0], canal=bool(canal_ds))
    if cilium_ds or store.get(CONFIGMAP, None, "cilium-config") is not None:
        facts.cilium = cilium_facts(store, cilium_ds[0] if cilium_ds else None)
    if kube_router_ds:
        ds = kube_router_ds[0]
        c = next(containers(ds), None)
        facts.kube_router = KubeRouterFacts(
            namespace=namespace_of(ds), daemonset=name_of(ds), args=args_of(c) if c else []
        )
    facts.blocking_finalizers = blocking_finalizers(store, calico_present=facts.calico is not None)
    return facts


# --- Calico -------------------------------------------------------------------------------------------------


def calico_facts(store: ObjectStore, node_ds: Obj | None, installations: list[Obj]) -> CalicoFacts:
    installation = installations[0] if installations else None
    operator = installation is not None or any(name_of(d) == "tigera-operator" for d in store.of(DEPLOYMENT))
    node_c = container(node_ds, "calico-node") if node_ds else None
    namespace = namespace_of(node_ds) if node_ds else ("calico-system" if operator else "kube-system")

    version: Fact[str]
    if node_c and image_tag(node_c.get("image")):
        version = Fact.of(str(image_tag(node_c.get("image"))), f"image of {ref_text(node_ds or {})}")
    elif installation and dig(installation, "status", "calicoVersion"):
        version = Fact.of(str(dig(installation, "status", "calicoVersion")), f"{ref_text(installation)} status")
    else:
        version = Fact.missing("no calico-node DaemonSet image or Installation status.calicoVersion seen")

    pools = _ip_pools(store, installation, node_c, node_ds)
    backend = _networking_backend(store, installation, node_c, node_ds)
    uses_ipip = _uses(pools, "IPIP")
    uses_vxlan = _uses(pools, "VXLAN")

    felix_obj = next((f for f in store.of(*calico("FelixConfiguration")) if name_of(f) == "default"), None)
    felix: dict[str, str] = {}
    if felix_obj:
        spec = felix_obj.get("spec") or {}
        felix = {k: _scalar_text(spec[k]) for k in FELIX_KEYS if k in spec}
    vxlan_port = int(felix.get("vxlanPort", "4789") or 4789)

    return CalicoFacts(
        install_method="operator" if operator else "manifest",
        namespace=namespace,
        daemonset=name_of(node_ds) if node_ds else ("calico-node" if operator else None),
        version=version,
        ip_pools=pools,
        bgp=_bgp_configuration(store),
        bgp_peers=[_bgp_peer(p) for p in store.of(*calico("BGPPeer"))],
        route_reflectors=_route_reflectors(store),
        nodes_bgp=_nodes_bgp(store),
        ip_autodetection_method=_autodetection(installation, node_c, node_ds, backend),
        calico_networking_backend=backend,
        felix=felix,
        vxlan_port=vxlan_port,
        uses_ipip=uses_ipip,
        uses_vxlan=uses_vxlan,
        typha=_typha(store, namespace),
        installation_finalizers=[str(f) for f in meta(installation or {}).get("finalizers") or []],
        operator=tigera_operator(store) if operator else None,
        network_policies=len(store.of(*calico("NetworkPolicy"))),
        global_network_policies=len(store.of(*calico("GlobalNetworkPolicy"))),
    )


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _pool_from_spec(name: str, spec: dict[str, Any], source: str) -> IPPoolFacts:
    cidr = str(spec.get("cidr", ""))
    return IPPoolFacts(
        name=name,
        cidr=cidr,
        block_size=int(spec.get("blockSize") or (26 if ":" not in cidr else 122)),
        node_selector=str(spec.get("nodeSelector") or "all()"),
        ipip_mode=str(spec.get("ipipMode") or "Never"),
        vxlan_mode=str(spec.get("vxlanMode") or "Never"),
        nat_outgoing=bool(spec.get("natOutgoing", False)),
        disabled=bool(spec.get("disabled", False)),
        source=source,
    )


def _ip_pools(
    store: ObjectStore, installation: Obj | None, node_c: dict[str, Any] | None, node_ds: Obj | None
) -> Fact[list[IPPoolFacts]]:
    """The IPPool objects; when the input lists IPPools and there are none, the pools Calico creates at start
    (the operator from its Installation, calico-node from its env); unknown when the input has no IPPools."""
    objects = store.of(*calico("IPPool"))
    if objects:
        pools = [_pool_from_spec(name_of(p), p.get("spec") or {}, ref_text(p)) for p in objects]
        return Fact.of(sorted(pools, key=lambda x: x.name), "IPPool objects")
    if installation is not None:
        created, how = _installation_pools(installation), f"{ref_text(installation)} spec.calicoNetwork.ipPools"
    elif node_c is not None and node_ds is not None:
        created, how = _env_pools(store, node_c, node_ds)
    else:
        created, how = [], ""
    if not store.has_listed(*calico("IPPool")):
        would = ""
        if created:
            would = (
                "; "
                + how
                + " would create "
                + ", ".join(f"{p.cidr} (IPIP {p.ipip_mode}, VXLAN {p.vxlan_mode})" for p in created)
            )
            would += " when no pool exists, but the pools may have changed since"
        return Fact.missing(f"the input has no Calico IPPool objects (crd.projectcalico.org){would}")
    if created:
        return Fact.of(created, f"no IPPool exists yet: {how} (Calico creates these at start)")
    return Fact.of([], "IPPool objects (none exist)" + (f"; {how}" if how else ""))


def _installation_pools(installation: Obj) -> list[IPPoolFacts]:
    pools: list[IPPoolFacts] = []
    for i, p in enumerate(dig(installation, "spec", "calicoNetwork", "ipPools") or []):
        encap = str(p.get("encapsulation") or "IPIP")
        cidr = str(p.get("cidr", ""))
        pools.append(
            IPPoolFacts(
                name=str(p.get("name") or f"installation-pool-{i}"),
                cidr=cidr,
                block_size=int(p.get("blockSize") or (26 if ":" not in cidr else 122)),
                node_selector=str(p.get("nodeSelector") or "all()"),
                ipip_mode="Always" if encap == "IPIP" else "CrossSubnet" if encap == "IPIPCrossSubnet" else "Never",
                vxlan_mode="Always" if encap == "VXLAN" else "CrossSubnet" if encap == "VXLANCrossSubnet" else "Never",
                nat_outgoing=str(p.get("natOutgoing", "Enabled")) == "Enabled",
                source=f"{ref_text(installation)} spec.calicoNetwork.ipPools[{i}]",
            )
        )
    return pools


DEFAULT_CALICO_IPV4_POOL = "192.168.0.0/16"


def _encap_mode(value: str | None) -> str:
    """calico-node's reading of CALICO_IPV4POOL_IPIP / _VXLAN: unset, off or never is Never."""
    v = (value or "").strip().lower()
    if v in ("", "off", "never"):
        return "Never"
    if v in ("crosssubnet", "cross-subnet"):
        return "CrossSubnet"
    if v == "always":
        return "Always"
    return value or ""  # calico-node refuses to start on any other value


def _env_pools(store: ObjectStore, node_c: dict[str, Any], node_ds: Obj) -> tuple[list[IPPoolFacts], str]:
    """The IPv4 pool calico-node creates at start when none exists, as calico-node derives it: the CIDR from
    CALICO_IPV4POOL_CIDR, else kubeadm's podSubnet, else 192.168.0.0/16; unset IPIP/VXLAN modes are Never."""
    ns = namespace_of(node_ds)
    src = f"{ref_text(node_ds)} env"

    def configmap(name: str, key: str) -> str | None:
        value = dig(store.get(CONFIGMAP, ns, name) or {}, "data", key)
        return str(value) if value is not None else None

    def env(name: str) -> str:
        return (env_value(node_c, name, configmap) or "").strip()

    if env("NO_DEFAULT_POOLS").lower() == "true":
        return [], f"{src} NO_DEFAULT_POOLS=true (calico-node creates no pool)"
    cidr = env("CALICO_IPV4POOL_CIDR")
    if cidr == "none":
        return [], f"{src} CALICO_IPV4POOL_CIDR=none (calico-node creates no IPv4 pool)"
    if cidr:
        how = f"{src} CALICO_IPV4POOL_CIDR"
    else:
        cfg, cfg_src = _kubeadm_cluster_config(store)
        subnets = str(((cfg or {}).get("networking") or {}).get("podSubnet") or "")
        v4 = next((c.strip() for c in subnets.split(",") if c.strip() and ":" not in c), "")
        if v4:
            cidr, how = v4, f"{cfg_src} networking.podSubnet ({src} CALICO_IPV4POOL_CIDR unset)"
        else:
            cidr = DEFAULT_CALICO_IPV4_POOL
            how = f"calico-node's default {cidr} ({src} CALICO_IPV4POOL_CIDR unset, no kubeadm podSubnet)"
    block = env("CALICO_IPV4POOL_BLOCK_SIZE")
    pool = IPPoolFacts(
        name="default-ipv4-ippool",
        cidr=cidr,
        block_size=int(block) if block.isdigit() else 26,
        node_selector=env("CALICO_IPV4POOL_NODE_SELECTOR") or "all()",
        ipip_mode=_encap_mode(env("CALICO_IPV4POOL_IPIP")),
        vxlan_mode=_encap_mode(env("CALICO_IPV4POOL_VXLAN")),
        nat_outgoing=env("CALICO_IPV4POOL_NAT_OUTGOING").lower() != "false",
        source=how,
    )
    return [pool], how


def _uses(pools: Fact[list[IPPoolFacts]], encap: str) -> Fact[bool]:
    if not pools.known:
        return Fact.missing(f"the IPPools are unknown: {pools.unknown}")
    key = "ipip_mode" if encap == "IPIP" else "vxlan_mode"
    value = any(getattr(p, key) != "Never" and not p.disabled for p in pools.value or [])
    return Fact.of(value, f"{encap} mode of the enabled pools ({pools.source})")


def _typha(store: ObjectStore, namespace: str) -> Fact[bool]:
    if not store.has_listed(DEPLOYMENT):
        return Fact.missing("the input has no Deployment objects")
    found = store.get(DEPLOYMENT, namespace, "calico-typha")
    return Fact.of(found is not None, ref_text(found) if found else f"no Deployment {namespace}/calico-typha")


def _bgp_configuration(store: ObjectStore) -> Fact[CalicoBGPFacts]:
    configs = store.of(*calico("BGPConfiguration"))
    default = next((c for c in configs if name_of(c) == "default"), None)
    if default is None:
        if store.has_listed(*calico("BGPConfiguration")):
            return Fact.of(
                CalicoBGPFacts(source="Calico defaults (no BGPConfiguration 'default')"),
                "Calico defaults: node-to-node mesh on, AS 64512",
            )
        return Fact.missing("the input has no Calico BGPConfiguration objects")
    spec = default.get("spec") or {}

    def cidrs(key: str) -> list[str]:
        return [str(x.get("cidr")) for x in spec.get(key) or [] if isinstance(x, dict) and x.get("cidr")]

    asn = spec.get("asNumber")
    return Fact.of(
        CalicoBGPFacts(
            node_to_node_mesh=bool(spec.get("nodeToNodeMeshEnabled", True)),
            as_number=asn_value(asn) if asn is not None else 64512,
            service_cluster_ips=cidrs("serviceClusterIPs"),
            service_external_ips=cidrs("serviceExternalIPs"),
            service_load_balancer_ips=cidrs("serviceLoadBalancerIPs"),
            source=ref_text(default),
        ),
        ref_text(default),
    )


def _bgp_peer(p: Obj) -> BGPPeerFacts:
    spec = p.get("spec") or {}
    asn = spec.get("asNumber")
    return BGPPeerFacts(
        name=name_of(p),
        peer_ip=str(spec["peerIP"]) if spec.get("peerIP") else None,
        as_number=asn_value(asn) if asn is not None else None,
        node=str(spec["node"]) if spec.get("node") else None,
        node_selector=str(spec["nodeSelector"]) if spec.get("nodeSelector") else None,
        peer_selector=str(spec["peerSelector"]) if spec.get("peerSelector") else None,
        source=ref_text(p),
    )


def _route_reflectors(store: ObjectStore) -> list[RouteReflectorFacts]:
    out: dict[str, RouteReflectorFacts] = {}
    for n in store.of(*calico("Node")):
        cid = dig(n, "spec", "bgp", "routeReflectorClusterID")
        if cid:
            out[name_of(n)] = RouteReflectorFacts(node=name_of(n), cluster_id=str(cid), source=ref_text(n))
    for n in store.of(NODE):
        cid = (meta(n).get("annotations") or {}).get("projectcalico.org/RouteReflectorClusterID")
        if cid and name_of(n) not in out:
            out[name_of(n)] = RouteReflectorFacts(
                node=name_of(n),
                cluster_id=str(cid),
                source=f"{ref_text(n)} annotation projectcalico.org/RouteReflectorClusterID",
            )
    return sorted(out.values(), key=lambda r: r.node)


def _nodes_bgp(store: ObjectStore) -> list[CalicoNodeBGPFacts]:
    out: dict[str, CalicoNodeBGPFacts] = {}
    for n in store.of(NODE):
        ann = meta(n).get("annotations") or {}
        if any(k in ann for k in CALICO_NODE_ANNOTATIONS):
            asn = ann.get("projectcalico.org/ASNumber")
            out[name_of(n)] = CalicoNodeBGPFacts(
                node=name_of(n),
                ipv4_address=ann.get("projectcalico.org/IPv4Address"),
                as_number=asn_value(asn) if asn else None,
                route_reflector_cluster_id=ann.get("projectcalico.org/RouteReflectorClusterID"),
            )
    for n in store.of(*calico("Node")):
        bgp = dig(n, "spec", "bgp") or {}
        asn = bgp.get("asNumber")
        out[name_of(n)] = CalicoNodeBGPFacts(
            node=name_of(n),
            ipv4_address=bgp.get("ipv4Address"),
            as_number=asn_value(asn) if asn else None,
            route_reflector_cluster_id=bgp.get("routeReflectorClusterID"),
        )
    return sorted(out.values(), key=lambda r: r.node)


def _autodetection(
    installation: Obj | None, node_c: dict[str, Any] | None, node_ds: Obj | None, backend: Fact[str]
) -> Fact[str]:
    if installation is not None:
        method = dig(installation, "spec", "calicoNetwork", "nodeAddressAutodetectionV4")
        if isinstance(method, dict) and method:
            key, value = next(iter(method.items()))
            return Fact.of(f"{key}={_scalar_text(value)}", f"{ref_text(installation)} nodeAddressAutodetectionV4")
        return Fact.of(
            "firstFound=true",
            f"{ref_text(installation)} (nodeAddressAutodetectionV4 unset: operator default)",
        )
    if node_c is not None:
        if backend.value == "none":  # policy only (Canal): calico-node configures no node address at all
            return Fact.of(
                "none",
                f"{ref_text(node_ds or {})} env CALICO_NETWORKING_BACKEND=none: calico-node detects no node address",
            )
        if (env_value(node_c, "IP") or "").strip().lower() == "none":
            return Fact.of("none", f"{ref_text(node_ds or {})} env IP=none: calico-node detects no IPv4 address")
        value = env_value(node_c, "IP_AUTODETECTION_METHOD")
        if value:
            return Fact.of(value, f"{ref_text(node_ds or {})} env IP_AUTODETECTION_METHOD")
        return Fact.of("first-found", f"{ref_text(node_ds or {})} (IP_AUTODETECTION_METHOD unset: Calico default)")
    return Fact.missing("neither calico-node's DaemonSet nor a tigera Installation was seen")


def _networking_backend(
    store: ObjectStore, installation: Obj | None, node_c: dict[str, Any] | None, node_ds: Obj | None
) -> Fact[str]:
    if installation is not None:
        bgp = dig(installation, "spec", "calicoNetwork", "bgp")
        return Fact.of(
            "bird" if bgp in (None, "Enabled") else "vxlan",
            f"{ref_text(installation)} spec.calicoNetwork.bgp",
        )
    if node_c is not None:
        ns = namespace_of(node_ds or {})

        def configmap(name: str, key: str) -> str | None:
            value = dig(store.get(CONFIGMAP, ns, name) or {}, "data", key)
            return str(value) if value is not None else None

        value = env_value(node_c, "CALICO_NETWORKING_BACKEND", configmap)
        if value:
            return Fact.of(value, f"{ref_text(node_ds or {})} env CALICO_NETWORKING_BACKEND")
        return Fact.of("bird", f"{ref_text(node_ds or {})} (CALICO_NETWORKING_BACKEND unset: Calico's default)")
    return Fact.missing("neither calico-node's DaemonSet nor a tigera Installation was seen")


# --- Flannel ------------------------------------------------------------------------------------------------

FLANNEL_DEFAULT_PORT = {"vxlan": 8472, "udp": 8285}


def flannel_facts(store: ObjectStore, ds: Obj, *, canal: bool) -> FlannelFacts:
    ns = namespace_of(ds)
    cm_names = ("canal-config",) if canal else ("kube-flannel-cfg", "kube-flannel-config", "flannel-cfg")
    cm = next((store.get(CONFIGMAP, ns, n) for n in cm_names if store.get(CONFIGMAP, ns, n)), None)
    if cm is None:
        cm = next((c for c in store.of(CONFIGMAP) if name_of(c) in cm_names), None)
    flannel_c = next((c for c in containers(ds) if "flannel" in str(c.get("name", ""))), None)
    args = args_of(flannel_c) if flannel_c else []
    ip_masq: Fact[bool] = (
        Fact.of(flag(args, "ip-masq") == "true", f"{ref_text(ds)} flannel container args")
        if flannel_c
        else Fact.missing("no flannel container in the DaemonSet")
    )
    base = {
        "namespace": ns,
        "daemonset": name_of(ds),
        "configmap": name_of(cm) if cm else "",
        "ip_masq": ip_masq,
        "canal": canal,
    }
    if cm is None:
        why = f"no flannel ConfigMap ({', '.join(cm_names)}) seen in namespace {ns}"
        return FlannelFacts(
            network=Fact.missing(why),
            backend_type=Fact.missing(why),
            backend_port=Fact.missing(why),
            vni=Fact.missing(why),
            direct_routing=Fact.missing(why),
            **base,
        )
    src = f"{ref_text(cm)} net-conf.json"
    raw = dig(cm, "data", "net-conf.json")
    try:
        conf = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as e:
        conf = None
        raw_error = f"{src} is not valid JSON: {e.msg} at line {e.lineno}"
    else:
        raw_error = f"{src} is missing"
    if not isinstance(conf, dict):
        return FlannelFacts(
            network=Fact.missing(raw_error),
            backend_type=Fact.missing(raw_error),
            backend_port=Fact.missing(raw_error),
            vni=Fact.missing(raw_error),
            direct_routing=Fact.missing(raw_error),
            **base,
        )
    check_embedded(conf, FLANNEL_NET_CONF, cm, "data.net-conf.json")
    backend = conf.get("Backend") or {}
    btype = str(backend.get("Type", "udp")).lower()
    port = backend.get("Port")
    return FlannelFacts(
        network=Fact.of(str(conf["Network"]), src) if conf.get("Network") else Fact.missing(f"{src} has no Network"),
        backend_type=Fact.of(btype, src),
        backend_port=Fact.of(int(str(port)), src)
        if port
        else Fact.of(FLANNEL_DEFAULT_PORT.get(btype, 0), f"{src} (Port unset: flannel's default for {btype})"),
        vni=Fact.of(int(str(backend.get("VNI") or 1)), src),
        direct_routing=Fact.of(bool(backend.get("DirectRouting", False)), src),
        **base,
    )


# --- Cilium -------------------------------------------------------------------------------------------------


def cilium_facts(store: ObjectStore, ds: Obj | None) -> CiliumFacts:
    cm = store.get(CONFIGMAP, None, "cilium-config")
    data: dict[str, str] = {str(k): str(v) for k, v in (cm or {}).get("data", {}).items()} if cm else {}
    ns = namespace_of(cm) if cm else namespace_of(ds or {}) or "kube-system"
    src = ref_text(cm) if cm else ""
    agent = container(ds, "cilium-agent") if ds else None

    def from_config(key: str, *, default: str | None = None, what: str = "") -> Fact[str]:
        if not cm:
            return Fact.missing("ConfigMap cilium-config not seen")
        if key in data:
            return Fact.of(data[key], f"{src} {key}")
        if default is not None:
            return Fact.of(default, f"{src} ({key} unset: Cilium's default{what})")
        return Fact.missing(f"{src} has no {key}")

    routing = from_config("routing-mode")
    if not routing.known and "tunnel" in data:
        routing = Fact.of("native" if data["tunnel"] == "disabled" else "tunnel", f"{src} tunnel")
    tunnel = from_config("tunnel-protocol")
    if not tunnel.known and "tunnel" in data and data["tunnel"] != "disabled":
        tunnel = Fact.of(data["tunnel"], f"{src} tunnel")
    annotate = from_config("annotate-k8s-node", default="false")
    version: Fact[str] = (
        Fact.of(str(image_tag(agent.get("image"))), f"image of {ref_text(ds or {})}")
        if agent and image_tag(agent.get("image"))
        else Fact.missing("no cilium-agent container image seen")
    )
    return CiliumFacts(
        namespace=ns,
        version=version,
        ipam_mode=from_config("ipam", default="cluster-pool"),
        routing_mode=routing,
        tunnel_protocol=tunnel,
        kube_proxy_replacement=from_config("kube-proxy-replacement", default="false"),
        annotate_k8s_node=Fact(value=annotate.value == "true", source=annotate.source, unknown=annotate.unknown),
        config=data,
    )
