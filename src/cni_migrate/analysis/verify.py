"""Pure analysis for ``verify`` and ``monitor``: which probes to run, what their results mean.

* :func:`plan_probes` turns the probers (and the Service, NodePorts, API server, DNS names) into the list of probes
  each prober runs; :func:`cells_from_results` turns the answers into matrix cells; :func:`analyze_matrix` finds
  the failed required paths and the source NAT between pods (a warning: expected while two CNIs coexist, since
  each masquerades traffic leaving its own pod range).
* :class:`BatchAccumulator` turns the probers' cumulative monitor counters into per-batch disruption figures, and
  :func:`threshold_violations` says whether a batch crossed the executor's limits.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

CellKind = Literal["pod-pod", "pod-ping", "pod-service", "pod-nodeport", "node-pod", "pod-apiserver", "pod-dns"]
CELL_KINDS: tuple[CellKind, ...] = (
    "pod-pod", "pod-ping", "pod-service", "pod-nodeport", "node-pod", "pod-apiserver", "pod-dns"
)  # fmt: skip
ARROWS: dict[str, str] = {
    "pod-pod": "pod → pod",
    "pod-ping": "pod → pod (ICMP echo)",
    "pod-service": "pod → ClusterIP",
    "pod-nodeport": "pod → NodePort",
    "node-pod": "node → pod",
    "pod-apiserver": "pod → API server",
    "pod-dns": "pod → DNS",
}


@dataclass(frozen=True)
class Endpoint:
    """A prober as the analysis sees it (no channel)."""

    name: str
    node: str
    ip: str
    port: int
    role: Literal["pod", "node"] = "pod"
    cni: str = ""


@dataclass(frozen=True)
class NodeAddress:
    node: str
    ip: str


@dataclass(frozen=True)
class MatrixTargets:
    """What besides the probers is probed. ``service``: the probe Service's ClusterIP and port; ``node_port``: its
    NodePort, probed on every node in ``nodes``; ``apiserver``: the ``kubernetes`` Service's ClusterIP and port."""

    service: tuple[str, int] | None = None
    node_port: int | None = None
    nodes: tuple[NodeAddress, ...] = ()
    apiserver: tuple[str, int] | None = None
    dns_names: tuple[str, ...] = ()
    #: Also an ICMP echo between every pod pair (informational: it needs unprivileged ICMP in the pods).
    ping: bool = False


@dataclass(frozen=True)
class PlannedProbe:
    id: str
    kind: CellKind
    probe: Literal["tcp", "tls", "dns", "icmp"]
    host: str
    port: int | None
    target: str
    target_node: str = ""
    target_cni: str = ""
    required: bool = True

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.probe, "host": self.host}
        if self.port is not None:
            out["port"] = self.port
        return out


def _addr(host: str, port: int | None) -> str:
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def plan_probes(endpoints: Sequence[Endpoint], targets: MatrixTargets | None = None) -> dict[str, list[PlannedProbe]]:
    """The probes of every prober, by prober name.

    Pod probers: every other pod prober (pod → pod, across every node pair and within a node), the Service, the
    NodePort on every node, the API server and each DNS name. Node probers (host network): every pod prober.
    """
    targets = targets or MatrixTargets()
    pods = [e for e in endpoints if e.role == "pod"]
    plan: dict[str, list[PlannedProbe]] = {}
    for src in endpoints:
        probes: list[PlannedProbe] = []
        if src.role == "node":
            for dst in pods:
                probes.append(
                    PlannedProbe(f"np:{dst.name}", "node-pod", "tcp", dst.ip, dst.port, dst.name, dst.node, dst.cni)
                )
            plan[src.name] = probes
            continue
        for dst in pods:
            if dst.name != src.name:
                probes.append(
                    PlannedProbe(f"pp:{dst.name}", "pod-pod", "tcp", dst.ip, dst.port, dst.name, dst.node, dst.cni)
                )
        if targets.ping:
            for dst in pods:
                if dst.name != src.name:
                    probes.append(PlannedProbe(f"ping:{dst.name}", "pod-ping", "icmp", dst.ip, None, dst.name,
                                               dst.node, dst.cni, required=False))  # fmt: skip
        if targets.service is not None:
            ip, port = targets.service
            probes.append(PlannedProbe("svc", "pod-service", "tcp", ip, port, "service"))
        if targets.node_port is not None:
            for n in targets.nodes:
                probes.append(
                    PlannedProbe(f"nodeport:{n.node}", "pod-nodeport", "tcp", n.ip, targets.node_port, n.node, n.node)
                )
        if targets.apiserver is not None:
            ip, port = targets.apiserver
            probes.append(PlannedProbe("api", "pod-apiserver", "tls", ip, port, "kubernetes"))
        for name in targets.dns_names:
            probes.append(PlannedProbe(f"dns:{name}", "pod-dns", "dns", name, None, name))
        plan[src.name] = probes
    return plan


