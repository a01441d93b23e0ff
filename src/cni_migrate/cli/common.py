"""What every command shares: global options, loading facts, output formats, errors and exit codes.

Exit codes: 0 ok, 1 findings or failed checks, 2 bad input or usage. User errors never print a traceback.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
    kubeconfig: str | None = None
    context: str | None = None
    snapshot: str | None = None
    output: OutputFormat = OutputFormat.table
    verbose: bool = False
    quiet: bool = False
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


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    if not isinstance(obj, GlobalOptions):  # pragma: no cover - the root callback always sets it
        obj = GlobalOptions()
        ctx.find_root().obj = obj
    return obj


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
