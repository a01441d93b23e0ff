"""The shapes and values of the object fields the facts are read from, checked before anything is extracted.

A snapshot is user input: a field of the wrong type (labels as a list, taints as a string, a port "banana") or a
value that cannot be what it claims (a podCIDR "banana", an ASN of -1) is refused with one line naming the file,
the object, the field and what was expected, instead of crashing the extractor or passing into a plan.

A schema is plain data: a Python type (``str``, ``int``, ``bool``), :data:`SCALAR`, a value check (:class:`Check`),
a dict of field name -> schema (``"*"``: every other key), or a one-element list (every item). ``null`` is accepted
everywhere and means "not set". Fields the tool does not read are not looked at.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cni_migrate.facts.objects import (
    CONFIGMAP,
    DAEMONSET,
    DEPLOYMENT,
    NODE,
    PDB,
    POD,
    TIGERA_INSTALLATION,
    KindRef,
    Obj,
    ObjectStore,
    calico,
    ref_text,
)


class FactInputError(ValueError):
    """A field of an input object has the wrong type or an impossible value."""

    def __init__(self, obj: Obj | None, field: str, expected: str, found: Any) -> None:
        self.obj = obj
        self.field = field
        self.expected = expected
        self.found = describe(found)
        where = f"{ref_text(obj)}: " if obj is not None else ""
        super().__init__(f"{where}field {field}: expected {expected}, found {self.found}")


def describe(v: Any) -> str:
    """A short, non-Python description of a found value, for messages."""
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, str):
        text = v if len(v) <= 40 else v[:37] + "..."
        return f'the string "{text}"'
    if isinstance(v, int | float):
        return f"the number {v}"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing"
    return f"a {type(v).__name__}"


@dataclass(frozen=True)
class Check:
    """A value check: ``accept`` returns True for a good value."""

    expected: str
    accept: Callable[[Any], bool]


def _is_cidr(v: Any) -> bool:
    if not isinstance(v, str) or "/" not in v:
        return False
    try:
        ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        return False
    return True


def _is_ip(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        ipaddress.ip_address(v.strip())
    except ValueError:
        return False
    return True


def _is_interface(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        ipaddress.ip_interface(v.strip())
    except ValueError:
        return False
    return True


_PEER = re.compile(r"^\[(?P<v6>[0-9a-fA-F:.]+)\](:\d+)?$|^(?P<v4>[0-9.]+)(:\d+)?$")


def _is_peer_ip(v: Any) -> bool:
    """Calico's peerIP: an address, optionally with a port (``10.0.0.1:179``, ``[fd00::1]:179``)."""
    if _is_ip(v):
        return True
    m = _PEER.match(v) if isinstance(v, str) else None
    return m is not None and _is_ip(m.group("v6") or m.group("v4"))


def _int_value(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"\s*\d+\s*", v):
        return int(v)
    return None


def _is_int(v: Any) -> bool:
    return _int_value(v) is not None


def _is_asn(v: Any) -> bool:
    """A 32-bit AS number (0 < ASN < 2^32), as a number, a decimal string or Calico's dotted "high.low" form."""
    if isinstance(v, str) and re.fullmatch(r"\d+\.\d+", v.strip()):
        high, low = (int(x) for x in v.strip().split("."))
        return high < 65536 and low < 65536
    n = _int_value(v)
    return n is not None and 0 < n < 2**32


def _is_port(v: Any) -> bool:
    n = _int_value(v)
    return n is not None and 1 <= n <= 65535


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


SCALAR = Check("a string, number or boolean", lambda v: isinstance(v, str | int | float | bool))
INT = Check("an integer", _is_int)
CIDR = Check("a network in CIDR notation (e.g. 10.0.0.0/24)", _is_cidr)
IP = Check("an IP address", _is_ip)
INTERFACE = Check("an IP address, optionally with a prefix length", _is_interface)
PEER_IP = Check("an IP address, optionally with :port", _is_peer_ip)
ASN = Check("an AS number between 1 and 4294967295", _is_asn)
PORT = Check("a port between 1 and 65535", _is_port)
NAME = Check("a non-empty name", _is_name)

Schema = Any

METADATA: dict[str, Schema] = {
    "name": str,
    "namespace": str,
    "labels": {"*": str},
    "annotations": {"*": str},
    "finalizers": [str],
}

CONTAINER: dict[str, Schema] = {
    "name": str,
    "image": str,
    "command": [SCALAR],
    "args": [SCALAR],
    "env": [
        {
            "name": str,
            "value": SCALAR,
            "valueFrom": {"configMapKeyRef": {"name": str, "key": str}},
        }
    ],
}
POD_SPEC: dict[str, Schema] = {
    "nodeName": str,
    "hostNetwork": bool,
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
}
WORKLOAD: dict[str, Schema] = {"metadata": METADATA, "spec": {"template": {"spec": POD_SPEC}}}

