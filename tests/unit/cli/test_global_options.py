"""The global options work before and after the name of every command, with the same result.

Every command is found by walking the real command tree (lazy commands included), so a command added later is
covered without editing this file; the table below only supplies the arguments a command needs to do real work.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer._click.core import Command, Context  # typer vendors click
from typer.testing import CliRunner, Result

from cni_migrate.cli.common import GLOBAL_PANEL, options, output_formats
from cni_migrate.cli.main import LAZY_COMMANDS, app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
OPERATOR = str(EXAMPLES / "calico-operator-multipool")
GLOBAL_FLAGS = {"--kubeconfig", "--context", "--snapshot", "--output", "-o", "--verbose", "-v", "--quiet", "-q"}

# The arguments a command needs to do its work offline (a command not listed runs with none: it may then fail
# with a usage error, which must still be the same with the options before and after its name).
ARGS: dict[tuple[str, ...], list[str]] = {
    ("lint",): ["--cilium-version", "1.16.5"],
    ("plan",): ["--to", "cilium", "--cilium-version", "1.16.5", "--strategy", "offline"],
    ("ipam", "plan"): ["--pools", "{pools}"],
    ("ipam", "status"): ["--pools", "{pools}"],
    ("ipam", "check"): ["--pools", "{pools}"],
    ("snapshot",): ["--out-dir", "{tmp}/snap"],
}
# Commands whose -o json output is a JSON document when they succeed.
JSON_COMMANDS = {("discover",), ("lint",), ("plan",), ("ipam", "plan"), ("ipam", "status"), ("ipam", "check")}


def _leaves(cmd: Command, ctx: Context, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    names = cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else None
    if names is None:
        yield path, cmd
        return
    for name in names:
        sub = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
        assert isinstance(sub, Command), name
        yield from _leaves(sub, ctx, (*path, name))


def _tree() -> tuple[Command, Context]:
    root = typer.main.get_command(app)
    return root, Context(root, info_name="cni-migrate")


def _all_commands() -> list[tuple[str, ...]]:
    root, ctx = _tree()
    return [path for path, _ in _leaves(root, ctx)]


COMMANDS = _all_commands()


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = CliRunner().invoke(app, ["--snapshot", OPERATOR, "-o", "yaml", "ipam", "import-calico"])
    assert r.exit_code in (0, 1) and "kind: PodCIDRPool" in r.stdout, r.output  # 1: a pool was not imported
    f = tmp_path_factory.mktemp("pools") / "pools.yaml"
    f.write_text(r.stdout)
    return f


def _run(argv: list[str], tmp: Path) -> Result:
    env = {
        "KUBECONFIG": str(tmp / "no-kubeconfig"),
        "HOME": str(tmp),
        "COLUMNS": "250",
    }  # never the machine's own cluster
    return CliRunner(env=env).invoke(app, argv)


def test_every_command_is_covered() -> None:
    assert {("discover",), ("snapshot",), ("lint",), ("plan",), ("ipam", "plan"), ("ipam", "import-calico")} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_each_global_option_once(path: tuple[str, ...]) -> None:
    root, ctx = _tree()
    cmd: Command = root
    for name in path:
        cmd = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
    flags = [o for p in cmd.params for o in p.opts]
    for flag in GLOBAL_FLAGS:
        assert flags.count(flag) == 1, f"{' '.join(path)}: {flag} x{flags.count(flag)}"


@pytest.mark.parametrize(
    "global_args",
    [
        pytest.param(["--snapshot", OPERATOR, "-o", "json", "-v"], id="snapshot-json-verbose"),
        pytest.param(["--snapshot", OPERATOR, "-q"], id="snapshot-quiet"),
        pytest.param(["--kubeconfig", "{tmp}/missing.yaml", "--context", "prod", "-o", "yaml"], id="kubeconfig"),
    ],
)
@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_global_options_before_and_after_the_command_name(
    path: tuple[str, ...], global_args: list[str], tmp_path: Path, pools: Path
) -> None:
    if path[0] == "node" and path[-1] != "inspect":
        pytest.skip("node backup/clean/restore change the network state of the machine they run on")

    def fill(args: list[str]) -> list[str]:
        return [a.replace("{tmp}", str(tmp_path)).replace("{pools}", str(pools)) for a in args]

    args = fill(ARGS.get(path, []))
    g = fill(global_args)
    before = _run([*g, *path, *args], tmp_path)
    after = _run([*path, *args, *g], tmp_path)
    split = _run([*g[:2], *path, *args, *g[2:]], tmp_path)  # some before, some after
    for r in (before, after, split):
        assert "No such option" not in r.output, r.output
    assert (before.exit_code, before.stdout, before.stderr) == (after.exit_code, after.stdout, after.stderr)
    assert (before.exit_code, before.stdout, before.stderr) == (split.exit_code, split.stdout, split.stderr)
    if path in ARGS or path in JSON_COMMANDS:
        assert before.exit_code in (0, 1, 2)
    # The options took effect, not only parsed: JSON with -o json, an error naming the missing kubeconfig.
    if "--snapshot" in global_args and path in JSON_COMMANDS and "json" in global_args:
        assert before.exit_code in (0, 1), before.output
        json.loads(before.stdout)
    if "--kubeconfig" in global_args and path in JSON_COMMANDS:
        assert before.exit_code == 2 and "missing.yaml" in before.stderr, before.output


def test_after_the_name_wins_and_flags_are_merged(tmp_path: Path) -> None:
    r = _run(["-o", "yaml", "--snapshot", OPERATOR, "discover", "-o", "json"], tmp_path)
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)
    r = _run(["-q", "--snapshot", OPERATOR, "discover", "-v"], tmp_path)
    assert r.exit_code == 0 and "Cluster facts" in r.stdout
    assert "(API server /version)" in r.stdout  # -v after the name: sources shown


def test_group_level_position(tmp_path: Path) -> None:
    """Between a group and its command (``ipam --snapshot X import-calico``) as well."""
    a = _run(["ipam", "--snapshot", OPERATOR, "-o", "yaml", "import-calico"], tmp_path)
    b = _run(["--snapshot", OPERATOR, "-o", "yaml", "ipam", "import-calico"], tmp_path)
    assert a.exit_code in (0, 1) and (a.stdout, a.exit_code) == (b.stdout, b.exit_code)
    assert "kind: PodCIDRPool" in a.stdout


def test_output_format_checked_per_command(tmp_path: Path) -> None:
    r = _run(["-o", "sarif", "--snapshot", OPERATOR, "discover"], tmp_path)
    assert r.exit_code == 2 and "'sarif': this command writes table, json, yaml" in r.output
    r = _run(["-o", "sarif", "--snapshot", OPERATOR, "lint", "--cilium-version", "1.16.5"], tmp_path)
    assert r.exit_code in (0, 1) and json.loads(r.stdout)["version"] == "2.1.0"
    r = _run(["--snapshot", OPERATOR, "-o", "markdown", "plan", "--to", "cilium", "--cilium-version", "1.16.5",
              "--strategy", "offline"], tmp_path)  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("#"), r.output
    r = _run(["--snapshot", OPERATOR, "-o", "table", "plan", "--to", "cilium", "--cilium-version", "1.16.5",
              "--strategy", "offline"], tmp_path)  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("Plan "), r.output  # table: the command's human form (text)


def test_help_lists_each_option_once_with_its_default() -> None:
    """Every --help: each option in one row, with help text; an option with a default shows it."""
    root, ctx = _tree()
    for path in [(), *COMMANDS]:
        cmd: Command = root
        for name in path:
            cmd = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
        r = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        rows = [line.strip("│ ").removeprefix("* ").strip() for line in r.stdout.splitlines()]
        if path:
            assert GLOBAL_PANEL in r.stdout, path
        for p in cmd.params:
            if p.param_type_name != "option" or getattr(p, "hidden", False) or p.name == "help":
                continue
            long = max(p.opts, key=len)
            starts = [row for row in rows if re.match(rf"{re.escape(long)}(?![\w-])", row)]
            assert len(starts) == 1, (path, long, starts)
            assert (getattr(p, "help", None) or "").strip(), (path, long, "no help text")
            if p.default is not None and not getattr(p, "is_flag", False) and not p.required:
                assert "[default:" in starts[0], (path, long, starts[0])


def _probe_module() -> types.ModuleType:
    """A command function and a sub-app as another issue would add them, declaring no global option."""
    mod = types.ModuleType("cni_migrate_probe_commands")

    def report(ctx: typer.Context) -> None:
        o = options(ctx)
        typer.echo(f"{o.kubeconfig} {o.context} {o.snapshot} {o.output_format} {o.verbose} {o.quiet}")

    @output_formats("text", "json")
    def fancy(ctx: typer.Context) -> None:
        typer.echo(options(ctx).output_format)

    sub = typer.Typer(no_args_is_help=True)
    sub.command("leaf")(report)
    mod.report = report  # type: ignore[attr-defined]
    mod.fancy = fancy  # type: ignore[attr-defined]
    mod.sub = sub  # type: ignore[attr-defined]
    return mod


def test_a_command_added_later_gets_the_global_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "cni_migrate_probe_commands", _probe_module())
    monkeypatch.setitem(LAZY_COMMANDS, "probe", ("cni_migrate_probe_commands", "report"))
    monkeypatch.setitem(LAZY_COMMANDS, "probe-fancy", ("cni_migrate_probe_commands", "fancy"))
    monkeypatch.setitem(LAZY_COMMANDS, "probe-group", ("cni_migrate_probe_commands", "sub"))
    g = ["--kubeconfig", "k.yaml", "--context", "c", "--snapshot", "s", "-o", "yaml", "-v", "-q"]
    expected = "k.yaml c s yaml True True\n"
    for path in (["probe"], ["probe-group", "leaf"]):
        for argv in ([*g, *path], [*path, *g], [*g[:4], *path, *g[4:]], [path[0], *g, *path[1:]]):
            r = _run(argv, tmp_path)
            assert (r.exit_code, r.stdout) == (0, expected), (argv, r.output)
    assert _run(["probe"], tmp_path).stdout == "None None None table False False\n"
    assert _run(["probe-fancy"], tmp_path).stdout == "text\n"  # its default
    assert _run(["-o", "json", "probe-fancy"], tmp_path).stdout == "json\n"
    assert _run(["probe-fancy", "-o", "table"], tmp_path).stdout == "text\n"
    r = _run(["probe-fancy", "-o", "yaml"], tmp_path)
    assert r.exit_code == 2 and "'yaml': this command writes text, json" in r.output