class Cell(BaseModel):
    kind: CellKind
    source: str
    source_node: str
    source_ip: str
    source_cni: str = ""
    target: str
    target_node: str = ""
    target_address: str
    target_cni: str = ""
    required: bool = True
    ok: bool
    latency_ms: float | None = None
    seen_source: str | None = None
    answered_by: str | None = None
    snat: bool | None = None
    error: str | None = None


def cells_from_results(
    source: Endpoint, planned: Sequence[PlannedProbe], results: Sequence[Mapping[str, Any]] | str
) -> list[Cell]:
    """Cells of one prober; ``results`` is its answers, or the error text when it could not be asked."""
    by_id = {str(r.get("id")): r for r in results} if not isinstance(results, str) else {}
    cells = []
    for p in planned:
        r: Mapping[str, Any] | None = by_id.get(p.id)
        if isinstance(results, str):
            error: str | None = f"prober unreachable: {results}"
            ok = False
        elif r is None:
            error, ok = "no answer for this probe", False
        else:
            ok = bool(r.get("ok"))
            error = None if ok else str(r.get("error") or "failed")
        seen = r.get("seen_source") if r is not None and ok else None
        server = r.get("server") if r is not None and ok else None
        snat = None
        if p.kind == "pod-pod" and ok and isinstance(seen, str) and source.ip:
            snat = _norm(seen) != _norm(source.ip)
        cells.append(
            Cell(
                kind=p.kind,
                source=source.name,
                source_node=source.node,
                source_ip=source.ip,
                source_cni=source.cni,
                target=p.target,
                target_node=p.target_node,
                target_address=_addr(p.host, p.port),
                target_cni=p.target_cni,
                required=p.required,
                ok=ok,
                latency_ms=r.get("latency_ms") if r is not None else None,
                seen_source=seen if isinstance(seen, str) else None,
                answered_by=str(server.get("pod")) if isinstance(server, dict) and server.get("pod") else None,
                snat=snat,
                error=error,
            )
        )
    return cells


def _norm(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class KindSummary(BaseModel):
    kind: CellKind
    path: str
    total: int
    ok: int
    failed: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class PairSummary(BaseModel):
    """pod → pod between two CNIs (during a rolling migration: old → old, old → Cilium, Cilium → old, ...)."""

    source_cni: str
    target_cni: str
    total: int
    ok: int
    snat: int
    seen_sources: list[str]


class Finding(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    cells: int = 0


class MatrixReport(BaseModel):
    ok: bool
    summary: list[KindSummary]
    pairs: list[PairSummary]
    findings: list[Finding]
    cells: list[Cell]

    def broken(self) -> set[tuple[str, str, str]]:
        """(kind, source, target) of every failed cell."""
        return {(c.kind, c.source, c.target) for c in self.cells if not c.ok}


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(q) - 1]


def _describe_failures(cells: Sequence[Cell], limit: int = 8) -> str:
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for c in cells:
        groups[(c.source_node, c.target_node or c.target)].append(c)
    parts = []
    for (src, dst), group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]:
        errors = sorted({c.error or "failed" for c in group})
        parts.append(f"{src or '?'} → {dst}: {len(group)} ({'; '.join(errors[:2])})")
    more = len(groups) - limit
    return ", ".join(parts) + (f", and {more} more node pairs" if more > 0 else "")