NODE_SCHEMA: dict[str, Schema] = {
    "metadata": {
        **METADATA,
        "name": NAME,
        "annotations": {
            "projectcalico.org/ASNumber": ASN,
            "projectcalico.org/IPv4Address": INTERFACE,
            "*": str,
        },
    },
    "spec": {
        "podCIDR": CIDR,
        "podCIDRs": [CIDR],
        "taints": [{"key": str, "value": SCALAR, "effect": str}],
        "unschedulable": bool,
    },
    "status": {
        "addresses": [{"type": str, "address": str}],
        "conditions": [{"type": str, "status": str}],
        "nodeInfo": {"*": SCALAR},
    },
}

CALICO_SCHEMAS: dict[str, dict[str, Schema]] = {
    "IPPool": {
        "metadata": METADATA,
        "spec": {
            "cidr": CIDR,
            "blockSize": INT,
            "nodeSelector": str,
            "ipipMode": str,
            "vxlanMode": str,
            "natOutgoing": bool,
            "disabled": bool,
        },
    },
    "BGPConfiguration": {
        "metadata": METADATA,
        "spec": {
            "nodeToNodeMeshEnabled": bool,
            "asNumber": ASN,
            "serviceClusterIPs": [{"cidr": CIDR}],
            "serviceExternalIPs": [{"cidr": CIDR}],
            "serviceLoadBalancerIPs": [{"cidr": CIDR}],
        },
    },
    "BGPPeer": {
        "metadata": METADATA,
        "spec": {"peerIP": PEER_IP, "asNumber": ASN, "node": str, "nodeSelector": str, "peerSelector": str},
    },
    "Node": {
        "metadata": METADATA,
        "spec": {"bgp": {"routeReflectorClusterID": str, "asNumber": ASN, "ipv4Address": INTERFACE}},
    },
    "FelixConfiguration": {"metadata": METADATA, "spec": {"vxlanPort": PORT, "vxlanVNI": INT, "*": object}},
}

SCHEMAS: dict[KindRef, dict[str, Schema]] = {
    NODE: NODE_SCHEMA,
    POD: {"metadata": METADATA, "spec": POD_SPEC, "status": {"phase": str}},
    DAEMONSET: WORKLOAD,
    DEPLOYMENT: WORKLOAD,
    CONFIGMAP: {"metadata": METADATA, "data": {"*": SCALAR}},
    PDB: {"metadata": METADATA, "status": {"disruptionsAllowed": INT, "expectedPods": INT}},
    TIGERA_INSTALLATION: {
        "metadata": METADATA,
        "spec": {
            "calicoNetwork": {
                "bgp": str,
                "nodeAddressAutodetectionV4": {"*": object},
                "ipPools": [
                    {
                        "name": str,
                        "cidr": CIDR,
                        "blockSize": INT,
                        "nodeSelector": str,
                        "encapsulation": str,
                        "natOutgoing": str,
                    }
                ],
            }
        },
        "status": {"calicoVersion": str},
    },
    **{ref: schema for kind, schema in CALICO_SCHEMAS.items() for ref in calico(kind)},
}
# Every other kind the store keeps: its metadata at least is read (names, namespaces, labels).
DEFAULT_SCHEMA: dict[str, Schema] = {"metadata": METADATA}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def _expected(schema: Schema) -> str:
    if isinstance(schema, Check):
        return schema.expected
    if isinstance(schema, dict):
        return "a mapping"
    if isinstance(schema, list):
        return "a list"
    return _TYPE_NAMES.get(schema, "a value")


def check(value: Any, schema: Schema, path: str, obj: Obj | None) -> None:
    """Raise :class:`FactInputError` at the first field of ``value`` that does not fit ``schema``."""
    if value is None or schema is object:
        return
    if isinstance(schema, Check):
        if not schema.accept(value):
            raise FactInputError(obj, path, schema.expected, value)
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            raise FactInputError(obj, path or "(object)", "a mapping", value)
        rest = schema.get("*")
        for key, sub in value.items():
            inner = schema.get(key, rest) if isinstance(key, str) else rest
            if inner is None:
                continue
            check(sub, inner, f"{path}.{key}" if path else str(key), obj)
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise FactInputError(obj, path, f"a list of {_expected(schema[0]).removeprefix('a ')}", value)
        for i, item in enumerate(value):
            if item is None and schema[0] is not object:
                raise FactInputError(obj, f"{path}[{i}]", _expected(schema[0]), item)
            check(item, schema[0], f"{path}[{i}]", obj)
    elif schema is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FactInputError(obj, path, "an integer", value)
    elif not isinstance(value, schema):
        raise FactInputError(obj, path, _TYPE_NAMES.get(schema, schema.__name__), value)


def _node_addresses(node: Obj) -> None:
    for i, a in enumerate((node.get("status") or {}).get("addresses") or []):
        if isinstance(a, dict) and a.get("type") in ("InternalIP", "ExternalIP") and not _is_ip(a.get("address")):
            raise FactInputError(node, f"status.addresses[{i}].address", "an IP address", a.get("address"))


