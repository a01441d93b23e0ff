"""``ipam check``: an audit of node pod CIDRs against the PodCIDRPools (as ``calicoctl ipam check`` is for Calico).

Every finding is a :class:`~cni_migrate.analysis.problems.Problem` (the same type ``discover`` reports) whose
``id`` is one of :data:`PROBLEM_IDS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps
from cni_migrate.analysis.ipam.allocation import (
    AlreadyHasCIDR,
    Assignment,
    IPAMState,
    LabelsNoLongerMatch,
    NodeInfo,
    NodeTerminating,
    NoPoolMatches,
    OccupyReport,
    PoolExhausted,
)
from cni_migrate.analysis.ipam.pools import PodCIDRPool, PoolSpecError
from cni_migrate.analysis.problems import Problem

#: id -> what it means.
PROBLEM_IDS: Mapping[str, str] = {
    "invalid-pool": "a PodCIDRPool's spec is invalid; it is ignored",
    "overlapping-pools": "two PodCIDRPools have overlapping CIDRs",
    "duplicate-node-cidr": "the same pod CIDR is on two nodes",
    "overlapping-node-cidrs": "pod CIDRs of two nodes overlap",
    "invalid-node-cidr": "a node's pod CIDR field or annotation is not a CIDR",
    "inconsistent-node-cidr": "a node's spec.podCIDRs and pod-CIDR annotations disagree",
    "cidr-outside-pools": "a node's pod CIDR lies in no PodCIDRPool (foreign)",
    "misaligned-node-cidr": "a node's pod CIDR is not exactly one block of its pool",
    "labels-no-longer-match": "a node holds a block from a pool whose selector no longer matches it",
    "nodes-without-cidr": "nodes have no pod CIDR yet (the operator would assign one)",
    "no-pool-for-node": "a node without a pod CIDR is selected by no enabled pool",
    "pool-exhausted": "a pool has no free block for a family",
    "conflicting-selectors": "pools of the same priority select the same nodes (the name decides)",
    "stale-pool-status": "a pool's status counts more allocated blocks than nodes hold (leaked or stale)",
    "terminating-node-holds-cidr": "a node being deleted still holds a block (released once it is gone)",
}

_REPORT_IDS = {
    "duplicate": ("duplicate-node-cidr", "error"),
    "overlap": ("overlapping-node-cidrs", "error"),
    "invalid": ("invalid-node-cidr", "error"),
    "inconsistent": ("inconsistent-node-cidr", "warning"),
    "foreign": ("cidr-outside-pools", "warning"),
    "misaligned": ("misaligned-node-cidr", "warning"),
}


def _from_report(r: OccupyReport) -> Problem:
    pid, severity = _REPORT_IDS[r.kind]
    subjects = [r.node] + ([r.other_node] if r.other_node else []) + ([r.pool] if r.pool else [])
    return Problem(id=pid, severity=severity, message=r.message, subjects=subjects)


def _shown(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" ... (+{len(names) - limit})" if len(names) > limit else "")


def check_ipam(
    pools: Sequence[PodCIDRPool],
    nodes: Sequence[NodeInfo],
    *,
    pool_errors: Sequence[PoolSpecError] = (),
) -> list[Problem]:
    """Every problem with the pools and the nodes' pod CIDRs (``pool_errors``: pools that failed to parse)."""
    out = [
        Problem(id="invalid-pool", severity="error", message=str(e), subjects=[e.pool] if e.pool else [])
        for e in pool_errors
    ]
    ranges = [NamedRange(f"PodCIDRPool {p.name}", n) for p in sorted(pools, key=lambda p: p.name) for n in p.networks]
    owner = {f"PodCIDRPool {p.name}": p.name for p in pools}
    for ov in find_overlaps(ranges):  # a pool's own CIDRs never overlap (parse_pool refuses it)
        out.append(
            Problem(
                id="overlapping-pools",
                severity="error",
                message=str(ov),
                subjects=[owner[ov.a.label], owner[ov.b.label]],
            )
        )

    state = IPAMState(pools, nodes)
    out += [_from_report(r) for r in state.occupy_existing()]
    before = state.statuses()  # as the nodes hold them now; plan() below reserves blocks hypothetically
    stale = _stale_status(pools, state)

    without: list[str] = []
    unmatched: list[str] = []
    exhausted: dict[str, list[str]] = defaultdict(list)
    for name, result in state.plan():
        if isinstance(result, LabelsNoLongerMatch):
            out.append(
                Problem(
                    id="labels-no-longer-match",
                    severity="warning",
                    message=result.message,
                    subjects=[name, result.pool],
                )
            )
        elif isinstance(result, AlreadyHasCIDR):
            node = state.node(name)
            if node is not None and node.deleting:
                out.append(
                    Problem(
                        id="terminating-node-holds-cidr",
                        severity="info",
                        message=f"node {name} is being deleted and still holds {', '.join(map(str, result.cidrs))}; "
                        "it is released once the Node object is gone",
                        subjects=[name],
                    )
                )
        elif isinstance(result, Assignment):
            without.append(name)
        elif isinstance(result, NoPoolMatches):
            without.append(name)
            unmatched.append(name)
        elif isinstance(result, PoolExhausted):
            without.append(name)
            exhausted[result.pool].append(name)
        elif isinstance(result, NodeTerminating):
            pass
    if without:
        out.append(
            Problem(
                id="nodes-without-cidr",
                severity="warning",
                message=f"{len(without)} node(s) have no pod CIDR: {_shown(without)}",
                subjects=without,
            )
        )
    if unmatched:
        out.append(
            Problem(
                id="no-pool-for-node",
                severity="error",
                message=f"{len(unmatched)} node(s) without a pod CIDR are selected by no enabled PodCIDRPool: "
                f"{_shown(unmatched)}",
                subjects=unmatched,
            )
        )
    for st in before:
        waiting = exhausted.get(st.name, [])
        if st.exhausted or waiting:
            extra = f"; {len(waiting)} node(s) without a CIDR cannot get one: {_shown(waiting)}" if waiting else ""
            what = f"no free {' or '.join(st.exhausted)} block" if st.exhausted else "too few free blocks"
            out.append(
                Problem(
                    id="pool-exhausted",
                    severity="error" if waiting else "warning",
                    message=f"PodCIDRPool {st.name} has {what}{extra}",
                    subjects=[st.name, *waiting],
                )
            )
    out += _selector_conflicts(pools, nodes)
    out += stale
    return out


