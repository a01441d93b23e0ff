# ruff: noqa: PLC0415 - heavy modules are imported in the command body, keeping start-up cheap
"""``cni-migrate lint``: validate a Cilium configuration against its version and the cluster before installing.

Reads the values files, the ``--set`` family and a pasted helm command line, merges them as Helm does, loads the
cluster facts (``--snapshot``, the live cluster, or none with ``--no-cluster``) and prints the report of
:func:`cni_migrate.analysis.lint.lint`. Exit codes: 0 no error finding, 1 error findings, 2 bad input.

Heavy modules (the lint engine, YAML, facts) are imported inside the command so that registering it costs
nothing at start-up.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cni_migrate.cli.common import EXIT_FINDINGS, BadInput, guarded, options, output_formats
from cni_migrate.kube import ClusterUnreachable, KubeConfigurationError

if TYPE_CHECKING:
    from rich.console import Console

    from cni_migrate.analysis.lint import HelmCommand, LintReport
    from cni_migrate.analysis.lint.sarif import Origin
    from cni_migrate.cli.common import GlobalOptions
    from cni_migrate.facts.model import ClusterFacts


class LintOutput(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    sarif = "sarif"


class Layer:
    """One input that contributed values: a file (with its parsed data) or a flag."""

    def __init__(self, kind: str, label: str, data: dict[str, Any] | None = None, text: str = "") -> None:
        self.kind = kind  # "file", "set", "set-string", "set-json", "set-file", "set-literal"
        self.label = label  # path, or the flag as typed
        self.data = data
        self.text = text
        self.lines: dict[str, int | None] = {}  # values path -> line, computed on demand


class Inputs:
    """Everything that contributed values, in the order Helm applies it, and the merged result."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.values: dict[str, Any] = {}
        self.command: HelmCommand | None = None


