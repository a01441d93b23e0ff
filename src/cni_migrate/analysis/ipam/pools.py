"""The ``PodCIDRPool`` custom resource (``ipam.cni-migrate.io/v1alpha1``): model, parsing, selection, allocator.

Spec (cluster-scoped)::

    spec:
      cidrs: [10.20.0.0/16, fd00:20::/48]   # one or more, IPv4 and/or IPv6; used in this order
      blockSize: {ipv4: 24, ipv6: 80}       # prefix length of each node's block, per family (these are the defaults)
      nodeSelector: {matchLabels: {rack: r1}}  # a Kubernetes LabelSelector; absent or {} selects every node
      priority: 10                          # higher wins when several pools select a node (default 0)
      disabled: false                       # true: no new allocations; nodes keep what they have

**Pool selection** (:func:`select_pool`): among the pools that are not disabled and whose selector matches the
node's labels, the one with the highest ``priority``; ties are broken by pool name, ascending (so ``a-pool``
wins over ``b-pool``). A disabled pool is skipped, as a disabled Calico IPPool is: the node falls to the next
matching pool. There is no fall-through on exhaustion: a node whose chosen pool is full gets nothing (grow the
pool by appending a CIDR) rather than a block from a pool its labels did not choose.

A pool with both families gives each node one block of each; within a family the CIDRs are used in ``spec.cidrs``
order, the next only when the previous is full (as Cilium's cluster-pool does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps
from cni_migrate.analysis.ipam.cidrset import BlockCounts, CIDRSet, CIDRSetFull, Network, Occupation
from cni_migrate.analysis.selectors import (
    SelectorError,
    label_selector_text,
    matches_label_selector,
    validate_label_selector,
)

GROUP = "ipam.cni-migrate.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PodCIDRPool"
PLURAL = "podcidrpools"

#: Family names as they appear in the spec and status.
IPV4 = "ipv4"
IPV6 = "ipv6"
FAMILIES = (IPV4, IPV6)
FAMILY_TEXT = {IPV4: "IPv4", IPV6: "IPv6"}

#: Default per-node block prefix length per family.
DEFAULT_BLOCK_SIZE = {IPV4: 24, IPV6: 80}
#: Accepted per-node block prefix lengths per family (inclusive); the CRD enforces the same ranges.
BLOCK_SIZE_RANGE = {IPV4: (16, 30), IPV6: (48, 126)}


def family_of(network: Network) -> str:
    return IPV4 if network.version == 4 else IPV6


class PoolSpecError(ValueError):
    """A PodCIDRPool that cannot be used; ``errors`` are messages naming the field (``spec.cidrs[1]: ...``)."""

    def __init__(self, pool: str, errors: Sequence[str]) -> None:
        self.pool = pool
        self.errors = list(errors)
        super().__init__(f"PodCIDRPool {pool or '<unnamed>'}: " + "; ".join(self.errors))


class BlockSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ipv4: int = DEFAULT_BLOCK_SIZE[IPV4]
    ipv6: int = DEFAULT_BLOCK_SIZE[IPV6]

    def of(self, family: str) -> int:
        return self.ipv4 if family == IPV4 else self.ipv6


class PodCIDRPoolSpec(BaseModel):
    """``spec`` exactly as in the custom resource (camelCase aliases)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    cidrs: list[str]
    block_size: BlockSize = Field(default_factory=BlockSize, alias="blockSize")
    node_selector: dict[str, Any] | None = Field(default=None, alias="nodeSelector")
    priority: int = 0
    disabled: bool = False