def _selector_conflicts(pools: Sequence[PodCIDRPool], nodes: Sequence[NodeInfo]) -> list[Problem]:
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    enabled = [p for p in pools if not p.disabled]
    for n in nodes:
        by_priority: dict[int, list[str]] = defaultdict(list)
        for p in enabled:
            if p.matches(n.labels):
                by_priority[p.priority].append(p.name)
        for names in by_priority.values():
            names.sort()
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    shared[(a, b)].append(n.name)
    out = []
    for (a, b), node_names in sorted(shared.items()):
        node_names.sort()
        out.append(
            Problem(
                id="conflicting-selectors",
                severity="warning",
                message=f"PodCIDRPools {a} and {b} have the same priority and both select {len(node_names)} node(s) "
                f"({_shown(node_names, 5)}); {a} wins by name -- set different priorities to make it explicit",
                subjects=[a, b],
            )
        )
    return out


def _stale_status(pools: Sequence[PodCIDRPool], state: IPAMState) -> list[Problem]:
    out = []
    for p in sorted(pools, key=lambda x: x.name):
        for fam in p.families:
            recorded = (p.status.get(fam) or {}).get("allocated") if isinstance(p.status.get(fam), dict) else None
            actual = state.counts(p.name, fam).allocated
            if isinstance(recorded, int) and recorded > actual:
                out.append(
                    Problem(
                        id="stale-pool-status",
                        severity="warning",
                        message=f"PodCIDRPool {p.name} status says {recorded} {fam} block(s) allocated but nodes hold "
                        f"{actual}: blocks may be held for deleted nodes (or the status is stale)",
                        subjects=[p.name],
                    )
                )
    return out
