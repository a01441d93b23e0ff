"""References from plan steps and decisions to the facts they rely on (paths into ``discover -o json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cni_migrate.analysis.plan.model import FactRef
from cni_migrate.facts.model import ClusterFacts, Fact

_MAX_ITEMS = 20


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        if len(value) > _MAX_ITEMS:
            return f"{len(value)} items"
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def fact_ref(facts: ClusterFacts, path: str) -> FactRef:
    """The fact at a dotted path (``network.pod_cidrs``, ``cni.calico.bgp_peers``, ``nodes``); a path that leads
    nowhere (e.g. ``cni.calico`` on a Flannel cluster) is recorded with a null value."""
    obj: Any = facts
    for part in path.split("."):
        if obj is None:
            break
        obj = getattr(obj, part, None)
    if isinstance(obj, Fact):
        if not obj.known:
            return FactRef(path=path, value=None, source=f"unknown: {obj.unknown}")
        return FactRef(path=path, value=_plain(obj.value), source=obj.source)
    if path == "nodes":
        kernels = sorted({n.kernel_version or "?" for n in facts.nodes})
        return FactRef(
            path=path,
            value={"count": len(facts.nodes), "kernels": kernels[:_MAX_ITEMS]},
            source="Node objects",
        )
    return FactRef(path=path, value=_plain(obj), source=None)


def node_ref(facts: ClusterFacts, names: list[str], field: str) -> FactRef:
    """One field of some nodes (e.g. their InternalIPs), as relied on by a node-scoped step."""
    by_name = {n.name: n for n in facts.nodes}
    value = {n: _plain(getattr(by_name[n], field, None)) for n in names[:_MAX_ITEMS] if n in by_name}
    return FactRef(path=f"nodes[].{field}", value=value, source="Node objects")
