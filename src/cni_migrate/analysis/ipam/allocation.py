"""The deterministic, pure IPAM state machine the operator drives (and ``ipam plan`` dry-runs).

Life cycle, with the rules every node allocator learned the hard way (see /work/shared/research/ipam-anchors.md):

1. ``state = IPAMState(pools, nodes)`` with *every* Node (a fresh list), matching a pool or not.
2. ``state.occupy_existing()`` occupies every CIDR already on any node (``spec.podCIDRs`` and the Cilium pod-CIDR
   annotations), whether or not it lies in a pool, and returns reports (foreign, misaligned, duplicate, ...).
   :meth:`IPAMState.assign` refuses to run before it (restore-before-allocate barrier, k8s #29058).
3. Per node event: ``state.upsert_node(node)`` (added/changed: new CIDRs on it are occupied, reported if odd),
   then ``state.assign(name)``: an :class:`Assignment` to write, or why not. If the write fails for good, call
   ``state.cancel(assignment)``.
4. ``state.release(name)`` only when the Node object is really gone (a DELETED event, or absent from a fresh list),
   never on ``deletionTimestamp`` (k8s #127792).

A node's holding only grows while it exists: CIDRs seen on it once stay occupied even if an annotation vanishes,
so a block that may still be in use is never handed to another node. A live node's CIDR is never changed: a node
whose labels stop matching its pool gets :class:`LabelsNoLongerMatch`, to report, not to act on.

Pools may change at run time: :meth:`IPAMState.set_pools` rebuilds the allocators and re-occupies every holding.
Pools that overlap (the webhook forbids it, but the state copes) are kept consistent: every block allocated or
occupied in one is occupied in every pool it touches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from cni_migrate.analysis.cidrs import try_parse
from cni_migrate.analysis.ipam.cidrset import BlockCounts, Network, span
from cni_migrate.analysis.ipam.pools import (
    FAMILIES,
    IPV4,
    IPV6,
    PodCIDRPool,
    PoolAllocator,
    family_of,
    matching_pools,
    pool_order_key,
)
from cni_migrate.facts.model import NodeFacts

#: Cilium's pod-CIDR annotation keys (``pkg/annotation/k8s.go``); the primary key wins over the alias.
ANNOTATION_IPV4 = "network.cilium.io/ipv4-pod-cidr"
ANNOTATION_IPV6 = "network.cilium.io/ipv6-pod-cidr"
LEGACY_ANNOTATION_IPV4 = "io.cilium.network.ipv4-pod-cidr"
LEGACY_ANNOTATION_IPV6 = "io.cilium.network.ipv6-pod-cidr"
#: Per family: (primary, legacy alias).
POD_CIDR_ANNOTATIONS: Mapping[str, tuple[str, str]] = {
    IPV4: (ANNOTATION_IPV4, LEGACY_ANNOTATION_IPV4),
    IPV6: (ANNOTATION_IPV6, LEGACY_ANNOTATION_IPV6),
}
ALL_POD_CIDR_ANNOTATIONS = tuple(k for keys in POD_CIDR_ANNOTATIONS.values() for k in keys)

WriteMode = Literal["spec", "annotation"]


# --- nodes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """What the allocator needs of a Node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    spec_cidrs: tuple[str, ...] = ()  # spec.podCIDRs (or [spec.podCIDR])
    annotations: Mapping[str, str] = field(default_factory=dict)  # only the pod-CIDR annotations
    deleting: bool = False  # metadata.deletionTimestamp is set: the Node still exists
    uid: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NodeInfo:
        """From a Node as the API returns it."""
        md = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        ann = md.get("annotations") or {}
        return cls(
            name=str(md.get("name", "")),
            labels={str(k): str(v) for k, v in (md.get("labels") or {}).items()},
            spec_cidrs=tuple(str(c) for c in cidrs),
            annotations={k: str(ann[k]) for k in ALL_POD_CIDR_ANNOTATIONS if k in ann},
            deleting=bool(md.get("deletionTimestamp")),
            uid=str(md.get("uid", "")),
        )

    @classmethod
    def from_facts(cls, node: NodeFacts) -> NodeInfo:
        return cls(
            name=node.name,
            labels=dict(node.labels),
            spec_cidrs=tuple(node.pod_cidrs),
            annotations={k: v for k, v in node.cni_annotations.items() if k in ALL_POD_CIDR_ANNOTATIONS},
        )

    def cidr_sources(self) -> list[tuple[str, str]]:
        """(where, text) of every pod CIDR on the node: ``spec.podCIDRs[0]``, ``annotation <key>``."""
        out = [(f"spec.podCIDRs[{i}]", c) for i, c in enumerate(self.spec_cidrs)]
        out += [(f"annotation {k}", self.annotations[k]) for k in ALL_POD_CIDR_ANNOTATIONS if k in self.annotations]
        return out

    def cidrs(self) -> tuple[Network, ...]:
        """The distinct valid pod CIDRs on the node, spec first."""
        out: list[Network] = []
        for _where, text in self.cidr_sources():
            net = try_parse(text)
            if net is not None and net not in out:
                out.append(net)
        return tuple(out)

    def effective_cidrs(self) -> dict[str, Network]:
        """What Cilium (ipam=kubernetes) would use per family: spec.podCIDRs, else the primary key, else the alias."""
        out: dict[str, Network] = {}
        for c in self.spec_cidrs:
            net = try_parse(c)
            if net is not None:
                out.setdefault(family_of(net), net)
        for fam, keys in POD_CIDR_ANNOTATIONS.items():
            for k in keys:
                net = try_parse(self.annotations.get(k, ""))
                if fam not in out and net is not None and family_of(net) == fam:
                    out[fam] = net
        return out


