"""The connectivity matrix: ask every prober, at once, to probe everything it should; collect the cells."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cni_migrate.actions.verify.agents import AgentInfo, AgentUnreachable
from cni_migrate.analysis.verify import (
    Cell,
    Endpoint,
    MatrixReport,
    MatrixTargets,
    analyze_matrix,
    cells_from_results,
    plan_probes,
)


def endpoint(agent: AgentInfo) -> Endpoint:
    return Endpoint(agent.name, agent.node, agent.ip, agent.port, agent.role, agent.cni)


@dataclass
class MatrixRun:
    report: MatrixReport
    seconds: float
    #: Seconds each prober spent on its probes (its own measurement), by prober.
    prober_seconds: dict[str, float]


async def run_matrix(
    agents: Sequence[AgentInfo],
    targets: MatrixTargets | None = None,
    *,
    timeout: float = 2.0,
    concurrency: int = 64,
    unprobed_nodes: dict[str, str] | None = None,
) -> MatrixRun:
    """Every prober probes its share of the matrix concurrently; a prober that cannot be asked yields failed cells
    saying so (never missing cells)."""
    endpoints = [endpoint(a) for a in agents]
    plan = plan_probes(endpoints, targets or MatrixTargets())
    t0 = time.perf_counter()
    prober_seconds: dict[str, float] = {}

    async def ask(agent: AgentInfo, ep: Endpoint) -> list[Cell]:
        planned = plan[agent.name]
        if not planned:
            return []
        body = {"targets": [p.wire() for p in planned], "timeout": timeout, "concurrency": concurrency}
        # Enough for every probe to time out in turn at the given concurrency, plus the control round trip.
        budget = timeout * (len(planned) / max(1, concurrency) + 1) + 10.0
        try:
            answer = await agent.channel.call("POST", "/probe", body, timeout=budget)
        except AgentUnreachable as e:
            return cells_from_results(ep, planned, str(e))
        prober_seconds[agent.name] = float(answer.get("elapsed") or 0.0)
        results = answer.get("results")
        if not isinstance(results, list):
            return cells_from_results(ep, planned, "answer without results")
        return cells_from_results(ep, planned, results)

    per_agent = await asyncio.gather(*(ask(a, ep) for a, ep in zip(agents, endpoints, strict=True)))
    cells = [c for group in per_agent for c in group]
    report = analyze_matrix(cells, unprobed_nodes=unprobed_nodes)
    return MatrixRun(report=report, seconds=time.perf_counter() - t0, prober_seconds=prober_seconds)
