"""Which node state belongs to whom: the old CNI (Calico, Flannel) and kube-proxy.

Every predicate here names state by what its owner creates, with the source that creates it, so that
``clean`` removes exactly that and nothing else. State of kubelet (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY,
KUBE-FIREWALL), Docker, the host's own firewall and any other program is never matched.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable


class Owner(enum.StrEnum):
    calico = "calico"
    flannel = "flannel"
    kube_proxy = "kube-proxy"


# Calico: felix/rules/rule_defs.go (ChainNamePrefix = "cali"; every Felix chain is "cali-..."), felix/ipsets
# (IPSetNamePrefix "cali" + version "40"/"60"), felix/dataplane/linux (vxlan.calico, vxlan-v6.calico,
# wireguard.cali, wg-v6.cali, tunl0 of the ipip module), libcalico-go's veth names ("cali" + 11 hex chars
# of the workload endpoint's hash), confd's BIRD templates (routes "proto bird", blackholes of the local blocks)
# and Felix's route tables (RouteProtocol 80 for the VXLAN/no-encap routes and block blackholes).
_CALICO_LINKS = {"tunl0", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"}
_CALICO_VETH = re.compile(r"^cali[0-9a-f]{11}$")
# Flannel: pkg/backend/vxlan (flannel.<VNI>, flannel-v6.<VNI>), pkg/backend/wireguard (flannel-wg,
# flannel-wg-v6), pkg/trafficmngr/iptables (FLANNEL-POSTRTG, FLANNEL-FWD), pkg/trafficmngr/nftables (tables
# flannel-ipv4 / flannel-ipv6); cni0 is the bridge its CNI conflist asks the bridge plugin for.
_FLANNEL_LINK = re.compile(r"^(flannel(-v6)?\.\d+|flannel-wg(-v6)?|cni0)$")
# kube-proxy: pkg/proxy/ipvs (kube-ipvs0, KUBE-* ipsets), pkg/proxy/iptables and ipvs (KUBE-* chains),
# pkg/proxy/nftables (table "kube-proxy" in ip and ip6).
_KUBE_PROXY_LINKS = {"kube-ipvs0"}
# Chains kubelet creates and keeps using after kube-proxy is gone (pkg/kubelet/kubelet_network_linux.go):
# KUBE-FIREWALL only for IPv4 ("ipv6 doesn't have this issue"); kube-proxy's IPv6 KUBE-FIREWALL is its own.
KUBELET_CHAINS = frozenset({"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"})
KUBELET_CHAINS_IPV4 = KUBELET_CHAINS | {"KUBE-FIREWALL"}

ROUTE_PROTO_BIRD = 12
ROUTE_PROTO_CALICO = 80
CALICO_ROUTE_PROTOCOLS = frozenset({ROUTE_PROTO_BIRD, ROUTE_PROTO_CALICO})

NFT_TABLES: dict[Owner, frozenset[tuple[str, str]]] = {
    Owner.calico: frozenset({("ip", "calico"), ("ip6", "calico")}),
    Owner.flannel: frozenset({("ip", "flannel-ipv4"), ("ip6", "flannel-ipv6")}),
    Owner.kube_proxy: frozenset({("ip", "kube-proxy"), ("ip6", "kube-proxy")}),
}

# Files in the CNI configuration directory: the conflists and kubeconfigs their installers write.
_CNI_FILE = {
    Owner.calico: re.compile(r"calico", re.IGNORECASE),
    Owner.flannel: re.compile(r"flannel", re.IGNORECASE),
}


def chain_owner(chain: str, family: str = "ipv4") -> Owner | None:
    if chain.startswith("cali-"):
        return Owner.calico
    if chain.startswith("FLANNEL-"):
        return Owner.flannel
    if chain.startswith("KUBE-") and chain not in (KUBELET_CHAINS_IPV4 if family == "ipv4" else KUBELET_CHAINS):
        return Owner.kube_proxy
    return None


def ipset_owner(name: str) -> Owner | None:
    if name.startswith(("cali40", "cali60")):
        return Owner.calico
    if name.startswith("KUBE-"):
        return Owner.kube_proxy
    return None


def link_owner(name: str, kind: str | None, master: str | None) -> Owner | None:
    if name in _CALICO_LINKS or (kind == "veth" and _CALICO_VETH.match(name)):
        return Owner.calico
    if _FLANNEL_LINK.match(name) or (kind == "veth" and master == "cni0"):
        return Owner.flannel
    if name in _KUBE_PROXY_LINKS:
        return Owner.kube_proxy
    return None


def nft_table_owner(family: str, name: str) -> Owner | None:
    for owner, tables in NFT_TABLES.items():
        if (family, name) in tables:
            return owner
    return None


def cni_file_owner(name: str) -> Owner | None:
    for owner, pattern in _CNI_FILE.items():
        if pattern.search(name):
            return owner
    return None


def parse_owners(old_cni: str, kube_proxy: bool) -> frozenset[Owner]:
    """The owners a ``clean`` removes: ``--old-cni calico|flannel|canal|none`` plus ``--kube-proxy`` (Canal is
    Calico's policy on Flannel's network: both)."""
    owners: set[Owner] = set()
    if old_cni in ("calico", "flannel"):
        owners.add(Owner(old_cni))
    elif old_cni == "canal":
        owners |= {Owner.calico, Owner.flannel}
    elif old_cni != "none":
        raise ValueError(f"--old-cni: expected calico, flannel, canal or none, got {old_cni!r}")
    if kube_proxy:
        owners.add(Owner.kube_proxy)
    return frozenset(owners)


def names(owners: Iterable[Owner]) -> str:
    return ", ".join(sorted(o.value for o in owners)) or "nothing"