class PodCIDRPool(BaseModel):
    """A parsed, valid pool. Build with :func:`parse_pool`."""

    model_config = ConfigDict(frozen=True)

    name: str
    spec: PodCIDRPoolSpec
    networks: tuple[Network, ...]  # spec.cidrs, parsed, in spec order
    generation: int | None = None
    uid: str = ""
    status: dict[str, Any] = Field(default_factory=dict)

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def disabled(self) -> bool:
        return self.spec.disabled

    @cached_property
    def families(self) -> tuple[str, ...]:
        """The families the pool has CIDRs of, IPv4 first."""
        present = {family_of(n) for n in self.networks}
        return tuple(f for f in FAMILIES if f in present)

    def networks_of(self, family: str) -> tuple[Network, ...]:
        return tuple(n for n in self.networks if family_of(n) == family)

    def block_prefix(self, family: str) -> int:
        return self.spec.block_size.of(family)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_label_selector(self.spec.node_selector, labels)

    @property
    def selector_text(self) -> str:
        return label_selector_text(self.spec.node_selector)

    def manifest(self) -> dict[str, Any]:
        """The custom resource for this pool (spec only)."""
        return pool_manifest(self.name, self.spec)


def pool_manifest(
    name: str,
    spec: PodCIDRPoolSpec,
    *,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    body = spec.model_dump(by_alias=True, exclude_none=True)
    present = {IPV6 if ":" in c else IPV4 for c in spec.cidrs}
    body["blockSize"] = {f: v for f, v in body["blockSize"].items() if f in present} or body["blockSize"]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": md, "spec": body}


# --- parsing -----------------------------------------------------------------------------------------------


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_messages(err: ValidationError, prefix: str) -> list[str]:
    out = []
    for e in err.errors():
        where = _loc([prefix, *e["loc"]])
        if e["type"] == "extra_forbidden":
            out.append(f"{where}: unknown field")
        elif e["type"] == "missing":
            out.append(f"{where}: required")
        else:
            out.append(f"{where}: {e['msg'][0].lower()}{e['msg'][1:]} (got {e['input']!r})")
    return out


def parse_cidr_field(text: Any, where: str) -> tuple[Network | None, str | None]:
    """A CIDR from a spec field, or the message naming ``where``."""
    if not isinstance(text, str):
        return None, f"{where}: {text!r} is not a valid CIDR (expected a string like 10.0.0.0/16)"
    if "/" not in text:
        return None, f"{where}: {text} is not a valid CIDR (the prefix length, e.g. /16, is missing)"
    try:
        return ipaddress.ip_network(text, strict=True), None
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None, f"{where}: {text} is not a valid CIDR"
    return None, f"{where}: {text} has host bits set (did you mean {loose}?)"


def spec_errors(spec: PodCIDRPoolSpec) -> tuple[list[Network], list[str]]:
    """The spec's own rules (no other pool involved): parsed CIDRs and messages naming the field."""
    errors: list[str] = []
    nets: list[Network] = []
    if not spec.cidrs:
        errors.append("spec.cidrs: at least one CIDR is required")
    positions: list[int] = []
    for i, text in enumerate(spec.cidrs):
        net, err = parse_cidr_field(text, f"spec.cidrs[{i}]")
        if err:
            errors.append(err)
        elif net is not None:
            nets.append(net)
            positions.append(i)
    for fam in FAMILIES:
        size = spec.block_size.of(fam)
        lo, hi = BLOCK_SIZE_RANGE[fam]
        fam_nets = [(i, n) for i, n in zip(positions, nets, strict=True) if family_of(n) == fam]
        if not lo <= size <= hi:
            if fam_nets or size != DEFAULT_BLOCK_SIZE[fam]:
                errors.append(f"spec.blockSize.{fam}: {size} is out of range (/{lo} to /{hi} for {FAMILY_TEXT[fam]})")
            continue
        for i, n in fam_nets:
            if size <= n.prefixlen:
                errors.append(
                    f"spec.blockSize.{fam}: /{size} is not longer than the /{n.prefixlen} of spec.cidrs[{i}] ({n}); "
                    "a node's block must be smaller than the CIDR it is cut from"
                )
    ranges = [NamedRange(f"spec.cidrs[{i}]", n) for i, n in zip(positions, nets, strict=True)]
    errors += [f"{ov.b.label}: {ov.b.network} overlaps {ov.a.label} ({ov.a.network})" for ov in find_overlaps(ranges)]
    if not -(2**31) <= spec.priority < 2**31:
        errors.append(f"spec.priority: {spec.priority} is out of range (a 32-bit integer)")
    if spec.node_selector is not None:
        unknown = sorted(set(spec.node_selector) - {"matchLabels", "matchExpressions"})
        if unknown:
            errors.append(
                f"spec.nodeSelector: unknown field(s) {', '.join(unknown)} (expected matchLabels, matchExpressions)"
            )
        else:
            try:
                validate_label_selector(spec.node_selector)
            except (SelectorError, AttributeError, TypeError) as e:
                errors.append(f"spec.nodeSelector: {e}")
    return nets, errors


def pool_errors(obj: Mapping[str, Any]) -> list[str]:
    """Every reason ``obj`` is not a usable PodCIDRPool on its own (empty when it is)."""
    try:
        parse_pool(obj)
    except PoolSpecError as e:
        return e.errors
    return []


def parse_pool(obj: Mapping[str, Any]) -> PodCIDRPool:
    """A PodCIDRPool custom resource (a dict, as the API returns it) -> PodCIDRPool, or PoolSpecError."""
    if not isinstance(obj, Mapping):
        raise PoolSpecError("", [f"expected a {KIND} object, got {type(obj).__name__}"])
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    name = md.get("name")
    errors: list[str] = []
    kind, api = obj.get("kind"), obj.get("apiVersion")
    if kind is not None and kind != KIND:
        errors.append(f"kind: expected {KIND}, got {kind!r}")
    if api is not None and (not isinstance(api, str) or api.rsplit("/", 1)[0] != GROUP):
        errors.append(f"apiVersion: expected {API_VERSION}, got {api!r}")
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: required")
        name = ""
    raw_spec = obj.get("spec")
    if not isinstance(raw_spec, Mapping):
        raise PoolSpecError(name, [*errors, "spec: required (an object with cidrs, blockSize, nodeSelector, ...)"])
    try:
        spec = PodCIDRPoolSpec.model_validate(dict(raw_spec))
    except ValidationError as e:
        raise PoolSpecError(name, errors + _pydantic_messages(e, "spec")) from None
    nets, spec_errs = spec_errors(spec)
    errors += spec_errs
    if errors:
        raise PoolSpecError(name, errors)
    gen = md.get("generation")
    status = obj.get("status")
    return PodCIDRPool(
        name=name,
        spec=spec,
        networks=tuple(nets),
        generation=gen if isinstance(gen, int) else None,
        uid=str(md.get("uid") or ""),
        status=dict(status) if isinstance(status, Mapping) else {},
    )


def parse_pools(objs: Iterable[Mapping[str, Any]]) -> tuple[list[PodCIDRPool], list[PoolSpecError]]:
    """Parse many; the valid ones sorted by name, and the errors of the others. Duplicate names are errors."""
    pools: dict[str, PodCIDRPool] = {}
    errors: list[PoolSpecError] = []
    for o in objs:
        try:
            p = parse_pool(o)
        except PoolSpecError as e:
            errors.append(e)
            continue
        if p.name in pools:
            errors.append(PoolSpecError(p.name, ["metadata.name: a pool with this name appears twice"]))
            continue
        pools[p.name] = p
    return [pools[n] for n in sorted(pools)], errors


def make_pool(
    name: str,
    cidrs: Sequence[str],
    *,
    ipv4: int = DEFAULT_BLOCK_SIZE[IPV4],
    ipv6: int = DEFAULT_BLOCK_SIZE[IPV6],
    node_selector: Mapping[str, Any] | None = None,
    priority: int = 0,
    disabled: bool = False,
) -> PodCIDRPool:
    """Build a valid pool from Python values (tests, tools); :class:`PoolSpecError` when invalid."""
    spec: dict[str, Any] = {"cidrs": list(cidrs), "blockSize": {"ipv4": ipv4, "ipv6": ipv6}, "priority": priority}
    if node_selector is not None:
        spec["nodeSelector"] = dict(node_selector)
    if disabled:
        spec["disabled"] = True
    return parse_pool({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec})


# --- selection ---------------------------------------------------------------------------------------------


def pool_order_key(pool: PodCIDRPool) -> tuple[int, str]:
    """Sort key of the selection order: higher priority first, then name ascending."""
    return (-pool.priority, pool.name)


def matching_pools(
    pools: Iterable[PodCIDRPool], labels: Mapping[str, str], *, include_disabled: bool = False
) -> list[PodCIDRPool]:
    """Pools whose selector matches ``labels``, in selection order."""
    return sorted(
        (p for p in pools if (include_disabled or not p.disabled) and p.matches(labels)),
        key=pool_order_key,
    )


def select_pool(pools: Iterable[PodCIDRPool], labels: Mapping[str, str]) -> PodCIDRPool | None:
    """The pool a node with these labels gets its block from (see the module doc), or None."""
    found = matching_pools(pools, labels)
    return found[0] if found else None


# --- allocation within one pool ----------------------------------------------------------------------------


class PoolAllocator:
    """One :class:`CIDRSet` per CIDR of a pool; allocation walks a family's CIDRs in spec order."""

    def __init__(self, pool: PodCIDRPool) -> None:
        self.pool = pool
        self.sets: dict[str, list[CIDRSet]] = {
            fam: [CIDRSet(n, pool.block_prefix(fam)) for n in pool.networks_of(fam)] for fam in pool.families
        }

    @property
    def name(self) -> str:
        return self.pool.name

    def counts(self, family: str) -> BlockCounts:
        total = BlockCounts()
        for s in self.sets.get(family, ()):
            total += s.counts()
        return total

    def free(self, family: str) -> int:
        return sum(s.free for s in self.sets.get(family, ()))

    def allocate(self, family: str) -> Network:
        """The next free block of ``family``; :class:`CIDRSetFull` when every CIDR of that family is full."""
        for s in self.sets.get(family, ()):
            if s.free:
                return s.allocate_next()
        raise CIDRSetFull(f"PodCIDRPool {self.name} has no free {family} block")

    def _sets_touching(self, network: Network) -> list[CIDRSet]:
        return [s for s in self.sets.get(family_of(network), ()) if s.contains(network)]

    def overlaps(self, network: Network) -> bool:
        """Whether ``network`` overlaps one of the pool's CIDRs."""
        return bool(self._sets_touching(network))

    def contains(self, network: Network) -> bool:
        """Whether ``network`` lies wholly inside one of the pool's CIDRs."""
        return any(network.subnet_of(s.cidr) for s in self._sets_touching(network))  # type: ignore[arg-type]

    def occupy(self, network: Network) -> list[Occupation]:
        """Occupy ``network`` in every CIDR it touches (usually one); empty if it lies outside the pool."""
        return [s.occupy(network) for s in self._sets_touching(network)]

    def release(self, network: Network) -> int:
        return sum(s.release(network) for s in self._sets_touching(network))

    def allocated_count(self, network: Network) -> int:
        """How many blocks ``network`` touches are allocated."""
        return sum(s.allocated_count(network) for s in self._sets_touching(network))

    def is_allocated(self, network: Network) -> bool:
        sets = self._sets_touching(network)
        return bool(sets) and all(s.is_allocated(network) for s in sets)

    def allocated_blocks(self, family: str | None = None) -> list[Network]:
        fams = [family] if family else list(self.sets)
        return [b for f in fams for s in self.sets.get(f, ()) for b in s.allocated_blocks()]
