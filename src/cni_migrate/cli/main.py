"""The ``cni-migrate`` command (also installed as the kubectl plugin ``kubectl cni-migrate``)."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer._click.core import Command, Context  # typer vendors click; its groups use these types
from typer.core import TyperGroup

from cni_migrate import __version__
from cni_migrate.cli import discover as discover_cmd
from cni_migrate.cli.common import GlobalOptions, OutputFormat

# Sub-commands imported only when used: each pulls in its own analysis engine, and `lint` must start fast.
# name -> (module, attribute): a typer.Typer sub-app, or a command function.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "lint": ("cni_migrate.cli.lint", "lint"),
    "plan": ("cni_migrate.cli.plan", "plan"),
    "ipam": ("cni_migrate.cli.ipam", "app"),
    "node": ("cni_migrate.cli.node", "app"),
}


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attr = LAZY_COMMANDS[cmd_name]
        target: Any = getattr(importlib.import_module(module), attr)
        if isinstance(target, typer.Typer):
            cmd: Command = typer.main.get_group(target)
        else:
            single = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})
            single.command(cmd_name)(target)
            cmd = typer.main.get_command(single)
        cmd.name = cmd_name
        return cmd


app = typer.Typer(
    cls=LazyGroup,
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
# Further sub-commands: add them to LAZY_COMMANDS above.


def run() -> None:
    app()