def analyze_matrix(cells: Sequence[Cell], *, unprobed_nodes: Mapping[str, str] | None = None) -> MatrixReport:
    """Summaries and findings. ``unprobed_nodes``: node -> why it has no prober (a warning each)."""
    by_kind: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_kind[c.kind].append(c)
    summary = []
    findings: list[Finding] = []
    for kind in CELL_KINDS:
        group = by_kind.get(kind)
        if not group:
            continue
        lat = sorted(c.latency_ms for c in group if c.ok and c.latency_ms is not None)
        failed = [c for c in group if not c.ok]
        summary.append(
            KindSummary(
                kind=kind,
                path=ARROWS[kind],
                total=len(group),
                ok=len(group) - len(failed),
                failed=len(failed),
                p50_ms=round(_percentile(lat, 50), 3) if lat else None,
                p99_ms=round(_percentile(lat, 99), 3) if lat else None,
                max_ms=round(lat[-1], 3) if lat else None,
            )
        )
        required_failed = [c for c in failed if c.required]
        unreachable = [c for c in required_failed if (c.error or "").startswith("prober unreachable")]
        path_failed = [c for c in required_failed if not (c.error or "").startswith("prober unreachable")]
        if path_failed:
            findings.append(
                Finding(
                    severity="error",
                    code="path-failed",
                    message=f"{ARROWS[kind]}: {len(path_failed)} of {len(group)} failed: "
                    + _describe_failures(path_failed),
                    cells=len(path_failed),
                )
            )
        optional_failed = [c for c in failed if not c.required]
        if optional_failed:
            findings.append(
                Finding(
                    severity="warning",
                    code="optional-path-failed",
                    message=f"{ARROWS[kind]}: {len(optional_failed)} of {len(group)} failed: "
                    + _describe_failures(optional_failed),
                    cells=len(optional_failed),
                )
            )
        if unreachable:
            sources = sorted({c.source for c in unreachable})
            findings.append(
                Finding(
                    severity="error",
                    code="prober-unreachable",
                    message=f"{ARROWS[kind]}: {len(unreachable)} cells not measured, the controller could not reach "
                    f"prober(s) {', '.join(sources[:5])}{' ...' if len(sources) > 5 else ''}",
                    cells=len(unreachable),
                )
            )
    pairs = _pairs(by_kind.get("pod-pod", []))
    for p in pairs:
        if p.snat:
            seen = ", ".join(p.seen_sources[:4]) + (" ..." if len(p.seen_sources) > 4 else "")
            findings.append(
                Finding(
                    severity="warning",
                    code="snat-between-pods",
                    message=f"pod → pod from {p.source_cni or 'unknown-CNI'} pods to {p.target_cni or 'unknown-CNI'} "
                    f"pods: {p.snat} of {p.ok} answered connections were source-NATed (the server saw {seen}, "
                    "not the client pod's address). Kubernetes' network model wants pod-to-pod traffic without NAT; "
                    "while two CNIs coexist each one masquerades traffic leaving its own pod range, so this is "
                    "expected until the migration is done (it matters for NetworkPolicy by pod IP and for logs)",
                    cells=p.snat,
                )
            )
    for node, why in sorted((unprobed_nodes or {}).items()):
        findings.append(Finding(severity="warning", code="node-not-probed", message=f"node {node}: {why}"))
    ok = not any(f.severity == "error" for f in findings)
    return MatrixReport(ok=ok, summary=summary, pairs=pairs, findings=findings, cells=list(cells))


def _pairs(cells: Iterable[Cell]) -> list[PairSummary]:
    acc: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for c in cells:
        acc[(c.source_cni, c.target_cni)].append(c)
    out = []
    for (s, t), group in sorted(acc.items()):
        answered = [c for c in group if c.ok]
        snat = [c for c in answered if c.snat]
        out.append(
            PairSummary(
                source_cni=s,
                target_cni=t,
                total=len(group),
                ok=len(answered),
                snat=len(snat),
                seen_sources=sorted({c.seen_source for c in snat if c.seen_source}),
            )
        )
    return out


def classify_cni(ip: str, cilium_cidrs: Sequence[str], old_cni: str = "old-cni") -> str:
    """``"cilium"`` when ``ip`` is in one of Cilium's pod CIDRs, else ``old_cni``; "" without an address."""
    if not ip:
        return ""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    for c in cilium_cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if addr.version == net.version and addr in net:
            return "cilium"
    return old_cni


# ---------------------------------------------------------------------------------------------------------------
# Monitor


@dataclass(frozen=True)
class MonitorPlanEntry:
    streams: tuple[PlannedProbe, ...]
    held: tuple[PlannedProbe, ...]


def plan_monitor(
    endpoints: Sequence[Endpoint], service: tuple[str, int] | None = None, *, peers: int = 4
) -> dict[str, MonitorPlanEntry]:
    """For every pod prober: a held connection and a request stream to the pods of the next ``peers`` nodes (in
    name order, wrapping around, so every node is watched by ``peers`` others) and to the Service."""
    pods = sorted((e for e in endpoints if e.role == "pod"), key=lambda e: (e.node, e.name))
    nodes = sorted({e.node for e in pods})
    by_node: dict[str, list[Endpoint]] = defaultdict(list)
    for e in pods:
        by_node[e.node].append(e)
    plan: dict[str, MonitorPlanEntry] = {}
    for src in pods:
        i = nodes.index(src.node)
        targets: list[PlannedProbe] = []
        for k in range(1, min(peers, len(nodes) - 1) + 1):
            for dst in by_node[nodes[(i + k) % len(nodes)]]:
                targets.append(
                    PlannedProbe(f"pod:{dst.name}", "pod-pod", "tcp", dst.ip, dst.port, dst.name, dst.node, dst.cni)
                )
        if service is not None:
            targets.append(PlannedProbe("service", "pod-service", "tcp", service[0], service[1], "service"))
        plan[src.name] = MonitorPlanEntry(streams=tuple(targets), held=tuple(targets))
    return plan


class Progress(BaseModel):
    pods_on_cilium: int
    pods_total: int
    nodes_done: int
    nodes_total: int


