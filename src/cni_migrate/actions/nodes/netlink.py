"""Links, addresses, routes, neighbours and FDB entries of the node's network namespace, through pyroute2.

The records are plain dicts (JSON in the backup): enough to tell owned state from the rest and to recreate
the owned links (vxlan, bridge, dummy) with their MAC, MTU, addresses, routes, permanent neighbours and FDB
entries. A veth whose peer lived in a pod's network namespace cannot be recreated: restore says so.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cni_migrate.actions.nodes.owners import CALICO_ROUTE_PROTOCOLS, Owner, link_owner

Record = dict[str, Any]

IFF_UP = 0x1
NUD_PERMANENT = 0x80
RTNH_F_ONLINK = 0x4
RTPROT_KERNEL = 2
RT_TABLE_LOCAL = 255
RTN_NAMES = {1: "unicast", 2: "local", 3: "broadcast", 5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
# vxlan attributes worth carrying over when a vxlan link is recreated.
_VXLAN_ATTRS = {
    "IFLA_VXLAN_ID": "vxlan_id",
    "IFLA_VXLAN_PORT": "vxlan_port",
    "IFLA_VXLAN_LOCAL": "vxlan_local",
    "IFLA_VXLAN_LOCAL6": "vxlan_local6",
    "IFLA_VXLAN_LEARNING": "vxlan_learning",
    "IFLA_VXLAN_TTL": "vxlan_ttl",
    "IFLA_VXLAN_GBP": "vxlan_gbp",
    "IFLA_VXLAN_UDP_CSUM": "vxlan_udp_csum",
}
RECREATABLE_KINDS = frozenset({"vxlan", "bridge", "dummy"})


@contextmanager
def ipr() -> Iterator[IPRoute]:
    ip = IPRoute()
    try:
        yield ip
    finally:
        ip.close()


def _links(ip: IPRoute) -> list[Record]:
    raw = list(ip.get_links())
    names = {m["index"]: m.get("ifname") for m in raw}
    out: list[Record] = []
    for m in raw:
        info = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        data = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        master = names.get(m.get("IFLA_MASTER")) if m.get("IFLA_MASTER") else None
        rec: Record = {
            "index": m["index"],
            "name": m.get("ifname"),
            "kind": info,
            "mac": m.get("IFLA_ADDRESS"),
            "mtu": m.get("IFLA_MTU"),
            "up": bool(m["flags"] & IFF_UP),
            "master": master,
            "owner": None,
        }
        if info == "vxlan" and data is not None:
            attrs = dict(data["attrs"])
            rec["vxlan"] = {k: attrs[a] for a, k in _VXLAN_ATTRS.items() if a in attrs}
            link = attrs.get("IFLA_VXLAN_LINK")
            rec["vxlan_dev"] = names.get(link) if link else None
        owner = link_owner(rec["name"], info, master)
        rec["owner"] = owner.value if owner else None
        out.append(rec)
    return out


def _addresses(ip: IPRoute, names: dict[int, str]) -> list[Record]:
    return [
        {
            "link": names.get(a["index"]),
            "family": a["family"],
            "address": a.get("IFA_ADDRESS"),
            "local": a.get("IFA_LOCAL"),
            "prefixlen": a["prefixlen"],
            "scope": a["scope"],
        }
        for a in ip.get_addr()
    ]


def _routes(ip: IPRoute, names: dict[int, str]) -> list[Record]:
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in ip.route("dump", family=family):
            table = r.get("RTA_TABLE") or r["table"]
            out.append(
                {
                    "family": family,
                    "dst": r.get("RTA_DST"),
                    "dst_len": r["dst_len"],
                    "gateway": r.get("RTA_GATEWAY"),
                    "oif": names.get(r.get("RTA_OIF")) if r.get("RTA_OIF") else None,
                    "prefsrc": r.get("RTA_PREFSRC"),
                    "priority": r.get("RTA_PRIORITY"),
                    "table": table,
                    "proto": r["proto"],
                    "scope": r["scope"],
                    "type": r["type"],
                    "flags": r["flags"] & RTNH_F_ONLINK,
                }
            )
    return out


def _neighbours(ip: IPRoute, owned: dict[int, str]) -> tuple[list[Record], list[Record]]:
    neigh: list[Record] = []
    fdb: list[Record] = []
    for idx, name in owned.items():
        for n in ip.get_neighbours(ifindex=idx):
            if n["state"] & NUD_PERMANENT and n.get("NDA_DST"):
                neigh.append(
                    {"link": name, "family": n["family"], "dst": n.get("NDA_DST"), "lladdr": n.get("NDA_LLADDR")}
                )
        try:
            entries = list(ip.fdb("dump", ifindex=idx))
        except NetlinkError:
            entries = []
        for f in entries:
            if f["ifindex"] == idx and f.get("NDA_DST") and f["state"] & NUD_PERMANENT:
                fdb.append({"link": name, "lladdr": f.get("NDA_LLADDR"), "dst": f.get("NDA_DST")})
    return neigh, fdb


def read_state() -> Record:
    """Everything netlink shows of this namespace, with ``owner`` marked on the links."""
    with ipr() as ip:
        links = _links(ip)
        names = {rec["index"]: rec["name"] for rec in links}
        owned = {rec["index"]: rec["name"] for rec in links if rec["owner"]}
        neigh, fdb = _neighbours(ip, owned)
        return {
            "links": links,
            "addresses": _addresses(ip, names),
            "routes": _routes(ip, names),
            "neighbours": neigh,
            "fdb": fdb,
        }


def route_owner(route: Record, link_owners: dict[str, str], flannel_networks: list[str]) -> Owner | None:
    """Calico by protocol (bird 12, Felix 80, blackholes included); anyone's by the owned link the route uses;
    Flannel's host-gw routes by their destination inside Flannel's network, through a gateway."""
    if route["oif"] in link_owners:
        return Owner(link_owners[route["oif"]])
    if route["proto"] in CALICO_ROUTE_PROTOCOLS:
        return Owner.calico
    if route["gateway"] and route["dst"] and route["table"] != RT_TABLE_LOCAL:
        dst = ipaddress.ip_network(f"{route['dst']}/{route['dst_len']}", strict=False)
        for net in flannel_networks:
            n = ipaddress.ip_network(net, strict=False)
            if dst.version == n.version and dst.subnet_of(n):  # type: ignore[arg-type]
                return Owner.flannel
    return None


def route_text(r: Record) -> str:
    dst = f"{r['dst']}/{r['dst_len']}" if r["dst"] else "default"
    parts = [RTN_NAMES.get(r["type"], str(r["type"])) if r["type"] != 1 else "", dst]
    if r["gateway"]:
        parts.append(f"via {r['gateway']}")
    if r["oif"]:
        parts.append(f"dev {r['oif']}")
    parts.append(f"proto {r['proto']}")
    if r["table"] not in (254, None):
        parts.append(f"table {r['table']}")
    if r["flags"]:
        parts.append("onlink")
    return " ".join(p for p in parts if p)


def _route_args(ip: IPRoute, r: Record) -> dict[str, Any]:
    args: dict[str, Any] = {
        "family": r["family"],
        "dst_len": r["dst_len"],
        "table": r["table"],
        "proto": r["proto"],
        "scope": r["scope"],
        "type": r["type"],
    }
    if r["dst"]:
        args["dst"] = r["dst"]
    if r["gateway"]:
        args["gateway"] = r["gateway"]
    if r["oif"]:
        found = ip.link_lookup(ifname=r["oif"])
        if not found:
            raise NodeNetlinkError(f"route {route_text(r)}: link {r['oif']} does not exist")
        args["oif"] = found[0]
    if r["priority"] is not None:
        args["priority"] = r["priority"]
    if r["prefsrc"]:
        args["prefsrc"] = r["prefsrc"]
    if r["flags"]:
        args["flags"] = RTNH_F_ONLINK
    return args


class NodeNetlinkError(Exception):
    pass


def delete_route(r: Record) -> bool:
    with ipr() as ip:
        try:
            ip.route("del", **_route_args(ip, r))
        except NetlinkError as e:
            if e.code in (3, 19):  # ESRCH, ENODEV: already gone
                return False
            raise NodeNetlinkError(f"cannot delete route {route_text(r)}: {e}") from e
        except NodeNetlinkError:
            return False
    return True


def add_route(r: Record) -> bool:
    with ipr() as ip:
        try:
            ip.route("add", **_route_args(ip, r))
        except NetlinkError as e:
            if e.code == 17:  # EEXIST
                return False
            raise NodeNetlinkError(f"cannot add route {route_text(r)}: {e}") from e
    return True


def delete_link(name: str) -> bool:
    with ipr() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ip.link("del", index=found[0])
        except NetlinkError as e:
            if e.code == 19:
                return False
            if e.code in {95, 1}:  # EOPNOTSUPP/EPERM: tunl0 and other fallback devices stay while loaded
                ip.link("set", index=found[0], state="down")
                for a in ip.get_addr(index=found[0]):
                    ip.addr(
                        "del",
                        index=found[0],
                        address=a.get("IFA_LOCAL") or a.get("IFA_ADDRESS"),
                        prefixlen=a["prefixlen"],
                    )
                return True
            raise NodeNetlinkError(f"cannot delete link {name}: {e}") from e
    return True


def recreate_link(rec: Record, addresses: list[Record]) -> bool:
    """Create an owned link of a recreatable kind again, as it was. False if it exists already."""
    with ipr() as ip:
        if ip.link_lookup(ifname=rec["name"]):
            return False
        args: dict[str, Any] = {"ifname": rec["name"], "kind": rec["kind"]}
        if rec["kind"] == "vxlan":
            args.update(rec.get("vxlan", {}))
            if rec.get("vxlan_dev"):
                dev = ip.link_lookup(ifname=rec["vxlan_dev"])
                if dev:
                    args["vxlan_link"] = dev[0]
        ip.link("add", **args)
        idx = ip.link_lookup(ifname=rec["name"])[0]
        ip.link("set", index=idx, address=rec["mac"], mtu=rec["mtu"])
        if rec.get("master"):
            master = ip.link_lookup(ifname=rec["master"])
            if master:
                ip.link("set", index=idx, master=master[0])
        for a in addresses:
            addr = a["local"] or a["address"]
            if a["family"] == socket.AF_INET6 and a["scope"] == 253:  # link-local: the kernel makes it
                continue
            try:
                ip.addr("add", index=idx, address=addr, prefixlen=a["prefixlen"], family=a["family"])
            except NetlinkError as e:
                if e.code != 17:
                    raise
        if rec["up"]:
            ip.link("set", index=idx, state="up")
    return True


def add_neighbour(n: Record) -> bool:
    with ipr() as ip:
        found = ip.link_lookup(ifname=n["link"])
        if not found:
            return False
        try:
            ip.neigh("add", dst=n["dst"], lladdr=n["lladdr"], ifindex=found[0], state=NUD_PERMANENT, family=n["family"])
        except NetlinkError as e:
            if e.code == 17:
                return False
            raise
    return True


def add_fdb(f: Record) -> bool:
    with ipr() as ip:
        found = ip.link_lookup(ifname=f["link"])
        if not found:
            return False
        try:
            ip.fdb("append", ifindex=found[0], lladdr=f["lladdr"], dst=f["dst"], state=NUD_PERMANENT)
        except NetlinkError as e:
            if e.code == 17:
                return False
            raise
    return True