# --- reports and results -----------------------------------------------------------------------------------

ReportKind = Literal["foreign", "misaligned", "duplicate", "overlap", "invalid", "inconsistent"]


@dataclass(frozen=True)
class OccupyReport:
    """Something odd about a CIDR found on a node (it is occupied nevertheless, except ``invalid`` text).

    ``foreign``: in no pool. ``misaligned``: not exactly one block of its pool (whole blocks were occupied).
    ``duplicate``: the same CIDR is on ``other_node`` too. ``overlap``: overlaps a CIDR on ``other_node``.
    ``invalid``: not a CIDR. ``inconsistent``: the node's sources disagree for one family (Cilium uses spec first).
    """

    kind: ReportKind
    node: str
    cidr: str
    message: str
    pool: str | None = None
    other_node: str | None = None


def _nets(cidrs: Sequence[Network]) -> str:
    return ", ".join(str(c) for c in cidrs)


@dataclass(frozen=True)
class Assignment:
    """New blocks reserved for a node: write them, or :meth:`IPAMState.cancel` if the write fails."""

    outcome: ClassVar[str] = "assigned"
    node: str
    pool: str
    cidrs: tuple[Network, ...]  # one per family of the pool, IPv4 first

    @property
    def ipv4(self) -> Network | None:
        return next((c for c in self.cidrs if c.version == 4), None)

    @property
    def ipv6(self) -> Network | None:
        return next((c for c in self.cidrs if c.version == 6), None)

    @property
    def message(self) -> str:
        return f"node {self.node} gets {_nets(self.cidrs)} from PodCIDRPool {self.pool}"

    def spec_patch(self) -> dict[str, Any]:
        """Merge patch for mode ``spec`` (only valid on a node whose spec.podCIDR is empty)."""
        return {"spec": {"podCIDR": str(self.cidrs[0]), "podCIDRs": [str(c) for c in self.cidrs]}}

    def annotation_patch(self, *, legacy: bool = True) -> dict[str, Any]:
        """Merge patch for mode ``annotation``: the ``network.cilium.io/*`` keys, and the legacy
        ``io.cilium.network.*`` aliases (read by Cilium <= 1.12) when ``legacy``. Cilium >= 1.13 reads annotations
        only with ``annotate-k8s-node=true``."""
        ann: dict[str, str] = {}
        for c in self.cidrs:
            primary, alias = POD_CIDR_ANNOTATIONS[family_of(c)]
            ann[primary] = str(c)
            if legacy:
                ann[alias] = str(c)
        return {"metadata": {"annotations": ann}}

    def patch(self, mode: WriteMode, *, legacy: bool = True) -> dict[str, Any]:
        return self.spec_patch() if mode == "spec" else self.annotation_patch(legacy=legacy)


@dataclass(frozen=True)
class NoPoolMatches:
    outcome: ClassVar[str] = "no-pool-matches"
    node: str
    disabled: tuple[str, ...] = ()  # pools that match but are disabled

    @property
    def message(self) -> str:
        extra = f" (matching but disabled: {', '.join(self.disabled)})" if self.disabled else ""
        return f"no enabled PodCIDRPool selects node {self.node}{extra}"


