"""BGP after Calico: kube-router (as the lossy seed does) or Cilium's BGP control plane, from Calico's
BGPConfiguration, BGPPeers, route reflectors and node BGP settings.

What is translated:

* the cluster ASN (``BGPConfiguration.asNumber``, Calico's default 64512) and per-node ASNs;
* every BGPPeer with a ``peerIP``: its ASN, and the nodes it applies to (``nodeSelector`` or ``node``);
* what Calico advertised: pod CIDRs always, service cluster/external/LoadBalancer IPs when the BGPConfiguration
  lists ``serviceClusterIPs`` / ``serviceExternalIPs`` / ``serviceLoadBalancerIPs``;
* eBGP multihop: Calico's BIRD peers external routers with ``multihop`` (TTL 64), so routers outside a node's
  subnet keep working.

kube-router keeps Calico's topology: global peers as ``--peer-router-*`` arguments, node-scoped peers and node
ASNs as node annotations, route reflectors as ``kube-router.io/rr.server``/``rr.client`` annotations.
Cilium's BGP control plane has no route reflector: every node peers with the external routers itself, so
selector terms that only picked route reflectors are dropped (recorded as a warning); peers that are Calico
nodes (``peerSelector``) have no equivalent and are reported.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cni_migrate.analysis.plan.options import Resolved
from cni_migrate.analysis.selectors import (
    SelectorError,
    Untranslatable,
    calico_matches,
    calico_to_label_selector,
    matches_label_selector,
    parse_calico_selector,
)
from cni_migrate.facts.model import BGPPeerFacts, CalicoFacts

CALICO_DEFAULT_ASN = 64512
BIRD_MULTIHOP_TTL = 64
ADVERTISE_LABEL = {"bgp.cni-migrate.io/advertise": "cilium"}
OPT_OUT_KEY = "bgp.cni-migrate.io/advertise"  # services labelled "false" are not advertised


@dataclass
class BgpPlan:
    objects: list[dict[str, Any]] = field(default_factory=list)
    node_annotations: dict[str, dict[str, str | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # (address, ASN) of every external peer
    cluster_asn: int = CALICO_DEFAULT_ASN


def _calico(r: Resolved) -> CalicoFacts:
    calico = r.facts.cni.calico
    assert calico is not None, "BGP translation needs Calico facts"
    return calico


def _external_peers(calico: CalicoFacts) -> list[BGPPeerFacts]:
    return sorted((p for p in calico.bgp_peers if p.peer_ip), key=lambda p: p.name)


def _needs_multihop(r: Resolved, peer_ip: str) -> bool:
    """eBGP to a router outside the nodes' subnets (Calico node IPv4Address with its prefix) needs multihop."""
    try:
        ip = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    calico = _calico(r)
    subnets = set()
    for n in calico.nodes_bgp:
        if n.ipv4_address and "/" in n.ipv4_address:
            try:
                subnets.add(ipaddress.ip_interface(n.ipv4_address).network)
            except ValueError:
                continue
    if not subnets:
        return True  # unknown: keep Calico's behaviour (BIRD always allows multihop)
    return not any(ip in s for s in subnets)


def _advertise(calico: CalicoFacts) -> tuple[bool, bool, bool]:
    bgp = calico.bgp.value
    if bgp is None:
        return False, False, False
    return bool(bgp.service_cluster_ips), bool(bgp.service_external_ips), bool(bgp.service_load_balancer_ips)


def _rr_keys(calico: CalicoFacts) -> set[str]:
    """Label keys Calico uses to pick route reflectors (from BGPPeers that peer with other Calico nodes)."""
    keys: set[str] = set()
    for p in calico.bgp_peers:
        if p.peer_selector:
            try:
                sel = calico_to_label_selector(p.peer_selector)
            except (Untranslatable, SelectorError):
                continue
            keys.update((sel.get("matchLabels") or {}).keys())
            keys.update(e["key"] for e in sel.get("matchExpressions") or [])
    return keys


# --- kube-router --------------------------------------------------------------------------------------------


