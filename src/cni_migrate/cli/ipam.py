"""``cni-migrate ipam``: node pod-CIDR pools chosen by node selector (the PodCIDRPool CRD), offline or live.

``plan`` (dry run), ``status``, ``check`` and ``import-calico``; none of them writes to the cluster. Pools are the
PodCIDRPool objects of the input (snapshot or live cluster), or those of ``--pools FILE``.
Exit codes: 0 ok, 1 findings (``plan``: a node would get no block; ``check``: errors or warnings;
``import-calico``: an IPPool could not be imported), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cni_migrate.analysis.ipam import (
    BLOCK_SIZE_RANGE,
    DEFAULT_BLOCK_SIZE,
    IPV4,
    IPV6,
    AlreadyHasCIDR,
    Assignment,
    AssignResult,
    CalicoImport,
    IPAMState,
    LabelsNoLongerMatch,
    NodeInfo,
    NoPoolMatches,
    OccupyReport,
    PodCIDRPool,
    PoolExhausted,
    PoolSpecError,
    PoolStatus,
    check_ipam,
    import_calico_pools,
    parse_pools,
)
from cni_migrate.analysis.problems import Problem
from cni_migrate.analysis.selectors import label_selector_text
from cni_migrate.cli.common import (
    EXIT_FINDINGS,
    BadInput,
    GlobalOptions,
    OutputFormat,
    dump_yaml,
    emit,
    guarded,
    options,
)
from cni_migrate.facts.objects import NODE, POD_CIDR_POOL
from cni_migrate.facts.snapshot import load_snapshot

app = typer.Typer(
    name="ipam",
    help="Node pod-CIDR pools by node selector (PodCIDRPool, ipam.cni-migrate.io): plan, status, check, "
    "import from Calico. Read-only.",
    no_args_is_help=True,
)

PoolsOpt = Annotated[
    Path | None,
    typer.Option(
        "--pools",
        help="A file (or directory) of PodCIDRPool objects (YAML or JSON, multi-document or List) to use instead "
        "of the pools in the input",
    ),
]


# --- loading -----------------------------------------------------------------------------------------------


def _pools(opts: GlobalOptions, pools_file: Path | None) -> tuple[list[PodCIDRPool], list[PoolSpecError]]:
    if pools_file is not None:
        store = load_snapshot(pools_file)
        objs = store.of(POD_CIDR_POOL)
        if not objs:
            raise BadInput(f"{pools_file} holds no PodCIDRPool objects (apiVersion ipam.cni-migrate.io/v1alpha1)")
    else:
        objs = opts.store().of(POD_CIDR_POOL)
        if not objs:
            raise BadInput(
                "the input has no PodCIDRPool objects; pass --pools FILE (e.g. the output of "
                "'cni-migrate ipam import-calico -o yaml')"
            )
    return parse_pools(objs)


def _nodes(opts: GlobalOptions) -> list[NodeInfo]:
    store = opts.store()
    objs = store.of(NODE)
    if not objs and not store.has_listed(NODE):
        raise BadInput("the input has no Node objects; the IPAM commands need the cluster's nodes")
    return sorted((NodeInfo.from_object(o) for o in objs), key=lambda n: n.name)


def _warn_invalid(opts: GlobalOptions, errors: list[PoolSpecError]) -> None:
    for e in errors:
        opts.err.print(f"[yellow]warning:[/yellow] ignoring invalid {e}", highlight=False, soft_wrap=True)


def _pool_error_dicts(errors: list[PoolSpecError]) -> list[dict[str, Any]]:
    return [{"pool": e.pool, "errors": e.errors} for e in errors]


def _report_dict(r: OccupyReport) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": r.kind, "node": r.node, "cidr": r.cidr, "message": r.message}
    if r.pool:
        d["pool"] = r.pool
    if r.other_node:
        d["otherNode"] = r.other_node
    return d


def _render_reports(console: Console, reports: list[OccupyReport]) -> None:
    if reports:
        console.print("[bold]Existing node CIDRs[/bold] (occupied before anything is allocated)")
        for r in reports:
            color = "red" if r.kind in ("duplicate", "overlap", "invalid") else "yellow"
            console.print(f"  [{color}]{r.kind}[/{color}] {r.message}", highlight=False)


# --- plan --------------------------------------------------------------------------------------------------


def _result_dict(name: str, result: AssignResult) -> dict[str, Any]:
    d: dict[str, Any] = {"node": name, "outcome": result.outcome, "message": result.message}
    if isinstance(result, Assignment | AlreadyHasCIDR | LabelsNoLongerMatch):
        d["cidrs"] = [str(c) for c in result.cidrs]
    if isinstance(result, Assignment | PoolExhausted | AlreadyHasCIDR | LabelsNoLongerMatch) and result.pool:
        d["pool"] = result.pool
    if isinstance(result, LabelsNoLongerMatch):
        d["selected"] = result.selected
    if isinstance(result, PoolExhausted):
        d["families"] = list(result.families)
    if isinstance(result, NoPoolMatches) and result.disabled:
        d["disabledMatches"] = list(result.disabled)
    return d


_OUTCOME_STYLE = {
    "assigned": "green",
    "already-has-cidr": "dim",
    "labels-no-longer-match": "yellow",
    "no-pool-matches": "red",
    "pool-exhausted": "red",
    "node-terminating": "dim",
}


def _render_plan(
    console: Console,
    rows: list[dict[str, Any]],
    reports: list[OccupyReport],
    statuses: list[PoolStatus],
    invalid: list[PoolSpecError],
) -> None:
    for e in invalid:
        console.print(f"[red]invalid pool (ignored)[/red] {e}", highlight=False)
    _render_reports(console, reports)
    t = Table(title="IPAM plan (dry run: nothing is written)", title_justify="left")
    all_cidrs = [c for r in rows for c in r.get("cidrs", [])]
    families = [f for f, v6 in (("IPV4", False), ("IPV6", True)) if any((":" in c) == v6 for c in all_cidrs)]
    for col in ("NODE", "OUTCOME", "POOL", *(families or ["CIDRS"]), "WHY"):
        t.add_column(col)
    for r in rows:
        cidrs = r.get("cidrs", [])
        per_family = [next((c for c in cidrs if (":" in c) == (f == "IPV6")), "") for f in families] or [""]
        style = _OUTCOME_STYLE.get(r["outcome"], "")
        why = "" if r["outcome"] == "assigned" else r["message"]
        t.add_row(r["node"], f"[{style}]{r['outcome']}[/{style}]", r.get("pool", ""), *per_family, why)
    console.print(t)
    _render_statuses(console, statuses, title="Pools after the plan")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    console.print("Summary: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), highlight=False)


@app.command("plan")
def plan(ctx: typer.Context, pools: PoolsOpt = None) -> None:
    """Dry run: which block each node would get from which pool, and why others get none. Writes nothing.

    Nodes are taken in name order; the live operator may hand out different blocks if nodes arrive in another order.
    Exit 1 when a node would be left without a block.
    """
    opts = options(ctx)

    def body() -> int:
        valid, invalid = _pools(opts, pools)
        if opts.output != OutputFormat.table:  # the table shows them itself
            _warn_invalid(opts, invalid)
        state = IPAMState(valid, _nodes(opts))
        reports = state.occupy_existing()
        rows = [_result_dict(name, result) for name, result in state.plan()]
        statuses = state.statuses()
        doc = {
            "nodes": rows,
            "existing": [_report_dict(r) for r in reports],
            "pools": [s.to_dict() for s in statuses],
            "invalidPools": _pool_error_dicts(invalid),
        }
        emit(doc, opts.output, lambda c: _render_plan(c, rows, reports, statuses, invalid))
        stuck = any(r["outcome"] in ("no-pool-matches", "pool-exhausted") for r in rows)
        return EXIT_FINDINGS if stuck or invalid else 0

    guarded(body)


# --- status ------------------------------------------------------------------------------------------------


def _render_statuses(console: Console, statuses: list[PoolStatus], *, title: str = "PodCIDRPools") -> None:
    t = Table(title=title, title_justify="left")
    for col in ("POOL", "PRIORITY", "SELECTOR", "FAMILY", "CIDRS", "BLOCK", "CAPACITY", "ALLOCATED", "FREE", "NODES"):
        t.add_column(col)
    for s in statuses:
        name = s.name + (" [dim](disabled)[/dim]" if s.disabled else "")
        shown = ", ".join(s.nodes[:5]) + (f" +{len(s.nodes) - 5}" if len(s.nodes) > 5 else "")
        for i, f in enumerate(s.families):
            free = f"[red]{f.free}[/red]" if f.free == 0 else str(f.free)
            t.add_row(
                name if i == 0 else "",
                str(s.priority) if i == 0 else "",
                s.selector if i == 0 else "",
                f.family,
                ", ".join(f.cidrs),
                f"/{f.block_prefix}",
                str(f.capacity),
                str(f.allocated),
                free,
                f"{len(s.nodes)} ({shown})" if i == 0 and s.nodes else ("0" if i == 0 else ""),
            )
    console.print(t)


@app.command("status")
def status(ctx: typer.Context, pools: PoolsOpt = None) -> None:
    """Per pool: CIDRs, block size, allocated and free blocks per family, and the nodes holding a block."""
    opts = options(ctx)

    def body() -> int:
        valid, invalid = _pools(opts, pools)
        _warn_invalid(opts, invalid)
        state = IPAMState(valid, _nodes(opts))
        reports = state.occupy_existing()
        statuses = state.statuses()
        doc = {
            "pools": [s.to_dict() for s in statuses],
            "existing": [_report_dict(r) for r in reports],
            "invalidPools": _pool_error_dicts(invalid),
        }

        def table(c: Console) -> None:
            _render_statuses(c, statuses)
            _render_reports(c, reports)

        emit(doc, opts.output, table)
        return 0

    guarded(body)


# --- check -------------------------------------------------------------------------------------------------


def _render_problems(console: Console, problems: list[Problem]) -> None:
    if not problems:
        console.print("[green]No IPAM problems found.[/green]")
        return
    for p in problems:
        color = {"error": "red", "warning": "yellow"}.get(p.severity, "blue")
        console.print(f"[{color}]{p.severity}[/{color}] {p.id}: {p.message}", highlight=False)


@app.command("check")
def check(ctx: typer.Context, pools: PoolsOpt = None) -> None:
    """Audit node pod CIDRs against the pools (like calicoctl ipam check). Exit 1 on errors or warnings."""
    opts = options(ctx)

    def body() -> int:
        valid, invalid = _pools(opts, pools)
        problems = check_ipam(valid, _nodes(opts), pool_errors=invalid)
        emit({"problems": problems}, opts.output, lambda c: _render_problems(c, problems))
        return EXIT_FINDINGS if any(p.severity in ("error", "warning") for p in problems) else 0

    guarded(body)


# --- import-calico -----------------------------------------------------------------------------------------


def _import_yaml(result: CalicoImport) -> str:
    lines = ["# PodCIDRPools imported from Calico IPPools by 'cni-migrate ipam import-calico'."]
    lines += [f"# note: {n}" for n in result.notes]
    lines += [f"# NOT IMPORTED: {i.message}" for i in result.issues]
    out = "\n".join(lines) + "\n"
    for m in result.manifests:
        out += "---\n" + dump_yaml(m)
    return out


def _render_import(console: Console, result: CalicoImport) -> None:
    t = Table(title="PodCIDRPools from Calico IPPools", title_justify="left")
    for col in ("POOL", "CIDRS", "BLOCK", "SELECTOR", "PRIORITY", "DISABLED", "FROM"):
        t.add_column(col)
    for m in result.manifests:
        spec = m["spec"]
        cidrs = spec["cidrs"]
        blocks = [f"/{spec['blockSize'][f]}" for f in (IPV4, IPV6) if any((":" in c) == (f == IPV6) for c in cidrs)]
        sel = spec.get("nodeSelector")
        t.add_row(
            m["metadata"]["name"],
            ", ".join(cidrs),
            " ".join(blocks),
            label_selector_text(sel),
            str(spec["priority"]),
            "yes" if spec.get("disabled") else "",
            m["metadata"]["annotations"]["ipam.cni-migrate.io/imported-from"],
        )
    console.print(t)
    for n in result.notes:
        console.print(f"[blue]note[/blue] {n}", highlight=False)
    for i in result.issues:
        console.print(f"[red]not imported[/red] {i.message}", highlight=False)
    if result.manifests:
        console.print("[dim]Write the manifests with -o yaml, review them, then kubectl apply -f.[/dim]")


@app.command("import-calico")
def import_calico(
    ctx: typer.Context,
    block_size: Annotated[
        int,
        typer.Option(
            "--block-size",
            help="Prefix length of each node's IPv4 block (its podCIDR). Calico's blockSize is the size of its "
            "per-node affinity blocks, of which a node may hold several, so it is not used by default",
        ),
    ] = DEFAULT_BLOCK_SIZE[IPV4],
    block_size_v6: Annotated[
        int, typer.Option("--block-size-v6", help="Prefix length of each node's IPv6 block")
    ] = DEFAULT_BLOCK_SIZE[IPV6],
    keep_calico_block_size: Annotated[
        bool,
        typer.Option(
            "--keep-calico-block-size",
            help="Use each IPPool's own blockSize as the per-node block (a node can then run only that many pods)",
        ),
    ] = False,
) -> None:
    """Turn the input's Calico IPPools into PodCIDRPool manifests (-o yaml for kubectl apply). Writes nothing.

    Exit 1 when an IPPool could not be imported (e.g. a selector Kubernetes label selectors cannot express).
    """
    opts = options(ctx)

    def body() -> int:
        for flag, value, fam in (("--block-size", block_size, IPV4), ("--block-size-v6", block_size_v6, IPV6)):
            lo, hi = BLOCK_SIZE_RANGE[fam]
            if not lo <= value <= hi:
                raise BadInput(f"{flag} {value}: a per-node {fam} block must be /{lo} to /{hi}")
        facts = opts.facts()
        calico = facts.cni.calico
        if calico is None or not calico.ip_pools.value:
            why = f" ({calico.ip_pools.unknown})" if calico is not None and not calico.ip_pools.known else ""
            raise BadInput(f"the input has no Calico IPPools to import{why}")
        result = import_calico_pools(
            calico.ip_pools.value,
            ipv4_block_size=block_size,
            ipv6_block_size=block_size_v6,
            keep_calico_block_size=keep_calico_block_size,
        )
        fmt = opts.output
        if fmt == OutputFormat.yaml:
            typer.echo(_import_yaml(result), nl=False)
        else:
            emit(result.to_dict(), fmt, lambda c: _render_import(c, result))
        return EXIT_FINDINGS if result.issues else 0

    guarded(body)
