"""The ``cni-migrate`` command (also installed as the kubectl plugin ``kubectl cni-migrate``)."""

from __future__ import annotations

from typing import Annotated

import typer

from cni_migrate import __version__
from cni_migrate.cli import discover as discover_cmd
from cni_migrate.cli import ipam as ipam_cmd
from cni_migrate.cli import lint as lint_cmd
from cni_migrate.cli import plan as plan_cmd
from cni_migrate.cli.common import GlobalOptions, OutputFormat

app = typer.Typer(
    name="cni-migrate",
    help="Discover, lint, plan, execute and verify CNI migrations to Cilium on self-managed clusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cni-migrate {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None, typer.Option(help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    ] = None,
    context: Annotated[str | None, typer.Option(help="The kubeconfig context to use")] = None,
    snapshot: Annotated[
        str | None, typer.Option(help="Work offline from a snapshot: a kubectl -o yaml/json file or a directory")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format")] = OutputFormat.table,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say more")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(
        kubeconfig=kubeconfig, context=context, snapshot=snapshot, output=output, verbose=verbose, quiet=quiet
    )


app.command("discover")(discover_cmd.discover)
app.command("snapshot")(discover_cmd.snapshot)
# Sub-command registrations (one line each) follow.
app.add_typer(ipam_cmd.app, name="ipam")
app.command("plan")(plan_cmd.plan)
app.command("lint")(lint_cmd.lint)


def run() -> None:
    app()