def kube_router(r: Resolved) -> BgpPlan:
    calico = _calico(r)
    out = BgpPlan()
    bgp = calico.bgp.value
    asn = bgp.as_number if bgp and bgp.as_number else CALICO_DEFAULT_ASN
    out.cluster_asn = asn
    nodes = r.facts.nodes
    global_peers: list[BGPPeerFacts] = []
    node_peers: dict[str, list[BGPPeerFacts]] = defaultdict(list)
    for p in _external_peers(calico):
        assert p.peer_ip is not None
        out.peers.append((p.peer_ip, p.as_number or asn))
        if p.node:
            node_peers[p.node].append(p)
            continue
        sel_text = p.node_selector or "all()"
        try:
            expr = parse_calico_selector(sel_text)
        except SelectorError as e:
            out.warnings.append(f"BGPPeer {p.name}: nodeSelector {sel_text!r} cannot be parsed ({e}); not translated")
            continue
        if sel_text.strip() == "all()":
            global_peers.append(p)
            continue
        for n in nodes:
            if calico_matches(expr, n.labels):
                node_peers[n.name].append(p)
    for p in calico.bgp_peers:
        if p.peer_selector and not calico.route_reflectors:
            out.warnings.append(
                f"BGPPeer {p.name} peers Calico nodes selected by {p.peer_selector!r}; kube-router's iBGP "
                "(--enable-ibgp) replaces it"
            )
    adv_cluster, adv_external, adv_lb = _advertise(calico)
    multihop = any(_needs_multihop(r, ip) for ip, peer_asn in out.peers if peer_asn != asn)
    args = [
        "--run-router=true",
        "--run-firewall=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-pod-egress=false",
        "--enable-ibgp=true",
        "--enable-overlay=true",
        "--advertise-pod-cidr=true",
        f"--advertise-cluster-ip={str(adv_cluster).lower()}",
        f"--advertise-external-ip={str(adv_external).lower()}",
        f"--advertise-loadbalancer-ip={str(adv_lb).lower()}",
        "--bgp-graceful-restart=true",
    ]
    if global_peers:
        args.append("--peer-router-ips=" + ",".join(str(p.peer_ip) for p in global_peers))
        args.append("--peer-router-asns=" + ",".join(str(p.as_number or asn) for p in global_peers))
    args.append(f"--cluster-asn={asn}")
    if multihop:
        args.append(f"--peer-router-multihop-ttl={BIRD_MULTIHOP_TTL}")
        out.notes.append(
            f"eBGP peers lie outside the nodes' subnets; multihop TTL {BIRD_MULTIHOP_TTL} as Calico's BIRD used"
        )
    if calico.route_reflectors and bgp is not None and not bgp.node_to_node_mesh:
        args.append("--nodes-full-mesh=false")

    annotations: dict[str, dict[str, str | None]] = defaultdict(dict)
    for node, peers in sorted(node_peers.items()):
        annotations[node]["kube-router.io/peer.ips"] = ",".join(str(p.peer_ip) for p in peers)
        annotations[node]["kube-router.io/peer.asns"] = ",".join(str(p.as_number or asn) for p in peers)
    for nb in calico.nodes_bgp:
        if nb.as_number and nb.as_number != asn:
            annotations[nb.node]["kube-router.io/node.asn"] = str(nb.as_number)
    if calico.route_reflectors:
        rr = {x.node: x.cluster_id for x in calico.route_reflectors}
        cluster_ids = sorted(set(rr.values()))
        for n in nodes:
            if n.name in rr:
                annotations[n.name]["kube-router.io/rr.server"] = rr[n.name]
            else:
                annotations[n.name]["kube-router.io/rr.client"] = cluster_ids[0]
        if len(cluster_ids) > 1:
            out.warnings.append(
                f"Calico has {len(cluster_ids)} route-reflector cluster IDs; kube-router clients follow the first, "
                f"{cluster_ids[0]}"
            )
    out.node_annotations = dict(annotations)
    out.objects = kube_router_manifest(r, args)
    return out


