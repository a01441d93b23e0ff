"""The admission ledger: serializes PodCIDRPool admissions across webhook replicas.

Each replica checks a new or changed pool against the pools its informer has seen. Two overlapping pools admitted at
the same moment by two replicas (or by one, before the first pool reached its informer) would both pass that check.
So an admission is also recorded in a ledger (the annotation of one coordination.k8s.io Lease) with an optimistic-
concurrency write: of two concurrent admissions only one write succeeds, the other re-reads the ledger, sees the
first pool and refuses. An entry is needed only until every informer has seen the pool, so it is dropped after
``ttl`` seconds (far longer than an informer lags): an admitted pool whose create then failed, or that was deleted
at once, blocks an overlapping one for at most that long, and the message says so.

Pure functions; the Lease I/O is in ``cni_migrate.actions.ipam_operator.admission``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps
from cni_migrate.analysis.ipam.pools import PodCIDRPool

LEDGER_ANNOTATION = "ipam.cni-migrate.io/admitted-pools"
DEFAULT_TTL = 30.0


@dataclass(frozen=True)
class AdmittedPool:
    """One admission: the pool's name, UID (set before validating admission runs), CIDRs, and when (epoch s)."""

    name: str
    uid: str
    cidrs: tuple[str, ...]
    at: float


Ledger = dict[str, AdmittedPool]


def parse_ledger(text: str | None) -> Ledger:
    """The ledger stored in the annotation; entries that cannot be read are dropped (they would only ever block)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    out: Ledger = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        cidrs, uid, at = entry.get("cidrs"), entry.get("uid"), entry.get("at")
        if isinstance(cidrs, list) and all(isinstance(c, str) for c in cidrs) and isinstance(at, int | float):
            out[str(name)] = AdmittedPool(str(name), str(uid or ""), tuple(cidrs), float(at))
    return out


def render_ledger(ledger: Mapping[str, AdmittedPool]) -> str:
    return json.dumps(
        {n: {"uid": e.uid, "cidrs": list(e.cidrs), "at": round(e.at, 3)} for n, e in sorted(ledger.items())},
        separators=(",", ":"),
    )


def prune_ledger(ledger: Mapping[str, AdmittedPool], *, now: float, ttl: float) -> Ledger:
    """Entries younger than ``ttl``. Not pruned when this replica sees the pool: another replica's informer may
    still lag. An entry from the future (clock skew between replicas) counts as fresh."""
    return {name: e for name, e in ledger.items() if now - e.at < ttl}


def ledger_conflicts(
    pool: PodCIDRPool, ledger: Mapping[str, AdmittedPool], *, now: float, ttl: float = 0.0
) -> list[str]:
    """Overlaps of ``pool`` with pools admitted moments ago (other names) that this replica cannot see yet."""
    own = [NamedRange(f"spec.cidrs[{i}]", n) for i, n in enumerate(pool.networks)]
    theirs = []
    for e in sorted(ledger.values(), key=lambda e: e.name):
        if e.name == pool.name:
            continue
        ago = max(0.0, now - e.at)
        wait = f"; if it no longer exists, retry in {max(1.0, ttl - ago):.0f} s" if ttl else ""
        label = f"PodCIDRPool {e.name} (admitted {ago:.1f} s ago and maybe not yet seen by this replica{wait})"
        for c in e.cidrs:
            try:
                theirs.append(NamedRange(label, ipaddress.ip_network(c, strict=False)))
            except ValueError:
                continue
    return [
        f"{ov.a.label}: {ov.a.network} overlaps {ov.b.network} of {ov.b.label}" for ov in find_overlaps(own, theirs)
    ]


def record(ledger: Mapping[str, AdmittedPool], pool: PodCIDRPool, *, now: float) -> Ledger:
    """The ledger with ``pool``'s admission added (replacing an earlier one of the same name)."""
    out = dict(ledger)
    out[pool.name] = AdmittedPool(pool.name, pool.uid, tuple(str(n) for n in pool.networks), now)
    return out
