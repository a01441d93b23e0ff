"""Admission checks for PodCIDRPool (the validating webhook's logic; the operator serves it over HTTPS).

The CRD's OpenAPI schema and CEL rules catch shape errors first; these checks add what CEL cannot see: exact CIDR
syntax, overlap with the *other* pools, and, on update, the blocks nodes already hold. Every message names the
field, e.g. ``spec.cidrs[1]: 10.0.0.0/33 is not a valid CIDR``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps
from cni_migrate.analysis.ipam.cidrset import Network
from cni_migrate.analysis.ipam.pools import PodCIDRPool, PoolSpecError, family_of, parse_pool

Held = Mapping[str, Iterable[Network | str]]  # node name -> the CIDRs it holds in the pool


def _net(x: Network | str) -> Network | None:
    if isinstance(x, str):
        try:
            return ipaddress.ip_network(x, strict=False)
        except ValueError:
            return None
    return x


def _held_list(held: Held) -> list[tuple[str, Network]]:
    return [(node, n) for node, nets in sorted(held.items()) for x in nets if (n := _net(x)) is not None]


def validate_pool(
    obj: Mapping[str, Any],
    *,
    others: Iterable[PodCIDRPool] = (),
    old: Mapping[str, Any] | None = None,
    held: Held | None = None,
) -> list[str]:
    """Reasons to reject creating (``old`` None) or updating ``obj``; empty when it is allowed.

    ``others``: the other existing pools (the pool's own name is skipped). ``held``: per node, the CIDRs it holds
    in this pool now (``IPAMState.held_in_pool(name)``): an update must keep each inside the pool and must not
    change ``blockSize`` of a family while any is held.
    """
    try:
        pool = parse_pool(obj)
    except PoolSpecError as e:
        return e.errors
    own = [NamedRange(f"spec.cidrs[{i}]", n) for i, n in enumerate(pool.networks)]
    theirs = [
        NamedRange(f"PodCIDRPool {o.name}", n)
        for o in sorted(others, key=lambda p: p.name)
        if o.name != pool.name
        for n in o.networks
    ]
    errors = [
        f"{ov.a.label}: {ov.a.network} overlaps {ov.b.network} of {ov.b.label}" for ov in find_overlaps(own, theirs)
    ]
    if old is None:
        return errors
    held_nets = _held_list(held or {})
    for node, h in held_nets:
        if not any(h.version == n.version and h.subnet_of(n) for n in pool.networks):  # type: ignore[arg-type]
            errors.append(
                f"spec.cidrs: {h}, held by node {node}, would no longer lie inside the pool; "
                "a CIDR in use cannot be removed or shrunk (set spec.disabled and retire the nodes first)"
            )
    try:
        old_pool: PodCIDRPool | None = parse_pool(old)
    except PoolSpecError:
        old_pool = None  # an invalid stored object: nothing reliable to compare with
    if old_pool is not None:
        for fam in ("ipv4", "ipv6"):
            before, after = old_pool.block_prefix(fam), pool.block_prefix(fam)
            in_use = sum(1 for _node, h in held_nets if family_of(h) == fam)
            if before != after and in_use:
                errors.append(
                    f"spec.blockSize.{fam}: cannot change from {before} to {after} while {in_use} {fam} block(s) "
                    "are allocated"
                )
    return errors


def validate_pool_delete(name: str, held_by: Held) -> list[str]:
    """Reasons to refuse deleting a pool: nodes still hold CIDRs in it (they would become foreign)."""
    nodes = sorted(n for n, nets in held_by.items() if any(True for _ in nets))
    if not nodes:
        return []
    shown = ", ".join(nodes[:10]) + (" ..." if len(nodes) > 10 else "")
    return [
        f"PodCIDRPool {name} is in use by {len(nodes)} node(s) ({shown}); set spec.disabled: true and delete the "
        "pool once no node holds a block from it"
    ]


def admission_response(uid: str, errors: Sequence[str], warnings: Sequence[str] = ()) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview answer: allowed when ``errors`` is empty."""
    response: dict[str, Any] = {"uid": uid, "allowed": not errors}
    if errors:
        response["status"] = {"code": 422, "reason": "Invalid", "message": "; ".join(errors)}
    if warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