def kube_router_manifest(r: Resolved, args: list[str]) -> list[dict[str, Any]]:
    """kube-router's ``generic-kuberouter-only-advertise-routes.yaml`` with the translated arguments."""
    ns = "kube-system"
    labels = {"k8s-app": "kube-router", "tier": "node"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-router", "namespace": ns}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "kube-router"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                    "verbs": ["list", "get", "watch"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": ["list", "get", "watch"],
                },
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
                {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "kube-router"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-router"},
            "subjects": [{"kind": "ServiceAccount", "name": "kube-router", "namespace": ns}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-router", "namespace": ns, "labels": dict(labels)},
            "spec": {
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": "kube-router",
                        "hostNetwork": True,
                        "hostPID": True,
                        "containers": [
                            {
                                "name": "kube-router",
                                "image": r.opts.kube_router_image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": args,
                                "env": [
                                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                ],
                                "livenessProbe": {
                                    "httpGet": {"path": "/healthz", "port": 20244},
                                    "initialDelaySeconds": 10,
                                    "periodSeconds": 3,
                                },
                                "resources": {"requests": {"cpu": "250m", "memory": "250Mi"}},
                                "securityContext": {"privileged": True},
                                "volumeMounts": [
                                    {"name": "xtables-lock", "mountPath": "/run/xtables.lock", "readOnly": False}
                                ],
                            }
                        ],
                        "tolerations": [
                            {"effect": "NoSchedule", "operator": "Exists"},
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"effect": "NoExecute", "operator": "Exists"},
                        ],
                        "volumes": [
                            {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}}
                        ],
                    },
                },
            },
        },
    ]


# --- Cilium BGP control plane (BGPv2) ----------------------------------------------------------------------------