@dataclass(frozen=True)
class PoolExhausted:
    outcome: ClassVar[str] = "pool-exhausted"
    node: str
    pool: str
    families: tuple[str, ...]  # the families without a free block

    @property
    def message(self) -> str:
        return (
            f"PodCIDRPool {self.pool} (selected for node {self.node}) has no free {' or '.join(self.families)} "
            "block; append a CIDR to spec.cidrs to grow it"
        )


@dataclass(frozen=True)
class AlreadyHasCIDR:
    outcome: ClassVar[str] = "already-has-cidr"
    node: str
    cidrs: tuple[Network, ...]
    pool: str | None  # the pool the CIDRs lie in, None when foreign (in no pool)
    missing_families: tuple[str, ...] = ()  # families of the pool the node has no CIDR of (never added later)

    @property
    def message(self) -> str:
        where = f"from PodCIDRPool {self.pool}" if self.pool else "in no PodCIDRPool (foreign, kept as is)"
        miss = f"; no {' or '.join(self.missing_families)} block will be added" if self.missing_families else ""
        return f"node {self.node} already has {_nets(self.cidrs)} {where}{miss}"


@dataclass(frozen=True)
class LabelsNoLongerMatch:
    outcome: ClassVar[str] = "labels-no-longer-match"
    node: str
    cidrs: tuple[Network, ...]
    pool: str  # the pool the node's CIDRs lie in
    selected: str | None  # the pool its labels select now, if any

    @property
    def message(self) -> str:
        now = f"PodCIDRPool {self.selected}" if self.selected else "no pool"
        return (
            f"node {self.node} has {_nets(self.cidrs)} from PodCIDRPool {self.pool}, whose selector no longer "
            f"matches its labels (they select {now}); a live node's CIDR is never changed"
        )


@dataclass(frozen=True)
class NodeTerminating:
    outcome: ClassVar[str] = "node-terminating"
    node: str

    @property
    def message(self) -> str:
        return f"node {self.node} is being deleted; no block is given to it"


AssignResult = Assignment | NoPoolMatches | PoolExhausted | AlreadyHasCIDR | LabelsNoLongerMatch | NodeTerminating


class NotRestoredError(RuntimeError):
    """assign() before occupy_existing(): allocating before every existing CIDR is occupied makes duplicates."""


class UnknownNodeError(KeyError):
    pass


# --- status ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyStatus:
    family: str
    block_prefix: int
    cidrs: tuple[str, ...]
    capacity: int
    allocated: int

    @property
    def free(self) -> int:
        return self.capacity - self.allocated


INT64_MAX = 2**63 - 1


def _int64(n: int) -> int:
    """Kubernetes integers are int64: an IPv6 block count beyond that is saturated."""
    return min(n, INT64_MAX)


def _count_text(n: int) -> str:
    return str(n) if n < 10**7 else f"~2^{n.bit_length() - 1}"


