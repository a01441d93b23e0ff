"""What every command shares: global options, loading facts, output formats, errors and exit codes.

Exit codes: 0 ok, 1 findings or failed checks, 2 bad input or usage. User errors never print a traceback.
"""

from __future__ import annotations

import copy
import enum
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import orjson
import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from typer._click.core import Command, Context, Parameter, ParameterSource  # typer vendors click
from typer._click.exceptions import BadParameter
from typer.core import TyperGroup, TyperOption

from cni_migrate.facts import extract_facts
from cni_migrate.facts.model import ClusterFacts
from cni_migrate.facts.objects import ObjectStore
from cni_migrate.facts.snapshot import SnapshotError, load_snapshot
from cni_migrate.kube import ClusterUnreachable, KubeConfigurationError, KubeError

if TYPE_CHECKING:
    from cni_migrate.kube.client import Cluster

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3  # the tool caught a bug of its own (e.g. the planner built a plan that breaks an invariant)


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class BadInput(Exception):
    """A user error: printed as one clear line, exit code 2."""


@dataclass
class GlobalOptions:
    """The global options, given before or after the command name (after wins), and the facts they load.

    ``output`` is the common format (table, json or yaml); a command that declares more formats with
    :func:`output_formats` reads the chosen one from ``output_format`` (``output`` is then ``table``).
    ``explicit`` names the options given on the command line (not defaults).
    """

    kubeconfig: str | None = None
    context: str | None = None
    snapshot: str | None = None
    output: OutputFormat = OutputFormat.table
    verbose: bool = False
    quiet: bool = False
    output_format: str = OutputFormat.table.value
    explicit: set[str] = field(default_factory=set)
    _store: ObjectStore | None = field(default=None, repr=False)
    _facts: ClusterFacts | None = field(default=None, repr=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, quiet=self.quiet)

    def connect(self) -> Cluster:
        from cni_migrate.kube.client import Cluster  # noqa: PLC0415 - the client library loads only when needed

        if self.snapshot:
            raise BadInput("this command needs a live cluster; --snapshot cannot be used with it")
        return Cluster.connect(self.kubeconfig, self.context)

    def store(self) -> ObjectStore:
        if self._store is None:
            if self.snapshot:
                self._store = load_snapshot(self.snapshot)
            else:
                from cni_migrate.facts.live import read_cluster  # noqa: PLC0415 - see connect()

                cluster = self.connect()
                with progress_bar(self, "reading cluster") as advance:
                    self._store = read_cluster(cluster, progress=advance)
        return self._store

    def facts(self) -> ClusterFacts:
        if self._facts is None:
            self._facts = extract_facts(self.store(), kind="snapshot" if self.snapshot else "live")
            if self.verbose and self._facts.source.ignored_kinds:
                ignored = ", ".join(f"{k} ({n})" for k, n in sorted(self._facts.source.ignored_kinds.items()))
                self.err.print(f"[dim]ignored objects of kinds the tool does not use: {ignored}[/dim]")
            if self._facts.source.missing_kinds and not self.quiet:
                self.err.print(
                    "[yellow]note:[/yellow] the input has no "
                    + ", ".join(self._facts.source.missing_kinds)
                    + " objects; facts derived from them are reported as unknown"
                )
        return self._facts