def _read_text(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise BadInput(f"cannot read {what} {path}: not UTF-8 text ({e.reason})") from e


def _load_values_file(path: str) -> Layer:
    from cni_migrate.yamlsafe import YamlInputError, load_one

    text = _read_text(path, "values file")
    try:
        data = load_one(text)
    except YamlInputError as e:
        where = f"{path}:{e.line}" if e.line is not None else path
        raise BadInput(f"{where}: not valid YAML ({e.message})") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a values file must be a YAML mapping, got {type(data).__name__}")
    return Layer("file", path, data, text)


def collect_inputs(files: list[str], sets: list[str], set_strings: list[str], helm_command: str | None) -> Inputs:
    """Merge every source of values in Helm's order; the helm command's own values come first."""
    from cni_migrate.analysis.lint import LintInputError, apply_set, apply_set_json, merge_values
    from cni_migrate.analysis.lint.values import apply_set_value

    inputs = Inputs()
    try:
        if helm_command is not None:
            text = helm_command
            if helm_command == "-" or helm_command.startswith("@"):
                text = _read_text(helm_command.lstrip("@") or "-", "helm command file")
            from cni_migrate.analysis.lint.helm_command import parse_helm_command

            inputs.command = parse_helm_command(text)
        groups: list[tuple[list[str], list[str], list[str], list[str], list[str], list[str]]] = []
        if inputs.command is not None:
            cmd = inputs.command
            groups.append((cmd.values_files, cmd.set_json, cmd.sets, cmd.set_strings, cmd.set_files, cmd.set_literals))
        groups.append((files, [], sets, set_strings, [], []))
        for vfiles, sjson, sset, sstr, sfile, slit in groups:
            file_layers = [_load_values_file(f) for f in vfiles]
            inputs.layers.extend(file_layers)
            inputs.values = merge_values(inputs.values, *(layer.data or {} for layer in file_layers))
            for expr in sjson:
                apply_set_json(inputs.values, expr)
                inputs.layers.append(Layer("set-json", f"--set-json {expr}"))
            for expr in sset:
                apply_set(inputs.values, expr)
                inputs.layers.append(Layer("set", f"--set {expr}"))
            for expr in sstr:
                apply_set(inputs.values, expr, string=True)
                inputs.layers.append(Layer("set-string", f"--set-string {expr}"))
            for expr in sfile:
                key, sep, fpath = expr.partition("=")
                if not sep or not key:
                    raise BadInput(f"--set-file {expr!r}: expected key=path")
                apply_set_value(inputs.values, key, _read_text(fpath, "--set-file"), flag="--set-file")
                inputs.layers.append(Layer("set-file", f"--set-file {expr}"))
            for expr in slit:
                key, sep, raw = expr.partition("=")
                if not sep or not key:
                    raise BadInput(f"--set-literal {expr!r}: expected key=value")
                apply_set_value(inputs.values, key, raw, flag="--set-literal")
                inputs.layers.append(Layer("set-literal", f"--set-literal {expr}"))
    except LintInputError as e:
        raise BadInput(str(e)) from e
    return inputs


# --- provenance of a values path (for messages and SARIF locations) -----------------------------------------


def _set_keys(flag_text: str) -> list[str]:
    """The values paths one ``--set``-family flag assigns (``--set a.b=1,c[0]=x`` -> ``a.b``, ``c``)."""
    import re

    expr = flag_text.split(" ", 1)[1] if " " in flag_text else flag_text
    keys = re.findall(r"(?:^|(?<!\\),)((?:[^=,{}\\]|\\.)+)=", expr)
    return [re.sub(r"\[\d+\]", "", k).replace("\\.", ".") for k in keys]


def _yaml_line(text: str, path: str) -> int | None:
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in path.split("."):
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == part:
                line = k.start_mark.line + 1
                node = v
                break
        else:
            break
    return line


def origin_of(inputs: Inputs, path: str | None) -> Origin | None:
    """The last input that set ``path`` (or a value under it, or a map above it)."""
    from cni_migrate.analysis.lint.sarif import Origin
    from cni_migrate.analysis.lint.values import get_path

    if not path:
        return None
    for layer in reversed(inputs.layers):
        if layer.kind == "file":
            if layer.data is not None and get_path(layer.data, path) is not None:
                if path not in layer.lines:
                    layer.lines[path] = _yaml_line(layer.text, path)
                return Origin(uri=layer.label, line=layer.lines[path])
            continue
        for one in _set_keys(layer.label):
            if one == path or one.startswith(path + ".") or path.startswith(one + "."):
                return Origin(flag=layer.label)
    return None


# --- rendering ----------------------------------------------------------------------------------------------

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_table(console: Console, report: LintReport, inputs: Inputs, facts_source: str, explain: bool) -> None:
    from rich.markup import escape

    sources = [layer.label for layer in inputs.layers if layer.kind == "file"]
    n_sets = sum(1 for layer in inputs.layers if layer.kind != "file")
    what = ", ".join(sources) or "no values files"
    if n_sets:
        what += f", {n_sets} --set flag{'s' if n_sets != 1 else ''}"
    cmd = inputs.command
    if cmd is not None:
        what += f"; helm {cmd.action} {cmd.release or ''} ({cmd.namespace or 'default namespace'})".replace("  ", " ")
    lines = [f"[bold]Cilium {report.cilium_version}[/bold] · values: {escape(what)} · facts: {escape(facts_source)}"]
    if explain:
        lines.append("[bold]Derived settings[/bold]")
        width = max(len(k) for k in report.derived)
        for key, value in report.derived.items():
            how = report.derived_from.get(key, "")
            shown = "-" if value is None else value
            lines.append(f"  {key:<{width}}  {escape(str(shown))}" + (f"  [dim]{escape(how)}[/dim]" if how else ""))
    for f in report.findings:
        origin = origin_of(inputs, f.path)
        where = (f.path or "") + (f" ({origin})" if origin is not None else "")
        style = _STYLE[f.severity]
        lines += [
            f"[{style}]{f.severity.upper():<7}[/{style}] [bold]{f.id}[/bold]  {escape(where)}",
            f"        {escape(f.message)}",
            f"        [dim]fix:[/dim] {escape(f.fix)}",
            f"        [dim]ref:[/dim] {escape(f.reference)}",
        ]
    if report.not_checked:
        if report.findings:
            lines.append("")
        lines.append("[bold]Not checked[/bold] (the input lacks these facts)")
        lines += [
            f"  {n.id}  {escape(n.title)} [dim]- needs {escape(', '.join(n.missing))}[/dim]" for n in report.not_checked
        ]
    color = "red" if report.has_errors else ("yellow" if report.warnings else "green")
    lines.append(f"[{color}]{escape(report.summary_line())}[/{color}]")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


# --- the command ----------------------------------------------------------------------------------------------

NO_CLUSTER_NOTE = "no cluster: cluster rules not checked; use --snapshot or --context"


def _cluster_facts(opts: GlobalOptions) -> ClusterFacts | None:
    """The facts of --snapshot or the cluster; None when no cluster is configured and none was asked for.

    Without --snapshot, --kubeconfig or --context, a missing or unusable kubeconfig (the laptop case) is not an
    error: the values and the version are linted alone, with one line on stderr. A cluster that was named
    explicitly, or one the kubeconfig names but that cannot be reached, is still an error (exit 2).
    """
    try:
        return opts.facts()
    except KubeConfigurationError as e:
        if opts.snapshot or {"kubeconfig", "context"} & opts.explicit:
            raise BadInput(
                f"{e} (lint from a snapshot with --snapshot PATH, or the values alone with --no-cluster)"
            ) from e
        opts.err.print(NO_CLUSTER_NOTE, highlight=False, soft_wrap=True)
        return None
    except ClusterUnreachable as e:
        raise BadInput(f"{e} (lint from a snapshot with --snapshot PATH, or the values alone with --no-cluster)") from e


@output_formats(*(f.value for f in LintOutput))
def lint(
    ctx: typer.Context,
    values_files: Annotated[
        list[str] | None,
        typer.Argument(metavar="VALUES.yaml", help="Helm values files, later ones win ('-': stdin)"),
    ] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="Set values as helm does (a.b=c, a[0]=x, a={x,y}, \\, escapes)")
    ] = None,
    set_string: Annotated[
        list[str] | None, typer.Option("--set-string", help="Like --set, values stay strings")
    ] = None,
    helm_command: Annotated[
        str | None,
        typer.Option(
            "--helm-command",
            help="A pasted 'helm install|upgrade|template ...' command line (or @FILE, or - for stdin): its release, "
            "namespace, --version, -f and --set flags are used",
        ),
    ] = None,
    cilium_version: Annotated[
        str | None, typer.Option("--cilium-version", help="Cilium version X.Y[.Z] (default: the command's --version)")
    ] = None,
    no_cluster: Annotated[
        bool, typer.Option("--no-cluster", help="Lint values and version only; cluster rules are reported not checked")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the derived settings and how they were computed")
    ] = False,
    old_cni_removed: Annotated[
        bool, typer.Option("--old-cni-removed", help="The old CNI is removed before Cilium is installed (offline)")
    ] = False,
    kube_proxy_removed: Annotated[
        bool, typer.Option("--kube-proxy-removed", help="kube-proxy is removed before Cilium is installed")
    ] = False,
    rolling: Annotated[
        bool, typer.Option("--rolling", help="The values are for a per-node migration, both CNIs running side by side")
    ] = False,
) -> None:
    """Validate a Cilium configuration against its version and the cluster before installing it."""
    opts = options(ctx)

    def body() -> int:
        from cni_migrate.analysis.lint import LintContext, LintInputError, parse_cilium_version
        from cni_migrate.analysis.lint import lint as run_lint

        inputs = collect_inputs(values_files or [], set_values or [], set_string or [], helm_command)
        cmd = inputs.command
        version_text = cilium_version or (cmd.version if cmd else None)
        if not version_text:
            raise BadInput(
                "no Cilium version: pass --cilium-version X.Y[.Z]"
                + (" (the helm command has no --version)" if cmd else "")
            )
        try:
            version = parse_cilium_version(version_text)
        except LintInputError as e:
            raise BadInput(str(e)) from e
        if old_cni_removed and rolling:
            raise BadInput("--old-cni-removed and --rolling contradict each other")

        facts = None
        facts_source = "none (--no-cluster: cluster rules not checked)"
        if no_cluster and opts.snapshot:
            raise BadInput("--no-cluster and --snapshot contradict each other")
        if not no_cluster:
            facts = _cluster_facts(opts)
            if facts is None:
                facts_source = "none (no cluster: cluster rules not checked)"
            else:
                facts_source = f"{facts.source.kind} {facts.source.location}"

        context = LintContext(
            old_cni_present=False if old_cni_removed else None,
            kube_proxy_present=False if kube_proxy_removed else None,
            helm_action=cmd.effective_action if cmd else None,
            release_name=(cmd.release if cmd and cmd.release else "cilium"),
            namespace=(cmd.namespace if cmd and cmd.namespace else "kube-system"),
            migration="rolling" if rolling else "none",
            reuse_values=bool(cmd and cmd.reuse_values),
            upgrade_install=bool(cmd and cmd.install),
            rendered_offline=bool(cmd and cmd.action == "template"),
        )
        report = run_lint(inputs.values, str(version), facts, context=context)
        fmt = opts.output_format
        if fmt in ("json", "yaml"):
            from cni_migrate.cli.common import dump_json, dump_yaml

            doc = report.model_dump(mode="json")
            doc["summary"] = report.summary()
            for i, f in enumerate(doc["findings"]):
                origin = origin_of(inputs, report.findings[i].path)
                f["origin"] = str(origin) if origin else None
            doc["inputs"] = {
                "values_files": [layer.label for layer in inputs.layers if layer.kind == "file"],
                "flags": [layer.label for layer in inputs.layers if layer.kind != "file"],
                "helm_command": (
                    {
                        "action": cmd.action,
                        "release": cmd.release,
                        "namespace": cmd.namespace,
                        "chart": cmd.chart,
                        "version": cmd.version,
                    }
                    if cmd
                    else None
                ),
                "facts": facts_source,
            }
            sys.stdout.write((dump_json(doc) + "\n") if fmt == "json" else dump_yaml(doc))
        elif fmt == "sarif":
            import orjson

            from cni_migrate import __version__
            from cni_migrate.analysis.lint.sarif import to_sarif

            origins = [origin_of(inputs, f.path) for f in report.findings]
            doc = to_sarif(report, tool_version=__version__, origins=origins, minor=version.catalog_minor)
            sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            from rich.console import Console

            render_table(Console(emoji=False), report, inputs, facts_source, explain)
        return EXIT_FINDINGS if report.has_errors else 0

    guarded(body)