@dataclass(frozen=True)
class PoolStatus:
    name: str
    cidrs: tuple[str, ...]
    selector: str
    priority: int
    disabled: bool
    families: tuple[FamilyStatus, ...]
    nodes: tuple[str, ...]  # nodes holding a CIDR in the pool, sorted

    @property
    def exhausted(self) -> tuple[str, ...]:
        """The families without a free block."""
        return tuple(f.family for f in self.families if f.free == 0)

    def family(self, family: str) -> FamilyStatus | None:
        return next((f for f in self.families if f.family == family), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cidrs": list(self.cidrs),
            "nodeSelector": self.selector,
            "priority": self.priority,
            "disabled": self.disabled,
            "families": {
                f.family: {
                    "blockSize": f.block_prefix,
                    "capacity": f.capacity,
                    "allocated": f.allocated,
                    "free": f.free,
                }
                for f in self.families
            },
            "nodes": list(self.nodes),
        }

    def status_document(
        self,
        *,
        observed_generation: int | None,
        now: str,
        previous_conditions: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """The custom resource's ``status`` (per-family counts, conditions ``Ready`` and ``Exhausted``).

        ``now`` is an RFC 3339 timestamp; a condition keeps its previous ``lastTransitionTime`` while its status is
        unchanged.
        """
        prev = {str(c.get("type")): c for c in previous_conditions}

        def cond(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
            s = "True" if status else "False"
            old = prev.get(type_)
            since = old.get("lastTransitionTime") if old and old.get("status") == s else None
            out: dict[str, Any] = {
                "type": type_,
                "status": s,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since or now,
            }
            if observed_generation is not None:
                out["observedGeneration"] = observed_generation
            return out

        exhausted = self.exhausted
        doc: dict[str, Any] = {}
        if observed_generation is not None:
            doc["observedGeneration"] = observed_generation
        for f in self.families:
            doc[f.family] = {"capacity": _int64(f.capacity), "allocated": _int64(f.allocated), "free": _int64(f.free)}
        doc["nodes"] = len(self.nodes)
        doc["blockSizes"] = " ".join(f"/{f.block_prefix}" for f in self.families)
        doc["allocatedBlocks"] = " / ".join(_count_text(f.allocated) for f in self.families)
        doc["freeBlocks"] = " / ".join(_count_text(f.free) for f in self.families)
        doc["conditions"] = [
            cond(
                "Ready",
                not self.disabled,
                "Disabled" if self.disabled else "Allocating",
                "spec.disabled is true: no new allocations" if self.disabled else "blocks are allocated to new nodes",
            ),
            cond(
                "Exhausted",
                bool(exhausted),
                "NoFreeBlocks" if exhausted else "BlocksAvailable",
                f"no free {' or '.join(exhausted)} block" if exhausted else "free blocks are available",
            ),
        ]
        return doc


# --- the state machine -------------------------------------------------------------------------------------


class IPAMState:
    """Pools, nodes and who holds which CIDR; see the module doc for the protocol."""

    def __init__(self, pools: Iterable[PodCIDRPool], nodes: Iterable[NodeInfo] = ()) -> None:
        self._pools: list[PodCIDRPool] = []
        self._alloc: dict[str, PoolAllocator] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._held: dict[str, tuple[Network, ...]] = {}  # node -> CIDRs it holds (seen on it, or assigned by us)
        self._holders: dict[Network, set[str]] = {}  # CIDR -> nodes holding exactly it
        self._odd: dict[Network, set[str]] = {}  # held CIDRs that are not exactly one block everywhere they touch
        self._assigned: dict[str, Assignment] = {}
        self._restored = False
        self._set_pools(pools)
        for n in nodes:
            self._nodes[n.name] = n

    # --- pools ----------------------------------------------------------------------------------------------

    def _set_pools(self, pools: Iterable[PodCIDRPool]) -> None:
        ordered = sorted(pools, key=pool_order_key)
        names = [p.name for p in ordered]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate PodCIDRPool names: {sorted({n for n in names if names.count(n) > 1})}")
        self._pools = ordered
        self._alloc = {p.name: PoolAllocator(p) for p in ordered}
        # (version, first address, last address, position in selection order) of every pool CIDR
        self._ranges = [(n.version, *span(n), i) for i, p in enumerate(ordered) for n in p.networks]
        spans = sorted(self._ranges)
        self._pools_overlap = any(a[0] == b[0] and b[1] <= a[2] for a, b in itertools.pairwise(spans))

    def set_pools(self, pools: Iterable[PodCIDRPool]) -> list[OccupyReport]:
        """Replace the pools (created, changed or deleted) and re-occupy every CIDR held; returns the reports."""
        self._set_pools(pools)
        self._odd = {}
        reports: list[OccupyReport] = []
        for name in sorted(self._held):
            for net in self._held[name]:
                reports += self._occupy(name, net)
        return reports

    @property
    def pools(self) -> list[PodCIDRPool]:
        """In selection order (priority descending, then name)."""
        return list(self._pools)

    def pool(self, name: str) -> PodCIDRPool:
        return self._alloc[name].pool

    def select(self, labels: Mapping[str, str]) -> PodCIDRPool | None:
        """The pool a node with these labels would get a block from."""
        return next((p for p in self._pools if not p.disabled and p.matches(labels)), None)

    def pools_touching(self, network: Network) -> list[PodCIDRPool]:
        """The pools with a CIDR overlapping ``network``, in selection order."""
        v, (lo, hi) = network.version, span(network)
        found = sorted({i for rv, rlo, rhi, i in self._ranges if rv == v and rlo <= hi and lo <= rhi})
        return [self._pools[i] for i in found]

    # --- nodes ----------------------------------------------------------------------------------------------

    @property
    def restored(self) -> bool:
        return self._restored

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    @property
    def node_names(self) -> list[str]:
        return sorted(self._nodes)

    def held(self, name: str) -> tuple[Network, ...]:
        """The CIDRs a node holds (seen on it, or assigned to it by us)."""
        return self._held.get(name, ())

    def assignment(self, name: str) -> Assignment | None:
        """The assignment this state made for a node, if any (until cancelled or released)."""
        return self._assigned.get(name)

    def _occupy(self, node: str, net: Network) -> list[OccupyReport]:
        """Occupy ``net`` in every pool it touches; reports for foreign or misaligned CIDRs."""
        touching = self.pools_touching(net)
        if not touching:
            return [
                OccupyReport(
                    "foreign", node, str(net), f"node {node}: {net} lies in no PodCIDRPool (foreign; left as is)"
                )
            ]
        out: list[OccupyReport] = []
        for p in touching:
            for occ in self._alloc[p.name].occupy(net):
                if occ.kind == "exact":
                    continue
                self._odd.setdefault(net, set()).add(node)
                what = {
                    "inside-block": "is smaller than or not aligned to",
                    "spans-blocks": "spans more than one",
                    "partial": "reaches outside the pool's CIDRs; occupied the",
                }[occ.kind]
                out.append(
                    OccupyReport(
                        "misaligned",
                        node,
                        str(net),
                        f"node {node}: {net} {what} /{p.block_prefix(family_of(net))} block(s) of PodCIDRPool "
                        f"{p.name}; {occ.blocks} block(s) occupied",
                        pool=p.name,
                    )
                )
        return out

    def _hold(self, node: str, nets: Iterable[Network]) -> list[Network]:
        """Add ``nets`` to the node's holding; return the ones that are new for it."""
        current = self._held.get(node, ())
        new = [n for n in nets if n not in current]
        if new:
            self._held[node] = current + tuple(new)
            for n in new:
                self._holders.setdefault(n, set()).add(node)
        return new

    def _source_reports(self, node: NodeInfo) -> list[OccupyReport]:
        out: list[OccupyReport] = []
        seen: dict[str, tuple[str, Network]] = {}
        for where, text in node.cidr_sources():
            net = try_parse(text)
            if net is None:
                out.append(
                    OccupyReport("invalid", node.name, text, f"node {node.name}: {where} {text!r} is not a CIDR")
                )
                continue
            fam = family_of(net)
            if fam in seen and seen[fam][1] != net:
                first_where, first = seen[fam]
                out.append(
                    OccupyReport(
                        "inconsistent",
                        node.name,
                        str(net),
                        f"node {node.name}: {where} is {net} but {first_where} is {first}; Cilium uses {first}; "
                        "both are kept occupied",
                    )
                )
            seen.setdefault(fam, (where, net))
        return out

    def _conflicts(self, node: str, net: Network) -> list[OccupyReport]:
        """Other nodes holding ``net`` or a CIDR overlapping it."""
        out: list[OccupyReport] = []
        for other in sorted(self._holders.get(net, set()) - {node}):
            out.append(
                OccupyReport(
                    "duplicate", node, str(net), f"{net} is on node {node} and on node {other}", other_node=other
                )
            )
        touching = self.pools_touching(net)
        if touching and not any(self._alloc[p.name].allocated_count(net) for p in touching):
            return out  # every block it touches is free: nobody else holds an overlapping CIDR
        for other, nets in sorted(self._held.items()):
            if other == node:
                continue
            for o in nets:
                if o != net and o.version == net.version and o.overlaps(net):
                    out.append(
                        OccupyReport(
                            "overlap",
                            node,
                            str(net),
                            f"{net} on node {node} overlaps {o} on node {other}",
                            other_node=other,
                        )
                    )
        return out

    def occupy_existing(self) -> list[OccupyReport]:
        """Occupy every CIDR on every known node (before any allocation); reports, in node-name order.

        Calling it again is harmless (occupation is idempotent) and repeats the reports.
        """
        reports: list[OccupyReport] = []
        for name in sorted(self._nodes):
            node = self._nodes[name]
            reports += self._source_reports(node)
            self._hold(name, node.cidrs())
            for net in self._held.get(name, ()):
                reports += self._occupy(name, net)
        reports += self._sweep_overlaps()
        self._restored = True
        return reports

    def _sweep_overlaps(self) -> list[OccupyReport]:
        """Duplicate and overlapping CIDRs across nodes, in O(n log n)."""
        items = sorted(
            ((net.version, int(net.network_address), int(net.broadcast_address), name, net))
            for name, nets in self._held.items()
            for net in nets
        )
        out: list[OccupyReport] = []
        reach: tuple[int, int, str, Network] | None = None  # (version, last address, node, net) reaching furthest
        for version, lo, hi, name, net in items:
            if reach is not None and reach[0] == version and lo <= reach[1] and reach[2] != name:
                other, onet = reach[2], reach[3]
                if onet == net:
                    out.append(
                        OccupyReport(
                            "duplicate",
                            name,
                            str(net),
                            f"{net} is on node {other} and on node {name}",
                            other_node=other,
                        )
                    )
                else:
                    out.append(
                        OccupyReport(
                            "overlap",
                            name,
                            str(net),
                            f"{net} on node {name} overlaps {onet} on node {other}",
                            other_node=other,
                        )
                    )
            if reach is None or reach[0] != version or hi > reach[1]:
                reach = (version, hi, name, net)
        return out

    def upsert_node(self, node: NodeInfo) -> list[OccupyReport]:
        """A node was added or changed: remember it and occupy any CIDR on it not held yet (reported if odd)."""
        self._nodes[node.name] = node
        reports = self._source_reports(node)
        for net in node.cidrs():
            if net in self._held.get(node.name, ()):
                continue
            reports += self._conflicts(node.name, net)
            self._hold(node.name, [net])
            reports += self._occupy(node.name, net)
        return reports

    def assign(self, name: str) -> AssignResult:
        """Decide for a known node (see :func:`upsert_node`); reserves the blocks of an :class:`Assignment`."""
        if not self._restored:
            raise NotRestoredError("occupy_existing() must run before assign()")
        node = self._nodes.get(name)
        if node is None:
            raise UnknownNodeError(name)
        held = self._held.get(name, ())
        if held:
            return self._existing(node, held)
        if node.deleting:
            return NodeTerminating(name)
        pool = self.select(node.labels)
        if pool is None:
            disabled = tuple(p.name for p in matching_pools(self._pools, node.labels, include_disabled=True))
            return NoPoolMatches(name, disabled)
        alloc = self._alloc[pool.name]
        full = tuple(f for f in pool.families if alloc.free(f) == 0)
        if full:
            return PoolExhausted(name, pool.name, full)
        cidrs = tuple(alloc.allocate(f) for f in pool.families)
        self._hold(name, cidrs)
        if self._pools_overlap:  # keep the other pools from handing the same addresses out
            for c in cidrs:
                if len(self.pools_touching(c)) > 1:
                    self._occupy(name, c)
        result = Assignment(name, pool.name, cidrs)
        self._assigned[name] = result
        return result

    def _existing(self, node: NodeInfo, held: tuple[Network, ...]) -> AlreadyHasCIDR | LabelsNoLongerMatch:
        owners = sorted({p.name: p for n in held for p in self.pools_touching(n)}.values(), key=pool_order_key)
        if not owners:
            return AlreadyHasCIDR(node.name, held, None)
        owner = next((p for p in owners if p.matches(node.labels)), None)
        if owner is None:
            selected = self.select(node.labels)
            return LabelsNoLongerMatch(node.name, held, owners[0].name, selected.name if selected else None)
        have = {family_of(n) for n in held}
        return AlreadyHasCIDR(node.name, held, owner.name, tuple(f for f in owner.families if f not in have))

    def _unhold(self, node: str, nets: Iterable[Network]) -> list[Network]:
        """Drop ``nets`` from the node's holding and free their blocks, re-occupying what others still hold."""
        current = self._held.get(node, ())
        gone = [n for n in nets if n in current]
        if not gone:
            return []
        rest = tuple(n for n in current if n not in gone)
        if rest:
            self._held[node] = rest
        else:
            self._held.pop(node, None)
        for net in gone:
            holders = self._holders.get(net, set())
            holders.discard(node)
            if not holders:
                self._holders.pop(net, None)
            odd = self._odd.get(net)
            if odd is not None:
                odd.discard(node)
                if not odd:
                    self._odd.pop(net, None)
            for p in self.pools_touching(net):
                self._alloc[p.name].release(net)
            self._reoccupy_around(net)
        return gone

    def _is_exact(self, net: Network) -> bool:
        """Whether ``net`` is exactly one block of every pool it touches (so it shares blocks with no other)."""
        return all(
            net.prefixlen == p.block_prefix(family_of(net)) and self._alloc[p.name].contains(net)
            for p in self.pools_touching(net)
        )

    def _reoccupy_around(self, net: Network) -> None:
        """After freeing ``net``'s blocks: occupy again every held CIDR sharing a block with it."""
        touching = self.pools_touching(net)
        if not touching:
            return
        if net in self._holders:  # a duplicate still held by another node
            for p in touching:
                self._alloc[p.name].occupy(net)
        # An exact block shares blocks only with odd CIDRs; an odd one can share with anything.
        candidates = list(self._odd) if self._is_exact(net) else list(self._holders)
        for other in candidates:
            if other != net and other.version == net.version and other.overlaps(net):
                for p in self.pools_touching(other):
                    self._alloc[p.name].occupy(other)

    def cancel(self, assignment: Assignment) -> None:
        """The assignment could not be written: give its blocks back (those the node's object shows stay held)."""
        if self._assigned.get(assignment.node) != assignment:
            return
        del self._assigned[assignment.node]
        node = self._nodes.get(assignment.node)
        on_object = set(node.cidrs()) if node else set()
        self._unhold(assignment.node, [c for c in assignment.cidrs if c not in on_object])

    def release(self, name: str) -> list[Network]:
        """The Node object is gone: forget it and free its blocks (still occupied if another node holds them)."""
        self._nodes.pop(name, None)
        self._assigned.pop(name, None)
        return self._unhold(name, list(self._held.get(name, ())))

    # --- whole-state views ----------------------------------------------------------------------------------

    def plan(self) -> list[tuple[str, AssignResult]]:
        """Dry run: occupy existing CIDRs if not done, then decide for every node in name order."""
        if not self._restored:
            self.occupy_existing()
        return [(name, self.assign(name)) for name in sorted(self._nodes)]

    def nodes_in_pool(self, pool: str) -> list[str]:
        alloc = self._alloc[pool]
        return sorted(n for n, nets in self._held.items() if any(alloc.overlaps(x) for x in nets))

    def held_in_pool(self, pool: str) -> dict[str, list[Network]]:
        """Per node, the held CIDRs that touch the pool (what an update of the pool must keep inside it)."""
        alloc = self._alloc[pool]
        out: dict[str, list[Network]] = {}
        for n, nets in sorted(self._held.items()):
            inside = [x for x in nets if alloc.overlaps(x)]
            if inside:
                out[n] = inside
        return out

    def counts(self, pool: str, family: str) -> BlockCounts:
        return self._alloc[pool].counts(family)

    def status(self, pool: str) -> PoolStatus:
        alloc = self._alloc[pool]
        p = alloc.pool
        fams = tuple(
            FamilyStatus(
                family=f,
                block_prefix=p.block_prefix(f),
                cidrs=tuple(str(n) for n in p.networks_of(f)),
                capacity=(c := alloc.counts(f)).capacity,
                allocated=c.allocated,
            )
            for f in FAMILIES
            if f in p.families
        )
        return PoolStatus(
            name=p.name,
            cidrs=tuple(str(n) for n in p.networks),
            selector=p.selector_text,
            priority=p.priority,
            disabled=p.disabled,
            families=fams,
            nodes=tuple(self.nodes_in_pool(pool)),
        )

    def statuses(self) -> list[PoolStatus]:
        """Per pool, sorted by name."""
        return [self.status(n) for n in sorted(self._alloc)]


__all__ = [
    "ALL_POD_CIDR_ANNOTATIONS",
    "ANNOTATION_IPV4",
    "ANNOTATION_IPV6",
    "IPV4",
    "IPV6",
    "LEGACY_ANNOTATION_IPV4",
    "LEGACY_ANNOTATION_IPV6",
    "POD_CIDR_ANNOTATIONS",
    "AlreadyHasCIDR",
    "AssignResult",
    "Assignment",
    "FamilyStatus",
    "IPAMState",
    "LabelsNoLongerMatch",
    "NoPoolMatches",
    "NodeInfo",
    "NodeTerminating",
    "NotRestoredError",
    "OccupyReport",
    "PoolExhausted",
    "PoolStatus",
    "UnknownNodeError",
    "WriteMode",
]
