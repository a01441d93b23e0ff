"""``cni-migrate verify`` (connectivity matrix) and ``cni-migrate monitor`` (disruption during a migration).

Both deploy the probe DaemonSet(s) and Service (removed afterwards), then talk to the probers through the API
server's pod proxy. Exit codes: 0 all required paths work / no batch crossed a limit; 1 a required path failed /
a batch crossed a limit; 2 bad input, a cluster that refuses the probes, or an unreachable cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import sys
import time
from collections import defaultdict
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from cni_migrate import __version__
from cni_migrate.actions.verify import deploy as dep_mod
from cni_migrate.actions.verify.deploy import ProbeConfig, VerifyInputError
from cni_migrate.actions.verify.matrix import run_matrix
from cni_migrate.actions.verify.monitor import MonitorError, MonitorSession, MonitorSettings
from cni_migrate.analysis.verify import BatchStats, MatrixReport, threshold_violations
from cni_migrate.cli.common import EXIT_FINDINGS, EXIT_OK, BadInput, GlobalOptions, emit, guarded, options

NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the probes (created if missing)")]
ImageOpt = Annotated[str, typer.Option(help="Image with cni-migrate (the project's Dockerfile)")]
NodesOpt = Annotated[list[str] | None, typer.Option("--nodes", help="Only these nodes (repeat, or comma-separated)")]
SelectorOpt = Annotated[
    list[str] | None, typer.Option("--node-selector", help="Only nodes with this label, KEY=VALUE (repeatable)")
]
TolerateOpt = Annotated[
    list[str] | None, typer.Option("--tolerate", help="Taint key the probes tolerate (repeatable; '*' for all)")
]
NodeProbesOpt = Annotated[
    bool,
    typer.Option(
        "--node-probes", help="Also probe node → pod from host-network pods (needs a privileged PodSecurity level)"
    ),
]
CiliumCidrOpt = Annotated[
    list[str] | None,
    typer.Option("--cilium-cidr", help="Cilium's pod CIDR (repeatable; default: from kube-system/cilium-config)"),
]
OldCniOpt = Annotated[str, typer.Option("--old-cni", help="Name shown for pods not on Cilium")]
ReadyTimeoutOpt = Annotated[float, typer.Option("--ready-timeout", help="Seconds to wait for the probe pods")]
KeepOpt = Annotated[bool, typer.Option("--keep", help="Leave the probes running afterwards")]


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for raw in values or [] for v in raw.split(",") if v.strip())


def _config(
    namespace: str,
    image: str,
    nodes: list[str] | None,
    selector: list[str] | None,
    tolerate: list[str] | None,
    node_probes: bool,
) -> ProbeConfig:
    pairs = []
    for s in _split(selector):
        key, eq, value = s.partition("=")
        if not eq or not key:
            raise BadInput(f"--node-selector {s!r}: expected KEY=VALUE")
        pairs.append((key, value))
    if (
        not namespace
        or len(namespace) > 63
        or not namespace.replace("-", "a").isalnum()
        or namespace != namespace.lower()
    ):
        raise BadInput(f"--namespace {namespace!r}: expected a DNS label (lower-case letters, digits, '-')")
    return ProbeConfig(
        namespace=namespace,
        image=image,
        node_probes=node_probes,
        tolerate=_split(tolerate),
        nodes=_split(nodes),
        node_selector=tuple(pairs),
    )


def _cidrs(values: list[str] | None) -> list[str]:
    out = []
    for v in _split(values):
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError as e:
            raise BadInput(f"--cilium-cidr {v!r}: expected a CIDR such as 172.20.0.0/16") from e
    return out


def _connect(opts: GlobalOptions):  # type: ignore[no-untyped-def]  # Cluster, imported lazily
    cluster = opts.connect()
    cluster.server_version()  # an unreachable cluster fails here, before anything is created
    return cluster


# ---------------------------------------------------------------------------------------------------------------
# verify


def _render_matrix(console: Console, report: MatrixReport, *, all_cells: bool) -> None:
    t = Table(title="Connectivity", title_justify="left")
    for col in ("path", "ok", "failed", "p50 ms", "p99 ms", "max ms"):
        t.add_column(col, justify="left" if col == "path" else "right")
    for s in report.summary:
        colour = "green" if not s.failed else "red"
        t.add_row(
            s.path,
            f"[{colour}]{s.ok}/{s.total}[/]",
            str(s.failed),
            *(f"{v:.2f}" if v is not None else "-" for v in (s.p50_ms, s.p99_ms, s.max_ms)),
        )
    console.print(t)
    if report.pairs and any(p.source_cni or p.target_cni for p in report.pairs):
        pt = Table(title="pod → pod by CNI", title_justify="left")
        for col in ("from", "to", "ok", "source-NATed", "server saw"):
            pt.add_column(col)
        for p in report.pairs:
            pt.add_row(
                p.source_cni or "?",
                p.target_cni or "?",
                f"{p.ok}/{p.total}",
                f"[yellow]{p.snat}[/]" if p.snat else "0",
                escape(", ".join(p.seen_sources[:3])),
            )
        console.print(pt)
    pods = [c for c in report.cells if c.kind == "pod-pod"]
    nodes = sorted({c.source_node for c in pods} | {c.target_node for c in pods})
    if pods and len(nodes) <= 12:
        grid = Table(title="pod → pod by node (answered/probed)", title_justify="left")
        grid.add_column("from \\ to")
        for n in nodes:
            grid.add_column(escape(n), justify="right")
        acc: dict[tuple[str, str], list[bool]] = defaultdict(list)
        for c in pods:
            acc[(c.source_node, c.target_node)].append(c.ok)
        for a in nodes:
            row = []
            for b in nodes:
                flags = acc.get((a, b), [])
                good = sum(flags)
                row.append("-" if not flags else f"[{'green' if good == len(flags) else 'red'}]{good}/{len(flags)}[/]")
            grid.add_row(escape(a), *row)
        console.print(grid)
    shown = [c for c in report.cells if all_cells or not c.ok]
    if shown:
        ct = Table(title="Cells" if all_cells else "Failed cells", title_justify="left")
        for col in ("path", "from", "to", "result", "ms", "server saw"):
            ct.add_column(col)
        for c in shown[:200]:
            result = "[green]ok[/]" if c.ok else f"[red]{escape(c.error or 'failed')}[/]"
            ct.add_row(
                c.kind,
                escape(f"{c.source} ({c.source_node})"),
                escape(f"{c.target} {c.target_address}"),
                result,
                f"{c.latency_ms:.2f}" if c.latency_ms is not None else "-",
                escape(c.seen_source or ""),
            )
        console.print(ct)
        if len(shown) > 200:
            console.print(f"... and {len(shown) - 200} more (-o json for all)")
    for f in report.findings:
        colour = "red" if f.severity == "error" else "yellow"
        console.print(f"[{colour}]{f.severity}[/]: {escape(f.message)}", soft_wrap=True)
    console.print("[green]all required paths work[/]" if report.ok else "[red]required paths failed[/]")


def verify(
    ctx: typer.Context,
    during_migration: Annotated[
        bool, typer.Option("--during-migration", help="Label pods by CNI (old vs Cilium) to show mixed-CNI paths")
    ] = False,
    nodes: NodesOpt = None,
    node_selector: SelectorOpt = None,
    tolerate: TolerateOpt = None,
    node_probes: NodeProbesOpt = False,
    namespace: NamespaceOpt = "cni-migrate-verify",
    image: ImageOpt = f"cni-migrate:{__version__}",
    cilium_cidr: CiliumCidrOpt = None,
    old_cni: OldCniOpt = "old-cni",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per probe")] = 2.0,
    ready_timeout: ReadyTimeoutOpt = 180.0,
    all_cells: Annotated[bool, typer.Option("--all-cells", help="Show every cell, not only the failed ones")] = False,
    ping: Annotated[
        bool, typer.Option("--ping", help="Also ICMP echo between every pod pair (needs unprivileged ICMP in pods)")
    ] = False,
    keep: KeepOpt = False,
) -> None:
    """Deploy probes, measure the connectivity matrix (pod ↔ pod on every node pair, ClusterIP, NodePort on every
    node, node → pod, API server, DNS), remove the probes. Exit 1 when a required path fails."""
    opts = options(ctx)

    def body() -> int:
        cfg = _config(namespace, image, nodes, node_selector, tolerate, node_probes)
        if not 0 < timeout <= 60:
            raise BadInput(f"--timeout {timeout}: expected seconds in (0, 60]")
        cidrs = _cidrs(cilium_cidr)
        cluster = _connect(opts)
        try:
            if during_migration and not cidrs:
                cidrs = dep_mod.cilium_pod_cidrs(cluster)
                if not cidrs:
                    raise BadInput(
                        "--during-migration: Cilium's pod CIDR is unknown (no cluster-pool-ipv4-cidr in "
                        "kube-system/cilium-config); pass --cilium-cidr"
                    )
            deployment = dep_mod.deploy(cluster, cfg, timeout=ready_timeout, say=lambda m: _say(opts, m))
            try:
                agents = dep_mod.agents(cluster, deployment, cidrs, old_cni)
                targets = dep_mod.matrix_targets(cluster, deployment)
                if ping:
                    targets = dataclasses.replace(targets, ping=True)
                skipped = deployment.nodes.skipped if deployment.nodes else {}
                run = asyncio.run(run_matrix(agents, targets, timeout=timeout, unprobed_nodes=skipped))
            finally:
                if not keep:
                    dep_mod.teardown(cluster, deployment)
                    _say(opts, f"removed the probes from namespace {cfg.namespace}")
        except VerifyInputError as e:
            raise BadInput(str(e)) from e
        finally:
            cluster.close()
        report = run.report
        doc = {"ok": report.ok, "seconds": round(run.seconds, 3), **report.model_dump(mode="json")}
        emit(doc, opts.output, lambda c: _render_matrix(c, report, all_cells=all_cells))
        return EXIT_OK if report.ok else EXIT_FINDINGS

    guarded(body)


def _say(opts: GlobalOptions, message: str) -> None:
    if not opts.quiet:
        opts.err.print(f"[dim]{escape(message)}[/dim]", highlight=False)


# ---------------------------------------------------------------------------------------------------------------
# monitor


def _batch_table(stats: BatchStats, violations: list[str]) -> Table:
    t = Table(title=f"batch {escape(stats.label)} ({stats.seconds:.0f} s)", title_justify="left")
    for col in (
        "requests",
        "failed",
        "failed %",
        "connections",
        "broken",
        "longest gap s",
        "pods on Cilium",
        "nodes done",
    ):
        t.add_column(col, justify="right")
    p = stats.progress
    t.add_row(
        str(stats.requests),
        str(stats.failed),
        f"[{'red' if violations else 'green'}]{stats.failed_ratio:.2%}[/]",
        str(stats.connections),
        str(stats.connections_broken),
        f"{stats.longest_gap_s:.3f}",
        f"{p.pods_on_cilium}/{p.pods_total}" if p else "-",
        f"{p.nodes_done}/{p.nodes_total}" if p else "-",
    )
    return t


def monitor(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option("--duration", help="Seconds to run (0: until Ctrl-C)")] = 0.0,
    batch_seconds: Annotated[
        float, typer.Option("--batch-seconds", help="Start a new batch every N s (0: whenever a node is done)")
    ] = 0.0,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second from each pod to each target")] = 10.0,
    peers: Annotated[int, typer.Option("--peers", help="Other nodes each probe pod watches")] = 4,
    break_timeout: Annotated[
        float,
        typer.Option("--break-timeout", help="Seconds without a heartbeat answer before a connection counts as broken"),
    ] = 2.0,
    max_failed_ratio: Annotated[
        float, typer.Option("--max-failed-ratio", help="Limit of failed requests per batch (0.01 = 1 %)")
    ] = 0.01,
    max_gap: Annotated[
        float | None, typer.Option("--max-gap", help="Limit of the longest gap per batch, seconds")
    ] = None,
    nodes: NodesOpt = None,
    node_selector: SelectorOpt = None,
    tolerate: TolerateOpt = None,
    namespace: NamespaceOpt = "cni-migrate-verify",
    image: ImageOpt = f"cni-migrate:{__version__}",
    cilium_cidr: CiliumCidrOpt = None,
    ready_timeout: ReadyTimeoutOpt = 180.0,
    keep: KeepOpt = False,
) -> None:
    """Hold connections and stream requests between probe pods (and through the probe Service) while a migration
    runs; report per batch: requests failed, connections broken, longest gap, migration progress. -o json prints
    JSON lines. Exit 1 when a batch crossed a limit."""
    opts = options(ctx)

    def body() -> int:
        cfg = _config(namespace, image, nodes, node_selector, tolerate, False)
        if not 0 < rate <= 1000:
            raise BadInput(f"--rate {rate}: expected requests per second in (0, 1000]")
        if duration < 0 or batch_seconds < 0 or not 0 <= max_failed_ratio <= 1 or peers < 1:
            raise BadInput("--duration/--batch-seconds must be >= 0, --max-failed-ratio in [0, 1], --peers >= 1")
        cidrs = _cidrs(cilium_cidr)
        cluster = _connect(opts)
        try:
            cidrs = cidrs or dep_mod.cilium_pod_cidrs(cluster)
            deployment = dep_mod.deploy(cluster, cfg, timeout=ready_timeout, say=lambda m: _say(opts, m))
            try:
                agents = dep_mod.agents(cluster, deployment, cidrs)
                targets = dep_mod.matrix_targets(cluster, deployment)
                settings = MonitorSettings(rate=rate, peers=peers, break_timeout=break_timeout)
                session = MonitorSession(
                    agents,
                    service=targets.service,
                    settings=settings,
                    progress=lambda: dep_mod.migration_progress(cluster, cidrs),
                )
                batches = asyncio.run(_watch(opts, session, duration, batch_seconds, max_failed_ratio, max_gap))
            finally:
                if not keep:
                    dep_mod.teardown(cluster, deployment)
                    _say(opts, f"removed the probes from namespace {cfg.namespace}")
        except VerifyInputError as e:
            raise BadInput(str(e)) from e
        except MonitorError as e:
            raise BadInput(str(e)) from e
        finally:
            cluster.close()
        crossed = [
            v for b in batches for v in threshold_violations(b, max_failed_ratio=max_failed_ratio, max_gap_s=max_gap)
        ]
        for v in crossed:
            opts.err.print(f"[red]limit crossed[/red]: {escape(v)}", soft_wrap=True)
        return EXIT_FINDINGS if crossed else EXIT_OK

    guarded(body)


async def _watch(
    opts: GlobalOptions,
    session: MonitorSession,
    duration: float,
    batch_seconds: float,
    max_failed_ratio: float,
    max_gap: float | None,
) -> list[BatchStats]:
    json_lines = opts.output.value == "json"

    def line(kind: str, stats: BatchStats) -> None:
        sys.stdout.write(orjson.dumps({"type": kind, **stats.model_dump(mode="json")}).decode() + "\n")
        sys.stdout.flush()

    await session.start()
    started = batch_started = time.monotonic()
    first = session.snapshot().progress
    last_done = first.nodes_done if first is not None else None
    n = 1
    console = Console()
    live = None if json_lines or not console.is_terminal else Live(console=console, refresh_per_second=4)
    try:
        if live is not None:
            live.start()
        while not duration or time.monotonic() - started < duration:
            await asyncio.sleep(session.settings.poll_interval)
            await session.poll()
            stats = session.snapshot()
            violations = threshold_violations(stats, max_failed_ratio=max_failed_ratio, max_gap_s=max_gap)
            if json_lines:
                line("update", stats)
            elif live is not None:
                live.update(_batch_table(stats, violations))
            done = stats.progress.nodes_done if stats.progress else None
            roll = (batch_seconds and time.monotonic() - batch_started >= batch_seconds) or (
                not batch_seconds and done is not None and done != last_done
            )
            if roll:
                closed = await session.next_batch(f"batch-{n}" if batch_seconds else f"nodes-done-{done}")
                n += 1
                batch_started = time.monotonic()
                last_done = done
                _print_batch(opts, console, closed, json_lines, max_failed_ratio, max_gap, line)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        if live is not None:
            live.stop()
    report = await session.stop()
    _print_batch(opts, console, report.batches[-1], json_lines, max_failed_ratio, max_gap, line)
    return report.batches


def _print_batch(
    opts: GlobalOptions,
    console: Console,
    stats: BatchStats,
    json_lines: bool,
    max_failed_ratio: float,
    max_gap: float | None,
    line: object,
) -> None:
    if json_lines:
        assert callable(line)
        line("batch", stats)
        return
    console.print(
        _batch_table(stats, threshold_violations(stats, max_failed_ratio=max_failed_ratio, max_gap_s=max_gap))
    )
    for g in stats.gaps[:5]:
        console.print(
            f"  gap {g.seconds:.3f} s{' (ongoing)' if g.ongoing else ''}: {escape(g.source)} → {escape(g.target)}"
        )