def _pod(p: Obj) -> None:
    """Pods come by the 100,000; only the fields the facts read are checked, containers only where their flags
    are read (kube-system: the static control-plane pods)."""
    if not isinstance(p, dict):
        raise FactInputError(None, "(object)", "a mapping", p)
    md = p.get("metadata")
    spec = p.get("spec")
    status = p.get("status")
    if md is not None and not isinstance(md, dict):
        raise FactInputError(p, "metadata", "a mapping", md)
    if spec is not None and not isinstance(spec, dict):
        raise FactInputError(p, "spec", "a mapping", spec)
    if status is not None and not isinstance(status, dict):
        raise FactInputError(p, "status", "a mapping", status)
    if spec:
        name = spec.get("nodeName")
        if name is not None and not isinstance(name, str):
            raise FactInputError(p, "spec.nodeName", "a string", name)
        host = spec.get("hostNetwork")
        if host is not None and not isinstance(host, bool):
            raise FactInputError(p, "spec.hostNetwork", "true or false", host)
    if md and (md.get("namespace") == "kube-system" or not isinstance(md.get("labels") or {}, dict)):
        check(p, SCHEMAS[POD], "", p)
    elif md:
        check(md.get("name"), str, "metadata.name", p)
        check(md.get("namespace"), str, "metadata.namespace", p)


_NONE = type(None)


def _pods_look_fine(pods: list[Obj]) -> bool:
    """The types of the few fields read from every Pod, gathered a field at a time (C-speed comprehensions over
    100,000s of pods); False sends the pods through :func:`_pod`, which names the first bad one."""
    mds = [p.get("metadata") for p in pods]
    specs = [p.get("spec") for p in pods]
    statuses = [p.get("status") for p in pods]
    if {type(x) for x in mds} - {dict, _NONE} or {type(x) for x in specs} - {dict, _NONE}:
        return False
    if {type(x) for x in statuses} - {dict, _NONE}:
        return False
    md_dicts = [m for m in mds if m]
    spec_dicts = [sp for sp in specs if sp]
    return not (
        {type(m.get("name")) for m in md_dicts} - {str, _NONE}
        or {type(m.get("namespace")) for m in md_dicts} - {str, _NONE}
        or {type(m.get("labels")) for m in md_dicts} - {dict, _NONE}
        or {type(sp.get("nodeName")) for sp in spec_dicts} - {str, _NONE}
        or {type(sp.get("hostNetwork")) for sp in spec_dicts} - {bool, _NONE}
        or {type(st.get("phase")) for st in statuses if st} - {str, _NONE}
    )


def validate_store(store: ObjectStore) -> None:
    """Check every object the store holds; the first bad field raises :class:`FactInputError`."""
    for ref, _count in store.kinds():
        objs = store.of(ref)
        if ref == POD:
            if not _pods_look_fine(objs):
                for p in objs:
                    _pod(p)
            for p in objs:
                md = p.get("metadata")
                if isinstance(md, dict) and md.get("namespace") == "kube-system":
                    _pod(p)
            continue
        schema = SCHEMAS.get(ref, DEFAULT_SCHEMA)
        for o in objs:
            check(o, schema, "", o)
            if ref == NODE:
                _node_addresses(o)


# --- values inside ConfigMaps and flags ------------------------------------------------------------------------

KUBEADM_CLUSTER_CONFIGURATION: dict[str, Schema] = {
    "kubernetesVersion": SCALAR,
    "controlPlaneEndpoint": str,
    "networking": {"podSubnet": str, "serviceSubnet": str},
}
KUBE_PROXY_CONFIG: dict[str, Schema] = {"mode": str, "clusterCIDR": str}
FLANNEL_NET_CONF: dict[str, Schema] = {
    "Network": CIDR,
    "Backend": {"Type": str, "Port": PORT, "VNI": INT, "DirectRouting": bool},
}


def check_embedded(doc: Any, schema: Schema, obj: Obj, field: str) -> None:
    """Check a document held in a ConfigMap key (``field``, e.g. ``data.net-conf.json``)."""
    check(doc, schema, field, obj)
    if doc is not None and not isinstance(doc, dict):  # pragma: no cover - check() raised already
        raise FactInputError(obj, field, "a mapping", doc)


def cidr_list(values: list[str], obj: Obj | None, field: str) -> list[str]:
    for v in values:
        if not _is_cidr(v):
            raise FactInputError(obj, field, CIDR.expected, v)
    return values


def port_value(v: Any, obj: Obj | None, field: str) -> int:
    if not _is_port(v):
        raise FactInputError(obj, field, PORT.expected, v)
    return int(str(v).strip())


def int_value(v: Any, obj: Obj | None, field: str, *, low: int | None = None, high: int | None = None) -> int:
    n = _int_value(v)
    if n is None or (low is not None and n < low) or (high is not None and n > high):
        bounds = f" between {low} and {high}" if low is not None and high is not None else ""
        raise FactInputError(obj, field, f"an integer{bounds}", v)
    return n


def asn_value(v: Any) -> int:
    """An AS number already validated by :data:`ASN` as an integer (dotted form folded: high * 65536 + low)."""
    if isinstance(v, str) and "." in v:
        high, low = (int(x) for x in v.strip().split("."))
        return high * 65536 + low
    return int(str(v).strip())