def _strip_keys(selector: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ml = {k: v for k, v in (selector.get("matchLabels") or {}).items() if k not in keys}
    me = [e for e in selector.get("matchExpressions") or [] if e["key"] not in keys]
    if ml:
        out["matchLabels"] = ml
    if me:
        out["matchExpressions"] = me
    return out


def _name(text: str) -> str:
    safe = "".join(c if c.isalnum() or c == "-" else "-" for c in text.lower()).strip("-")
    return safe[:63].strip("-") or "peer"


def cilium_bgp(r: Resolved) -> BgpPlan:
    calico = _calico(r)
    api = r.version.bgp_api
    assert api is not None
    out = BgpPlan()
    bgp = calico.bgp.value
    asn = bgp.as_number if bgp and bgp.as_number else CALICO_DEFAULT_ASN
    out.cluster_asn = asn
    rr_keys = _rr_keys(calico) if calico.route_reflectors else set()
    if calico.route_reflectors:
        out.warnings.append(
            f"Calico route reflectors ({', '.join(x.node for x in calico.route_reflectors)}) have no Cilium "
            "equivalent: every selected node peers with the external routers directly; make sure the routers accept "
            "sessions from every node"
            + (f" (selector terms on {', '.join(sorted(rr_keys))} dropped)" if rr_keys else "")
        )
    for p in calico.bgp_peers:
        if p.peer_selector:
            out.warnings.append(
                f"BGPPeer {p.name} peers Calico nodes ({p.peer_selector!r}); Cilium nodes do not peer with each other, "
                "so it is not translated"
            )
    # Group external peers by the nodes they apply to.
    groups: dict[str, tuple[dict[str, Any], list[BGPPeerFacts]]] = {}
    for p in _external_peers(calico):
        assert p.peer_ip is not None
        out.peers.append((p.peer_ip, p.as_number or asn))
        if p.node:
            sel: dict[str, Any] = {"matchLabels": {"kubernetes.io/hostname": p.node}}
        else:
            try:
                sel = _strip_keys(calico_to_label_selector(p.node_selector or "all()"), rr_keys)
            except (Untranslatable, SelectorError) as e:
                out.warnings.append(
                    f"BGPPeer {p.name}: nodeSelector {p.node_selector!r} has no label-selector equivalent ({e}); "
                    "not translated: write its CiliumBGPClusterConfig nodeSelector by hand"
                )
                continue
        key = repr(sorted(sel.items()))
        groups.setdefault(key, (sel, []))[1].append(p)
    overlapping = _groups_overlap(r, [g[0] for g in groups.values()])
    if overlapping:
        out.warnings.append(
            "BGP peers apply to overlapping node sets, and a node may be selected by one CiliumBGPClusterConfig only: "
            f"{overlapping}; merge the peers into one group by hand"
        )
    adv_cluster, adv_external, adv_lb = _advertise(calico)
    multihop_peers = {ip for ip, peer_asn in out.peers if peer_asn != asn and _needs_multihop(r, ip)}

    peer_config = {
        "apiVersion": api,
        "kind": "CiliumBGPPeerConfig",
        "metadata": {"name": "cni-migrate-peer"},
        "spec": {
            "gracefulRestart": {"enabled": True, "restartTimeSeconds": 120},
            "families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": dict(ADVERTISE_LABEL)}}],
        },
    }
    objects: list[dict[str, Any]] = []
    if multihop_peers:
        mh = {**peer_config, "metadata": {"name": "cni-migrate-peer-multihop"}}
        mh["spec"] = {**peer_config["spec"], "ebgpMultihop": BIRD_MULTIHOP_TTL}  # type: ignore[dict-item]
        objects.append(mh)
        out.notes.append(
            f"peers {', '.join(sorted(multihop_peers))} lie outside the nodes' subnets: eBGP multihop TTL "
            f"{BIRD_MULTIHOP_TTL}, as Calico's BIRD used"
        )
    if len(multihop_peers) < len(out.peers):
        objects.insert(0, peer_config)
    for i, (sel, peers) in enumerate(sorted(groups.values(), key=lambda g: g[1][0].name)):
        name = "cni-migrate" if len(groups) == 1 else f"cni-migrate-{_name(peers[0].name)}"
        spec: dict[str, Any] = {
            "bgpInstances": [
                {
                    "name": f"asn-{asn}",
                    "localASN": asn,
                    "peers": [
                        {
                            "name": _name(p.name),
                            "peerAddress": p.peer_ip,
                            "peerASN": p.as_number or asn,
                            "peerConfigRef": {
                                "name": "cni-migrate-peer-multihop"
                                if p.peer_ip in multihop_peers
                                else "cni-migrate-peer"
                            },
                        }
                        for p in peers
                    ],
                }
            ]
        }
        if sel:
            spec["nodeSelector"] = sel
        objects.append({"apiVersion": api, "kind": "CiliumBGPClusterConfig", "metadata": {"name": name}, "spec": spec})
        del i
    advertisements: list[dict[str, Any]] = [{"advertisementType": "PodCIDR"}]
    addresses = [
        a for a, on in (("ClusterIP", adv_cluster), ("ExternalIP", adv_external), ("LoadBalancerIP", adv_lb)) if on
    ]
    if addresses:
        advertisements.append(
            {
                "advertisementType": "Service",
                "service": {"addresses": addresses},
                "selector": {"matchExpressions": [{"key": OPT_OUT_KEY, "operator": "NotIn", "values": ["false"]}]},
            }
        )
    objects.append(
        {
            "apiVersion": api,
            "kind": "CiliumBGPAdvertisement",
            "metadata": {"name": "cni-migrate", "labels": dict(ADVERTISE_LABEL)},
            "spec": {"advertisements": advertisements},
        }
    )
    if adv_lb:
        lbs = bgp.service_load_balancer_ips if bgp else []
        out.warnings.append(
            f"Calico advertised LoadBalancer addresses ({', '.join(lbs)}); Cilium advertises the addresses services "
            "already have, but assigns none unless a CiliumLoadBalancerIPPool exists: keep the current LoadBalancer "
            "IP allocator or create a pool"
        )
    for nb in calico.nodes_bgp:
        if nb.as_number and nb.as_number != asn:
            out.warnings.append(
                f"node {nb.node} uses AS {nb.as_number} in Calico; the CiliumBGPClusterConfig gives every node "
                f"AS {asn} (use a CiliumBGPNodeConfigOverride to keep it)"
            )
    out.objects = objects
    return out


def _groups_overlap(r: Resolved, selectors: list[dict[str, Any]]) -> str:
    if len(selectors) < 2:
        return ""
    for n in r.facts.nodes:
        hits = [i for i, s in enumerate(selectors) if matches_label_selector(s or None, n.labels)]
        if len(hits) > 1:
            return f"node {n.name} matches {len(hits)} peer groups"
    return ""


def bgp_plan(r: Resolved) -> BgpPlan | None:
    if r.bgp == "kube-router":
        return kube_router(r)
    if r.bgp == "cilium":
        return cilium_bgp(r)
    return None
