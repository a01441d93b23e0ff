"""``cni-migrate node inspect|backup|clean|restore``: the node agent, run as root on the node itself (by hand,
or by ``apply``'s node transports: a privileged pod, ssh, or this machine).

Exit codes: 0 ok (``inspect --fail-if-found``: nothing found), 1 the action failed or (with --fail-if-found)
old state was found, 2 bad input or a node that cannot be worked on (no iptables, unknown backend).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cni_migrate.actions.nodes import agent
from cni_migrate.actions.nodes.owners import Owner, parse_owners
from cni_migrate.cli.common import EXIT_FINDINGS, BadInput, emit, guarded, options

app = typer.Typer(
    name="node",
    help="The node agent: inspect, back up, clean and restore the old CNI's and kube-proxy's state on this node. "
    "Runs as root on the node.",
    no_args_is_help=True,
)

Root = Annotated[
    Path | None,
    typer.Option(help="The node's file-system root (default: $CNI_MIGRATE_NODE_ROOT, then /)", show_default=False),
]
BackupDir = Annotated[
    Path | None, typer.Option(help="Where backups go (default: ROOT/var/lib/cni-migrate/node-backups)")
]
OldCni = Annotated[str, typer.Option("--old-cni", help="The CNI being replaced: calico, flannel, canal or none")]
KubeProxy = Annotated[bool, typer.Option("--kube-proxy/--no-kube-proxy", help="Also kube-proxy's state")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would change; change nothing")]


def _owners(old_cni: str | None, kube_proxy: bool) -> frozenset[Owner]:
    if old_cni is None:
        return agent.ALL_OWNERS
    try:
        return parse_owners(old_cni, kube_proxy)
    except ValueError as e:
        raise BadInput(str(e)) from e


def _run(ctx: typer.Context, fn: Callable[[], agent.Report], fail_if_found: bool = False) -> None:
    opts = options(ctx)

    def body() -> int:
        try:
            report: agent.Report = fn()
        except agent.AgentError as e:
            if e.exit_code == 2:
                raise BadInput(str(e)) from e
            Console(stderr=True).print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
            return EXIT_FINDINGS

        def table(console: Console) -> None:
            head = f"node {report.action}" + (" (dry run)" if report.dry_run else "")
            console.print(f"[bold]{head}[/bold]: {', '.join(report.owners) or 'nothing'}", highlight=False)
            for c in report.changes:
                console.print(c.line(), highlight=False, markup=False)
            if not report.changes:
                console.print("  (no changes)" if report.action != "inspect" else "  (nothing found)")
            for n in report.not_restorable:
                console.print(f"! not restorable: {n}", highlight=False, markup=False)
            if report.backup:
                console.print(f"backup: {report.backup}", highlight=False)
            for n in report.notes:
                console.print(f"note: {n}", highlight=False, markup=False)

        emit(report.to_json(), opts.output, table)
        return EXIT_FINDINGS if fail_if_found and report.changes else 0

    guarded(body)


@app.command("inspect")
def inspect_cmd(
    ctx: typer.Context,
    root: Root = None,
    old_cni: Annotated[str | None, typer.Option("--old-cni", help="Only this CNI (default: all)")] = None,
    kube_proxy: KubeProxy = True,
    fail_if_found: Annotated[bool, typer.Option(help="Exit 1 if any old state is found")] = False,
) -> None:
    """Report the old CNIs' and kube-proxy's state on this node (read-only)."""
    _run(ctx, lambda: agent.inspect(agent.NodePaths.at(root), _owners(old_cni, kube_proxy)), fail_if_found)


@app.command("backup")
def backup_cmd(ctx: typer.Context, root: Root = None, backup_dir: BackupDir = None) -> None:
    """Save all of it (iptables of every backend, ipsets, nftables, links, routes, CNI files) with checksums."""
    _run(ctx, lambda: agent.backup(agent.NodePaths.at(root, backup_dir)))


@app.command("clean")
def clean_cmd(
    ctx: typer.Context,
    old_cni: OldCni,
    kube_proxy: KubeProxy = False,
    root: Root = None,
    backup_dir: BackupDir = None,
    flannel_network: Annotated[
        list[str] | None, typer.Option(help="Flannel's network CIDR, when /run/flannel/subnet.env is gone")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Back up, then remove exactly the old CNI's (and kube-proxy's) state; everything else stays as it is."""
    owners = _owners(old_cni, kube_proxy)
    paths = agent.NodePaths.at(root, backup_dir)
    _run(ctx, lambda: agent.clean(paths, owners, dry_run=dry_run, flannel_networks=flannel_network))


@app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    root: Root = None,
    backup_dir: BackupDir = None,
    backup_id: Annotated[
        str | None, typer.Option("--backup", help="Backup id (default: the first unrestored clean)")
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Put back what a clean removed, from its backup (checksums verified first)."""
    _run(ctx, lambda: agent.restore(agent.NodePaths.at(root, backup_dir), backup_id=backup_id, dry_run=dry_run))