class Gap(BaseModel):
    source: str
    target: str
    seconds: float
    ongoing: bool = False


class BatchStats(BaseModel):
    """Disruption measured during one batch of the migration (or so far, for a snapshot)."""

    label: str
    seconds: float
    requests: int
    failed: int
    failed_ratio: float
    connections: int
    connections_broken: int
    longest_gap_s: float
    gaps: list[Gap]
    progress: Progress | None = None
    probers_unreachable: list[str] = []


@dataclass
class _Counters:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    gaps_seen: int = 0
    broken: int = 0
    downtimes_seen: int = 0


@dataclass
class _Batch:
    label: str
    started: float
    requests: int = 0
    failed: int = 0
    broken: int = 0
    gaps: list[Gap] = field(default_factory=list)
    ongoing: dict[tuple[str, str], float] = field(default_factory=dict)


class BatchAccumulator:
    """Per-batch figures from the probers' cumulative counters (``GET /monitor/poll`` answers).

    A completed outage counts in the batch in which the controller first sees it end; an outage still going on
    counts, with its length so far, in every snapshot and at the end of the batch. Held connections that broke count
    in the batch in which the controller sees the counter rise.
    """

    def __init__(self, label: str, now: float) -> None:
        self._counters: dict[tuple[str, str, str], _Counters] = {}
        self._batch = _Batch(label, now)
        self.connections = 0
        self.done: list[BatchStats] = []

    def ingest(self, agent: str, report: Mapping[str, Any]) -> None:
        b = self._batch
        for s in report.get("streams") or []:
            c = self._counters.setdefault((agent, "s", str(s["id"])), _Counters())
            b.requests += int(s["ok"]) + int(s["failed"]) - c.ok - c.failed
            b.failed += int(s["failed"]) - c.failed
            c.ok, c.failed = int(s["ok"]), int(s["failed"])
            gaps = s.get("gaps") or []
            for g in gaps[c.gaps_seen :]:
                b.gaps.append(Gap(source=agent, target=str(s["id"]), seconds=float(g)))
            c.gaps_seen = len(gaps)
            key = (agent, str(s["id"]))
            if s.get("outage_for") is not None:
                b.ongoing[key] = float(s["outage_for"])
            else:
                b.ongoing.pop(key, None)
        held = report.get("held") or []
        for h in held:
            c = self._counters.setdefault((agent, "h", str(h["id"])), _Counters())
            b.broken += int(h["broken"]) - c.broken
            c.broken = int(h["broken"])
        self.connections = sum(1 for k in self._counters if k[1] == "h")

    def snapshot(self, now: float, progress: Progress | None = None) -> BatchStats:
        b = self._batch
        gaps = list(b.gaps) + [Gap(source=a, target=t, seconds=s, ongoing=True) for (a, t), s in b.ongoing.items()]
        gaps.sort(key=lambda g: -g.seconds)
        return BatchStats(
            label=b.label,
            seconds=round(now - b.started, 3),
            requests=b.requests,
            failed=b.failed,
            failed_ratio=round(b.failed / b.requests, 6) if b.requests else 0.0,
            connections=self.connections,
            connections_broken=b.broken,
            longest_gap_s=round(gaps[0].seconds, 4) if gaps else 0.0,
            gaps=gaps[:50],
            progress=progress,
        )

    def next_batch(self, label: str, now: float, progress: Progress | None = None) -> BatchStats:
        """Close the current batch (returned) and start ``label``; ongoing outages carry over."""
        stats = self.snapshot(now, progress)
        self.done.append(stats)
        self._batch = _Batch(label, now, ongoing=dict(self._batch.ongoing))
        return stats


def threshold_violations(
    stats: BatchStats,
    *,
    max_failed_ratio: float | None = 0.01,
    max_broken: int | None = None,
    max_gap_s: float | None = None,
) -> list[str]:
    """Why ``stats`` crosses the limits (empty: within them). ``None`` disables a limit."""
    out = []
    if max_failed_ratio is not None and stats.requests and stats.failed_ratio > max_failed_ratio:
        out.append(
            f"batch {stats.label}: {stats.failed} of {stats.requests} requests failed "
            f"({stats.failed_ratio:.2%} > {max_failed_ratio:.2%})"
        )
    if max_broken is not None and stats.connections_broken > max_broken:
        out.append(f"batch {stats.label}: {stats.connections_broken} long-lived connections broke (> {max_broken})")
    if max_gap_s is not None and stats.longest_gap_s > max_gap_s:
        worst = stats.gaps[0]
        out.append(
            f"batch {stats.label}: {worst.source} → {worst.target} got no answer for {worst.seconds:.2f} s "
            f"(> {max_gap_s:.2f} s){' and counting' if worst.ongoing else ''}"
        )
    return out
