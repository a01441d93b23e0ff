"""Calico IPPools -> PodCIDRPool manifests (``cni-migrate ipam import-calico``).

* Each Calico ``nodeSelector`` is translated to a Kubernetes LabelSelector with
  :func:`~cni_migrate.analysis.selectors.calico_to_label_selector`; a selector it cannot express is reported
  (pool name and expression) and that IPPool is not imported. ``!all()`` (a pool for no node) is skipped with a note.
* IPPools with the same selector and ``disabled`` flag become **one** PodCIDRPool with all their CIDRs (named after
  the first IPPool by name): a node is given blocks from one pool, so an IPv4 and an IPv6 IPPool for the same nodes
  must be one dual-stack pool to give those nodes both families.
* **Block size.** Calico's ``blockSize`` (default /26 IPv4, /122 IPv6) is the size of its per-node *affinity blocks*,
  of which a node may hold several (and it may borrow single IPs from other nodes' blocks). A PodCIDRPool gives
  each node exactly one block, its podCIDR, so it must hold every pod of the node: by default /24 for IPv4
  (254 pods) and /80 for IPv6, or Calico's own block size when asked (``keep_calico_block_size``).
* **Priority.** Calico has none (overlapping pool selectors let Calico use either); each pool gets the number of
  terms in its selector as ``priority``, so the more specific pool wins where selectors overlap (ties by name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cni_migrate.analysis.cidrs import CidrError, parse_cidr
from cni_migrate.analysis.ipam.cidrset import Network
from cni_migrate.analysis.ipam.pools import (
    BLOCK_SIZE_RANGE,
    DEFAULT_BLOCK_SIZE,
    FAMILIES,
    IPV4,
    IPV6,
    BlockSize,
    PodCIDRPoolSpec,
    PoolSpecError,
    family_of,
    parse_pool,
    pool_manifest,
)
from cni_migrate.analysis.selectors import (
    All,
    Not,
    SelectorError,
    Untranslatable,
    calico_to_label_selector,
    label_selector_text,
    parse_calico_selector,
)
from cni_migrate.facts.model import IPPoolFacts

IMPORTED_FROM_ANNOTATION = "ipam.cni-migrate.io/imported-from"
CALICO_BLOCK_SIZE_ANNOTATION = "ipam.cni-migrate.io/calico-block-size"


@dataclass(frozen=True)
class ImportIssue:
    """A Calico IPPool (or part of one) that was not imported, and why."""

    pool: str
    message: str
    expression: str | None = None  # the Calico selector, when it is the reason


@dataclass
class CalicoImport:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    issues: list[ImportIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifests": self.manifests,
            "notes": self.notes,
            "issues": [
                {"pool": i.pool, "message": i.message, **({"expression": i.expression} if i.expression else {})}
                for i in self.issues
            ],
        }


@dataclass
class _Group:
    selector: dict[str, Any]
    disabled: bool
    pools: list[tuple[IPPoolFacts, Network]] = field(default_factory=list)


def _terms(selector: dict[str, Any]) -> int:
    return len(selector.get("matchLabels") or {}) + len(selector.get("matchExpressions") or [])


def import_calico_pools(
    ip_pools: Sequence[IPPoolFacts],
    *,
    ipv4_block_size: int = DEFAULT_BLOCK_SIZE[IPV4],
    ipv6_block_size: int = DEFAULT_BLOCK_SIZE[IPV6],
    keep_calico_block_size: bool = False,
) -> CalicoImport:
    """PodCIDRPool manifests for ``ip_pools``, with notes on the choices made and the IPPools left out."""
    result = CalicoImport()
    groups: dict[tuple[str, bool], _Group] = {}
    for p in sorted(ip_pools, key=lambda x: x.name):
        try:
            net = parse_cidr(p.cidr, what=f"IPPool {p.name} cidr")
        except CidrError as e:
            result.issues.append(ImportIssue(p.name, str(e)))
            continue
        try:
            expr = parse_calico_selector(p.node_selector)
            if isinstance(expr, Not) and isinstance(expr.expr, All):
                result.notes.append(f"IPPool {p.name} ({p.cidr}) selects no node (!all()); not imported")
                continue
            selector = calico_to_label_selector(p.node_selector)
        except Untranslatable as e:
            result.issues.append(
                ImportIssue(
                    p.name,
                    f"IPPool {p.name}: nodeSelector {p.node_selector!r}: {e}; write this pool's "
                    "spec.nodeSelector by hand (e.g. label the nodes and select the label)",
                    expression=p.node_selector,
                )
            )
            continue
        except SelectorError as e:
            result.issues.append(
                ImportIssue(p.name, f"IPPool {p.name}: nodeSelector {p.node_selector!r}: {e}", p.node_selector)
            )
            continue
        key = (json.dumps(selector, sort_keys=True), p.disabled)
        groups.setdefault(key, _Group(selector, p.disabled)).pools.append((p, net))

    chosen = {IPV4: ipv4_block_size, IPV6: ipv6_block_size}
    for group in groups.values():
        _emit(group, chosen, keep_calico_block_size, result)

    if result.manifests:
        if keep_calico_block_size:
            result.notes.insert(
                0,
                "blockSize: kept Calico's blockSize as each node's block; Calico lets a node hold several blocks "
                "(and borrow IPs), a PodCIDRPool gives a node exactly one, so a node can run at most that many pods",
            )
        else:
            result.notes.insert(
                0,
                f"blockSize: each node gets one /{ipv4_block_size} (IPv4) or /{ipv6_block_size} (IPv6) block as its "
                "podCIDR; Calico's blockSize (shown in the calico-block-size annotation) is the size of its per-node "
                "affinity blocks, of which a node may hold several, so it is not used (--block-size to choose, "
                "--keep-calico-block-size to keep it)",
            )
        result.notes.insert(
            1,
            "priority: Calico pools have none; each pool's priority is the number of terms in its selector, so the "
            "more specific pool wins where selectors overlap (ties: pool name ascending)",
        )
    return result


def _emit(group: _Group, chosen: dict[str, int], keep: bool, result: CalicoImport) -> None:
    sizes: dict[str, int] = {}
    for fam in FAMILIES:
        calico_sizes = sorted({p.block_size for p, n in group.pools if family_of(n) == fam})
        if not calico_sizes:
            continue
        sizes[fam] = max(calico_sizes) if keep else chosen[fam]
        if keep and len(calico_sizes) > 1:
            result.notes.append(
                f"IPPools {', '.join(p.name for p, _ in group.pools)} have different {fam} blockSizes "
                f"({', '.join(map(str, calico_sizes))}); using the smallest blocks, /{sizes[fam]}"
            )
    kept: list[tuple[IPPoolFacts, Network]] = []
    for p, net in group.pools:
        fam = family_of(net)
        size = sizes[fam]
        lo, hi = BLOCK_SIZE_RANGE[fam]
        if not lo <= size <= hi:
            result.issues.append(
                ImportIssue(p.name, f"IPPool {p.name}: a /{size} {fam} block per node is outside /{lo}../{hi}")
            )
        elif size <= net.prefixlen:
            result.issues.append(
                ImportIssue(
                    p.name,
                    f"IPPool {p.name}: {net} is not larger than one /{size} per-node block; choose a longer block "
                    f"size (--block-size{'-v6' if fam == IPV6 else ''})",
                )
            )
        else:
            kept.append((p, net))
    if not kept:
        return
    names = [p.name for p, _ in kept]
    name = names[0]
    spec = PodCIDRPoolSpec(
        cidrs=[str(n) for _, n in kept],
        block_size=BlockSize(
            ipv4=sizes.get(IPV4, DEFAULT_BLOCK_SIZE[IPV4]), ipv6=sizes.get(IPV6, DEFAULT_BLOCK_SIZE[IPV6])
        ),
        node_selector=group.selector or None,
        priority=_terms(group.selector),
        disabled=group.disabled,
    )
    manifest = pool_manifest(
        name,
        spec,
        annotations={
            IMPORTED_FROM_ANNOTATION: ", ".join(f"IPPool {n}" for n in names),
            CALICO_BLOCK_SIZE_ANNOTATION: ", ".join(f"{p.name}=/{p.block_size}" for p, _ in kept),
        },
    )
    try:
        parse_pool(manifest)
    except PoolSpecError as e:  # pragma: no cover - the checks above keep the manifest valid
        result.issues.append(ImportIssue(name, str(e)))
        return
    result.manifests.append(manifest)
    if len(kept) > 1:
        result.notes.append(
            f"IPPools {', '.join(names)} share the nodeSelector {label_selector_text(group.selector)!r}: merged into "
            f"PodCIDRPool {name} (a node gets one block per family from one pool)"
        )
    for p, net in kept:
        fam = family_of(net)
        blocks = 1 << (sizes[fam] - net.prefixlen)
        result.notes.append(
            f"PodCIDRPool {name}: {net} (from IPPool {p.name}) in /{sizes[fam]} blocks holds {blocks} node(s)"
            + (" (disabled: no new allocations)" if group.disabled else "")
        )
