"""Problems already visible in a cluster's facts, before any migration is planned (shown by ``discover``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel

from cni_migrate.analysis.cidrs import NamedRange, find_overlaps, host_network, try_parse
from cni_migrate.analysis.selectors import (
    Matcher,
    SelectorError,
    compile_calico,
    equality_requirement,
    parse_calico_selector,
)
from cni_migrate.facts.kernel import kernel_key
from cni_migrate.facts.model import ClusterFacts, IPPoolFacts


class Problem(BaseModel):
    id: str
    severity: Literal["error", "warning", "info"]
    message: str
    subjects: list[str] = []


def _ranges(
    facts: ClusterFacts,
) -> tuple[list[NamedRange], list[NamedRange], list[NamedRange], list[NamedRange]]:
    def named(label: str, cidrs: list[str] | None) -> list[NamedRange]:
        return [NamedRange(label, n) for c in cidrs or [] if (n := try_parse(c)) is not None]

    net = facts.network
    pods = named("pod CIDR", net.pod_cidrs.value)
    services = named("service CIDR", net.service_cidrs.value)
    lbs = named("LoadBalancer CIDR", net.load_balancer_cidrs.value)
    nodes = [
        NamedRange(f"node {n.name} address", h) for n in facts.nodes for ip in n.internal_ips if (h := host_network(ip))
    ]
    return pods, services, lbs, nodes


def find_problems(facts: ClusterFacts) -> list[Problem]:
    out: list[Problem] = []
    if facts.source.objects == 0 and facts.source.missing_kinds:
        out.append(
            Problem(
                id="empty-input",
                severity="warning",
                message=f"the input ({facts.source.location or facts.source.kind}) holds no objects the tool uses: "
                "nothing to discover",
            )
        )
    pods, services, lbs, nodes = _ranges(facts)
    for ov in find_overlaps(pods, services) + find_overlaps(pods, lbs) + find_overlaps(services, lbs):
        out.append(
            Problem(id="overlapping-cidrs", severity="error", message=str(ov), subjects=[ov.a.label, ov.b.label])
        )
    for ov in find_overlaps(nodes, pods + services + lbs):
        out.append(Problem(id="node-in-cluster-range", severity="error", message=str(ov), subjects=[ov.a.label]))
    if facts.cni.calico:
        pools = [
            NamedRange(f"Calico IPPool {p.name}", pn)
            for p in facts.cni.calico.ip_pools.value or []
            if (pn := try_parse(p.cidr)) is not None
        ]
        for ov in find_overlaps(pools):
            out.append(
                Problem(
                    id="overlapping-pools",
                    severity="error",
                    message=str(ov),
                    subjects=[ov.a.label, ov.b.label],
                )
            )
        for ov in find_overlaps(pools, services + lbs):
            out.append(Problem(id="overlapping-cidrs", severity="error", message=str(ov), subjects=[ov.a.label]))
        out.extend(_pool_selector_problems(facts))

    node_cidrs = [
        NamedRange(f"node {n.name} podCIDR", net) for n in facts.nodes for c in n.pod_cidrs if (net := try_parse(c))
    ]
    for ov in find_overlaps(node_cidrs):
        out.append(
            Problem(
                id="overlapping-node-podcidrs",
                severity="error",
                message=str(ov),
                subjects=[ov.a.label, ov.b.label],
            )
        )

    kernels: dict[str, list[str]] = defaultdict(list)
    for n in facts.nodes:
        if n.kernel_version:
            kernels[n.kernel_version].append(n.name)
    if len(kernels) > 1:
        lowest = min(kernels, key=kernel_key)
        out.append(
            Problem(
                id="mixed-kernels",
                severity="warning",
                message=f"{len(kernels)} different kernel versions; the lowest, {lowest}, runs on "
                f"{', '.join(sorted(kernels[lowest]))} and bounds which Cilium features work",
                subjects=sorted(kernels[lowest]),
            )
        )
    unknown_kernel = [n.name for n in facts.nodes if not n.kernel_version]
    if unknown_kernel:
        out.append(
            Problem(
                id="unknown-kernel",
                severity="warning",
                message=f"{len(unknown_kernel)} node(s) report no kernel version: {', '.join(unknown_kernel[:10])}",
                subjects=unknown_kernel,
            )
        )
    no_cidr = [n.name for n in facts.nodes if not n.pod_cidrs]
    if no_cidr and facts.nodes:
        out.append(
            Problem(
                id="nodes-without-podcidr",
                severity="warning" if len(no_cidr) < len(facts.nodes) else "info",
                message=f"{len(no_cidr)} of {len(facts.nodes)} nodes have no spec.podCIDR "
                f"(IPAM modes that read node podCIDRs, e.g. Cilium ipam.mode=kubernetes or Flannel, need one): "
                f"{', '.join(no_cidr[:10])}{' ...' if len(no_cidr) > 10 else ''}",
                subjects=no_cidr,
            )
        )
    if facts.pdbs.value:
        blocking = [f"{p.namespace}/{p.name}" for p in facts.pdbs.value if p.blocks_eviction]
        if blocking:
            out.append(
                Problem(
                    id="pdbs-block-eviction",
                    severity="warning",
                    message=f"{len(blocking)} PodDisruptionBudget(s) allow no disruption now; draining a node would "
                    f"stall on them: {', '.join(blocking[:10])}",
                    subjects=blocking,
                )
            )
    return out


def _pool_selector_problems(facts: ClusterFacts) -> list[Problem]:
    assert facts.cni.calico is not None
    out: list[Problem] = []
    parsed: list[tuple[IPPoolFacts, Matcher]] = []
    # Pools whose selector requires key == value are looked up by the node's label instead of evaluated on
    # every node: rack-per-pool clusters have hundreds of pools and thousands of nodes.
    by_label: dict[tuple[str, str], list[int]] = defaultdict(list)
    always: list[int] = []
    for p in facts.cni.calico.ip_pools.value or []:
        if p.disabled:
            continue
        try:
            expr = parse_calico_selector(p.node_selector)
        except SelectorError as e:
            out.append(
                Problem(id="bad-pool-selector", severity="error", message=f"IPPool {p.name}: {e}", subjects=[p.name])
            )
            continue
        index = len(parsed)
        parsed.append((p, compile_calico(expr)))
        required = equality_requirement(expr)
        if required is None:
            always.append(index)
        else:
            by_label[required].append(index)
    shared: dict[tuple[int, int], list[str]] = defaultdict(list)
    for node in facts.nodes:
        candidates = sorted({*always, *(i for kv in node.labels.items() for i in by_label.get(kv, ()))})
        matching = [i for i in candidates if parsed[i][1](node.labels)]
        for x, i in enumerate(matching):
            for j in matching[x + 1 :]:
                if (":" in parsed[i][0].cidr) == (":" in parsed[j][0].cidr):
                    shared[(i, j)].append(node.name)
    for (i, j), names in sorted(shared.items()):
        a, b = parsed[i][0], parsed[j][0]
        out.append(
            Problem(
                id="overlapping-pool-selectors",
                severity="warning",
                message=f"IPPools {a.name} ({a.node_selector}) and {b.name} ({b.node_selector}) both select "
                f"{len(names)} node(s): {', '.join(names[:5])}; Calico may allocate from either",
                subjects=[a.name, b.name],
            )
        )
    return out
