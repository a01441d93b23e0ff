"""The ``cni-migrate`` command (also installed as the kubectl plugin ``kubectl cni-migrate``)."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer._click.core import Command, Context  # typer vendors click; its groups use these types
from typer.core import TyperGroup

from cni_migrate import __version__
from cni_migrate.cli import discover as discover_cmd
from cni_migrate.cli.common import attach_global_options, options

# Sub-commands imported only when used: each pulls in its own analysis engine, and `lint` must start fast.
# name -> (module, attribute): a typer.Typer sub-app, or a command function.
# Every command (and every command of a sub-app) gets the global options --kubeconfig, --context, --snapshot,
# -o/--output, -v/--verbose, -q/--quiet, before and after its name, without declaring them: take `ctx: typer.Context`
# and read `options(ctx)` (cli.common). Extra -o formats: decorate the function with `@output_formats(...)` and read
# `options(ctx).output_format`. A command that declares one of these options itself keeps its own (don't).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "lint": ("cni_migrate.cli.lint", "lint"),
    "plan": ("cni_migrate.cli.plan", "plan"),
    "ipam": ("cni_migrate.cli.ipam", "app"),
    "apply": ("cni_migrate.cli.apply", "apply"),
    "status": ("cni_migrate.cli.apply", "status"),
    "rollback": ("cni_migrate.cli.apply", "rollback"),
    "verify": ("cni_migrate.cli.verify", "verify"),
    "monitor": ("cni_migrate.cli.verify", "monitor"),
    "node": ("cni_migrate.cli.node", "app"),
    "policy": ("cni_migrate.cli.policy", "app"),
}


class LazyGroup(TyperGroup):
    """The root group: lazy sub-commands, and the global options on the root and on every command under it.

    A command gets the global options (--kubeconfig, --context, --snapshot, -o, -v, -q) without declaring them:
    they are attached here, before and after its name alike, and read with ``options(ctx)``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        attach_global_options(self, is_root=True)

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in LAZY_COMMANDS:
            found = super().get_command(ctx, cmd_name)
            return attach_global_options(found) if found is not None else None
        module, attr = LAZY_COMMANDS[cmd_name]
        target: Any = getattr(importlib.import_module(module), attr)
        if isinstance(target, typer.Typer):
            cmd: Command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})
            single.command(cmd_name)(target)
            cmd = typer.main.get_command(single)
        cmd.name = cmd_name
        return attach_global_options(cmd)


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    options(ctx)  # the global options are attached by LazyGroup and recorded as they are parsed


app.command("discover")(discover_cmd.discover)
app.command("snapshot")(discover_cmd.snapshot)
# Further sub-commands: add them to LAZY_COMMANDS above.


def run() -> None:
    app()