def options(ctx: typer.Context | Context) -> GlobalOptions:
    """The global options of this invocation (set by the options themselves wherever they were given)."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, GlobalOptions):
        obj = GlobalOptions()
        root.obj = obj
    return obj


# --- the global options: one definition, attached to the root and to every command -------------------------

GLOBAL_PANEL = "Global options"
DEFAULT_FORMATS: tuple[str, ...] = tuple(f.value for f in OutputFormat)
_FORMATS_ATTR = "__cni_output_formats__"
_ATTACHED_ATTR = "__cni_global_options__"
F = TypeVar("F", bound=Callable[..., Any])


def output_formats(*formats: str) -> Callable[[F], F]:
    """Declare the ``-o`` formats a command writes (without it: table, json, yaml); the first is its default.

    ``-o table`` is always accepted and means the command's human form (its first format). The command reads the
    chosen format from ``options(ctx).output_format``; any other is refused with a usage error (exit 2).
    """

    def mark(fn: F) -> F:
        setattr(fn, _FORMATS_ATTR, tuple(formats))
        return fn

    return mark


def _global_options_definition(
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            show_default="$KUBECONFIG, then ~/.kube/config",
            help="Path to the kubeconfig file",
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            show_default="the kubeconfig's current context",
            help="The kubeconfig context to use",
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = None,
    snapshot: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            show_default="the live cluster",
            help="Work offline from a snapshot: a kubectl -o yaml/json file or a directory",
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="Output format: table, json or yaml (a command's --help lists its own)",
            rich_help_panel=GLOBAL_PANEL,
        ),
    ] = OutputFormat.table.value,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say more", show_default=False, rich_help_panel=GLOBAL_PANEL)
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Only results and errors", show_default=False, rich_help_panel=GLOBAL_PANEL),
    ] = False,
) -> None:
    """The single definition of each global option (never called: its parameters become click options)."""


_TEMPLATES: list[TyperOption] = []


def _templates() -> list[TyperOption]:
    if not _TEMPLATES:
        holder = typer.Typer(add_completion=False)
        holder.command()(_global_options_definition)
        _TEMPLATES.extend(p for p in typer.main.get_command(holder).params if isinstance(p, TyperOption))
    return _TEMPLATES


def _formats_of(cmd: Command) -> tuple[str, ...]:
    return tuple(getattr(cmd.callback, _FORMATS_ATTR, DEFAULT_FORMATS))


def _store_value(formats: tuple[str, ...] | None) -> Callable[[Context, Parameter, Any], Any]:
    """The callback of one attached option: an explicit value is recorded (the later one wins); on a command
    (not a group) the ``-o`` in effect is checked against the formats the command accepts."""

    def store(ctx: Context, param: Parameter, value: Any) -> Any:
        opts = options(ctx)
        key = (param.name or "").removeprefix("global_")
        if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
            opts.explicit.add(key)
            if key == "output":
                opts.output_format = str(value)
                if value in DEFAULT_FORMATS:
                    opts.output = OutputFormat(value)
            else:
                setattr(opts, key, value)
        if key == "output" and formats is not None:
            _resolve_output(opts, formats, ctx, param)
        return value

    return store


def _resolve_output(opts: GlobalOptions, formats: tuple[str, ...], ctx: Context, param: Parameter) -> None:
    chosen = opts.output_format if "output" in opts.explicit else formats[0]
    if chosen == OutputFormat.table.value and chosen not in formats:
        chosen = formats[0]  # -o table: the command's human form
    if chosen not in formats:
        raise BadParameter(
            f"{chosen!r}: this command writes {', '.join(formats)}",
            ctx=ctx,
            param=param if isinstance(param, TyperOption) else None,
        )
    opts.output_format = chosen
    opts.output = OutputFormat(chosen) if chosen in DEFAULT_FORMATS else OutputFormat.table


def attach_global_options(cmd: Command, *, is_root: bool = False) -> Command:
    """Give ``cmd`` (and, for a group, every command under it) the global options, unless it declares an option
    of the same name itself. Idempotent. Groups and the root only record the values; each command checks ``-o``.
    """
    if getattr(cmd, _ATTACHED_ATTR, False):
        return cmd
    taken = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    is_group = isinstance(cmd, TyperGroup)
    formats = None if (is_group or is_root) else _formats_of(cmd)
    for template in _templates():
        if taken & {*template.opts, *template.secondary_opts}:
            continue  # the command defines this option itself (a command not yet moved to the global ones)
        p = copy.copy(template)
        p.name = f"global_{template.name}"
        p.expose_value = False
        p.callback = _store_value(formats)
        if template.name == "output" and formats is not None:
            p.help = f"Output format: {', '.join(formats)}"
            p.default = formats[0]
        cmd.params.append(p)
    setattr(cmd, _ATTACHED_ATTR, True)
    if is_group and not is_root:
        for sub in getattr(cmd, "commands", {}).values():
            attach_global_options(sub)
    return cmd


@contextmanager
def progress_bar(opts: GlobalOptions, what: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, silent with --quiet or when stderr is not a terminal."""
    console = Console(stderr=True)
    if opts.quiet or not console.is_terminal:
        yield lambda _label, _done, _total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as prog:
        task = prog.add_task(what, total=None)

        def advance(label: str, done: int, total: int) -> None:
            prog.update(task, description=f"{what}: {label}", completed=done, total=total)

        yield advance


def to_plain(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_plain(d) for d in data]
    if isinstance(data, dict):
        return {k: to_plain(v) for k, v in data.items()}
    return data


def dump_json(data: Any) -> str:
    return orjson.dumps(to_plain(data), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def dump_yaml(data: Any) -> str:
    return str(yaml.safe_dump(to_plain(data), sort_keys=False, default_flow_style=False, allow_unicode=True))


def emit(data: Any, fmt: OutputFormat | str, table: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON or YAML, or call ``table`` for the human form."""
    fmt = fmt.value if isinstance(fmt, OutputFormat) else fmt
    if fmt == "json":
        sys.stdout.write(dump_json(data) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(dump_yaml(data))
    else:
        console = Console()
        if not console.is_terminal:  # piped: don't squeeze tables into 80 columns
            console = Console(width=160)
        table(console)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], int | None]) -> None:
    """Run a command body, turning the tool's own user-facing errors into a message and exit code 2."""
    try:
        code = fn()
    except (SnapshotError, BadInput, KubeConfigurationError) as e:
        fail(str(e))
    except ClusterUnreachable as e:
        fail(f"{e} (check --kubeconfig/--context, or work offline with --snapshot)")
    except KubeError as e:
        fail(str(e))
    raise typer.Exit(code or EXIT_OK)
