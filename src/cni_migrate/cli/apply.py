"""``cni-migrate apply`` / ``status`` / ``rollback``: run a plan against the live cluster, see where a run stands,
undo it.

Exit codes: 0 the run finished (or stopped where ``--until`` asked, or a dry run); 1 the run stopped: a step failed,
it waits at a gate, or it was interrupted (the journal says where; the resume command is printed); 2 bad input:
the plan, its journal or its backups cannot be used, or the cluster is not the one planned (nothing was written).
"""

from __future__ import annotations

import enum
import json
import signal
import sys
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cni_migrate.cli.common import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK, BadInput, GlobalOptions, guarded, options


class DryRun(enum.StrEnum):
    none = "none"
    client = "client"
    server = "server"


class Transport(enum.StrEnum):
    pod = "pod"
    ssh = "ssh"
    local = "local"


class EventFormat(enum.StrEnum):
    text = "text"
    json = "json"


PlanArg = Annotated[str, typer.Argument(help="plan.json, or the directory `plan --out` wrote")]


def _split(values: list[str] | None) -> frozenset[str]:
    return frozenset(v.strip() for item in values or [] for v in item.split(",") if v.strip())


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BadInput(f"{option} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


class Renderer:
    """Events as readable lines (stderr) or one JSON object per line (stdout)."""

    def __init__(self, fmt: EventFormat, quiet: bool) -> None:
        self.fmt = fmt
        self.quiet = quiet
        self.console = Console(stderr=True, quiet=quiet, highlight=False)

    def __call__(self, event: str, **fields: Any) -> None:
        if self.fmt == EventFormat.json:
            sys.stdout.write(json.dumps({"event": event, **fields}, sort_keys=True, default=str) + "\n")
            sys.stdout.flush()
            return
        c = self.console
        if event == "phase":
            c.print(f"[bold]== {escape(fields['phase'])}[/bold]: {escape(fields['title'])}")
        elif event == "step-start":
            c.print(
                f"  [cyan]{escape(fields['step'])}[/cyan] {escape(fields['title'])}"
                + (" [yellow](resumed)[/yellow]" if fields.get("resumed") else "")
            )
        elif event == "step-skip":
            c.print(f"  [dim]{escape(fields['step'])}: {escape(fields['reason'])}[/dim]")
        elif event == "action-done":
            mark = {"done": "[green]done[/green]", "noop": "[dim]no-op[/dim]", "skipped": "[dim]skipped[/dim]"}
            c.print(f"    {mark.get(fields['state'], fields['state'])} {escape(fields['message'])}")
        elif event == "check":
            mark = {
                "pass": "[green]ok[/green]",
                "fail": "[red]FAIL[/red]",
                "skipped": "[yellow]not run[/yellow]",
                "warn": "[yellow]warn[/yellow]",
            }
            c.print(
                f"    check {mark.get(fields['result'], fields['result'])} {escape(fields['description'])}"
                + (f": {escape(fields['detail'])}" if fields["result"] != "pass" else "")
            )
        elif event == "progress":
            c.print(f"    [dim]{fields['what']} {fields['done']}/{fields['total']}[/dim]")
        elif event == "warning":
            c.print(f"[yellow]warning:[/yellow] {escape(fields['message'])}")
        elif event == "run-end":
            pass


def _ask(console: Console) -> Any:
    def ask(step: str, prompt: str, details: list[str]) -> bool:
        console.print(f"\n[bold yellow]gate[/bold yellow] ({escape(step)}): {escape(prompt)}")
        for d in details[:200]:
            console.print(f"  {escape(d)}")
        return typer.confirm("continue?", default=False, err=True)

    return ask


def _transport(kind: Transport | None, cluster: Any, netns: dict[str, str], node: dict[str, Any]) -> Any:
    if kind is None:
        return None
    from cni_migrate.actions.nodes import transport as t  # noqa: PLC0415 - loaded when used

    if kind == Transport.local:
        return t.LocalTransport(netns or None)
    if kind == Transport.ssh:
        return t.make_transport("ssh", user=node.get("ssh_user"), config=node.get("ssh_config"))
    if not node.get("image"):
        raise BadInput("--node-transport pod needs --node-image (the cni-migrate image, with the node tools)")
    # the plan's node commands use host paths: the pod enters the host's mount and network namespaces
    return t.make_transport(
        "pod", cluster=cluster, namespace=node.get("namespace") or "kube-system", image=node["image"], host_mounts=True
    )


def _executor(
    opts: GlobalOptions,
    plan_path: str,
    *,
    transport: Transport | None,
    netns: dict[str, str],
    run_options: Any,
    renderer: Renderer,
    interactive: bool,
    node_options: dict[str, Any] | None = None,
) -> Any:
    from cni_migrate.actions.executor.planfile import load_plan  # noqa: PLC0415
    from cni_migrate.actions.executor.run import Executor  # noqa: PLC0415
    from cni_migrate.actions.executor.tools import Tools  # noqa: PLC0415
    from cni_migrate.facts import extract_facts  # noqa: PLC0415
    from cni_migrate.facts.live import read_cluster  # noqa: PLC0415

    loaded = load_plan(plan_path)
    cluster = opts.connect()
    node_options = node_options or {}
    tools = Tools.find(opts.kubeconfig, opts.context or cluster.name or None, None, None)

    def facts() -> Any:
        return extract_facts(read_cluster(cluster), kind="live")

    return Executor(
        cluster.rest(),
        loaded,
        tools,
        transport=_transport(transport, cluster, netns, node_options),
        options=run_options,
        emit=renderer,
        facts=facts,
        ask=_ask(renderer.console) if interactive else None,
    )


def _install_sigint(executor: Any, console: Console) -> None:
    count = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        count[0] += 1
        if count[0] > 1:
            raise KeyboardInterrupt
        console.print("\n[yellow]stopping after the current action (Ctrl-C again to abort now)...[/yellow]")
        executor.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _finish(summary: Any, renderer: Renderer, plan_path: str, opts: GlobalOptions) -> int:
    if renderer.fmt == EventFormat.json:
        sys.stdout.write(json.dumps({"event": "summary", **summary.__dict__}, sort_keys=True, default=str) + "\n")
    else:
        c = renderer.console
        colour = "green" if summary.ok else "red" if summary.state == "failed" else "yellow"
        c.print(f"\n[bold {colour}]{summary.state}[/bold {colour}]: {escape(summary.message)}")
        c.print(
            f"steps done: {summary.steps_done}/{summary.steps_total}; API requests {summary.api_requests}, "
            f"journal writes {summary.journal_writes}; {summary.seconds:.1f} s"
        )
        if summary.not_run_checks:
            c.print(f"[yellow]{len(summary.not_run_checks)} check(s) were NOT run[/yellow] (--skip-checks):")
            for line in summary.not_run_checks[:20]:
                c.print(f"  {escape(line)}")
        if not summary.ok:
            ctx = f" --context {opts.context}" if opts.context else ""
            c.print(
                f"resume with: [bold]cni-migrate{ctx} apply --resume {escape(plan_path)}[/bold]"
                + (" --approve STEP" if summary.state == "waiting" else "")
            )
            c.print(f"or undo with: cni-migrate{ctx} rollback {escape(plan_path)}")
    return EXIT_OK if summary.ok else EXIT_FINDINGS


def _run_guarded(body: Any) -> None:
    from cni_migrate.actions.executor.errors import ExecutorError, PlanInputError  # noqa: PLC0415

    def wrapped() -> int:
        try:
            return int(body())
        except PlanInputError as e:
            raise BadInput(str(e)) from e
        except ExecutorError as e:
            Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(e))}")
            return EXIT_FINDINGS

    guarded(wrapped)


def apply(
    ctx: typer.Context,
    plan: PlanArg,
    dry_run: Annotated[
        DryRun,
        typer.Option(
            "--dry-run", help="server: send every write as a server-side dry run; client: only show what would be done"
        ),
    ] = DryRun.none,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="approve every gate")] = False,
    approve: Annotated[
        list[str] | None, typer.Option("--approve", help="approve the gates of this step (repeat)")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="stop after this step")] = None,
    only_nodes: Annotated[
        list[str] | None, typer.Option("--only-nodes", help="run node steps of these nodes only")
    ] = None,
    node_transport: Annotated[
        Transport | None, typer.Option("--node-transport", help="how node commands reach the nodes")
    ] = None,
    node_netns: Annotated[
        list[str] | None, typer.Option("--node-netns", help="local transport: NODE=NETNS (repeat)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run recorded in the cluster's journal")
    ] = False,
    node_image: Annotated[
        str | None, typer.Option("--node-image", help="pod transport: the image of the privileged node pods")
    ] = None,
    node_namespace: Annotated[
        str, typer.Option("--node-namespace", help="pod transport: namespace of the node pods")
    ] = "kube-system",
    ssh_user: Annotated[str | None, typer.Option("--ssh-user", help="ssh transport: remote user (sudo)")] = None,
    ssh_config: Annotated[str | None, typer.Option("--ssh-config", help="ssh transport: an ssh config file")] = None,
    chart: Annotated[
        list[str] | None, typer.Option("--chart", help="use a local chart: NAME=PATH (e.g. cilium/cilium=./cilium)")
    ] = None,
    skip_checks: Annotated[
        list[str] | None,
        typer.Option(
            "--skip-checks", help="do not run these check classes: exec,node,nodeport,cni (reported as not run)"
        ),
    ] = None,
    finalizer_grace: Annotated[
        float | None,
        typer.Option("--finalizer-grace", help="seconds before stuck finalizers are cleared (at most the plan's)"),
    ] = None,
    drain_timeout: Annotated[
        float | None,
        typer.Option(
            "--drain-timeout", help="seconds per node before a refused eviction stops the run (at most the plan's)"
        ),
    ] = None,
    check_settle: Annotated[
        float,
        typer.Option(
            "--check-settle",
            min=0,
            help="seconds a step's failing success checks are retried while the cluster converges",
        ),
    ] = 60.0,
    no_fact_check: Annotated[
        bool, typer.Option("--no-fact-check", help="do not re-check the facts the plan relies on")
    ] = False,
    output: Annotated[
        EventFormat, typer.Option("--events", help="progress as text (stderr) or JSON lines (stdout)")
    ] = EventFormat.text,
) -> None:
    """Run a migration plan with a journal; resume after a crash with --resume."""
    opts = options(ctx)
    fmt = EventFormat.json if opts.output.value == "json" else output

    def body() -> int:
        from cni_migrate.actions.executor.checks import SKIPPABLE  # noqa: PLC0415
        from cni_migrate.actions.executor.run import RunOptions  # noqa: PLC0415

        skips = _split(skip_checks)
        bad = sorted(skips - set(SKIPPABLE))
        if bad:
            raise BadInput(f"--skip-checks {','.join(bad)}: expected some of {','.join(SKIPPABLE)}")
        run_options = RunOptions(
            dry_run=dry_run.value,
            yes=yes,
            approve=_split(approve),
            until=until,
            only_nodes=_split(only_nodes),
            skip_checks=skips,
            chart_overrides=_pairs(chart, "--chart"),
            finalizer_grace=finalizer_grace,
            drain_timeout=drain_timeout,
            check_settle=check_settle,
            resume=resume,
            check_facts=not no_fact_check,
        )
        renderer = Renderer(fmt, opts.quiet)
        executor = _executor(
            opts,
            plan,
            transport=node_transport,
            netns=_pairs(node_netns, "--node-netns"),
            run_options=run_options,
            renderer=renderer,
            interactive=sys.stdin.isatty() and fmt == EventFormat.text and not yes,
            node_options={
                "image": node_image,
                "namespace": node_namespace,
                "ssh_user": ssh_user,
                "ssh_config": ssh_config,
            },
        )
        _install_sigint(executor, renderer.console)
        summary = executor.apply()
        return _finish(summary, renderer, plan, opts)

    _run_guarded(body)


def rollback(
    ctx: typer.Context,
    plan: PlanArg,
    node: Annotated[list[str] | None, typer.Option("--node", help="undo only the node steps of these nodes")] = None,
    to: Annotated[str | None, typer.Option("--to", help="undo the steps after this one")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="approve every gate")] = False,
    approve: Annotated[list[str] | None, typer.Option("--approve", help="approve the gates of this step")] = None,
    node_transport: Annotated[
        Transport | None, typer.Option("--node-transport", help="how node commands reach the nodes")
    ] = None,
    node_netns: Annotated[list[str] | None, typer.Option("--node-netns", help="local transport: NODE=NETNS")] = None,
    chart: Annotated[list[str] | None, typer.Option("--chart", help="NAME=PATH, as given to apply")] = None,
    drain_timeout: Annotated[
        float | None, typer.Option("--drain-timeout", help="seconds per node before a refused eviction stops")
    ] = None,
    output: Annotated[
        EventFormat, typer.Option("--events", help="progress as text (stderr) or JSON lines (stdout)")
    ] = EventFormat.text,
) -> None:
    """Undo a run: every step backwards from the journal, one node's steps (--node), or back to a step (--to)."""
    opts = options(ctx)
    fmt = EventFormat.json if opts.output.value == "json" else output

    def body() -> int:
        from cni_migrate.actions.executor.run import RunOptions  # noqa: PLC0415

        run_options = RunOptions(
            yes=yes,
            approve=_split(approve),
            chart_overrides=_pairs(chart, "--chart"),
            drain_timeout=drain_timeout,
            check_facts=False,
            resume=True,
        )
        renderer = Renderer(fmt, opts.quiet)
        executor = _executor(
            opts,
            plan,
            transport=node_transport,
            netns=_pairs(node_netns, "--node-netns"),
            run_options=run_options,
            renderer=renderer,
            interactive=sys.stdin.isatty() and fmt == EventFormat.text and not yes,
        )
        _install_sigint(executor, renderer.console)
        summary = executor.rollback(nodes=_split(node), to=to)
        return _finish(summary, renderer, plan, opts)

    _run_guarded(body)


def status(
    ctx: typer.Context,
    plan: PlanArg,
    local: Annotated[bool, typer.Option("--local", help="read the local journal mirror, not the cluster")] = False,
) -> None:
    """Where a run of the plan stands: per phase, step and node; what runs, failed or waits at a gate."""
    opts = options(ctx)

    def body() -> int:
        from cni_migrate.actions.executor.journal import ClusterStore, LocalMirror  # noqa: PLC0415
        from cni_migrate.actions.executor.planfile import load_plan  # noqa: PLC0415
        from cni_migrate.actions.executor.run import _journal_spec  # noqa: PLC0415

        loaded = load_plan(plan)
        if local:
            doc = LocalMirror(loaded.journal_path).read()
            where = str(loaded.journal_path)
        else:
            cluster = opts.connect()
            rest = cluster.rest()
            try:
                rest.resource("cni-migrate.io/v1alpha1", "MigrationRun")
            except Exception:
                doc = None
            else:
                doc = ClusterStore(rest, loaded.plan.id, spec=_journal_spec(loaded)).read()
            where = f"MigrationRun run-{loaded.plan.id}"
        rows = _status_rows(loaded.plan, doc)
        data = {
            "plan": loaded.plan.id,
            "journal": where,
            "state": doc.state if doc else "not started",
            "current_step": doc.current_step if doc else None,
            "message": doc.message if doc else "",
            "steps": rows,
        }
        if opts.output.value in ("json", "yaml"):
            from cni_migrate.cli.common import emit  # noqa: PLC0415

            emit(data, opts.output, lambda c: None)
            return EXIT_OK
        console = Console()
        console.print(
            f"plan {loaded.plan.id} ({loaded.plan.inputs.strategy}): [bold]{data['state']}[/bold]"
            + (f" at {data['current_step']}" if data["current_step"] else "")
            + f" ({where})"
        )
        if data["message"]:
            console.print(f"  {escape(str(data['message']))}")
        table = Table("phase", "step", "nodes", "state", "last")
        for r in rows:
            table.add_row(r["phase"], r["step"], r["nodes"], r["state"], escape(r["last"][:100]))
        console.print(table)
        return EXIT_OK

    _run_guarded(body)


def _status_rows(plan: Any, doc: Any) -> list[dict[str, str]]:
    rows = []
    for phase in plan.phases:
        for s in phase.steps:
            state, last = "pending", ""
            if doc is not None:
                recs = [r for r in doc.records if r.step == s.id]
                step_state = doc.step_state(s.id)
                if step_state is not None:
                    state = {
                        "intent": "running",
                        "done": "done",
                        "noop": "done",
                        "failed": "failed",
                        "skipped": "rolled back",
                        "waiting": "waiting",
                    }.get(step_state, step_state)
                if recs and recs[-1].state == "waiting":
                    state = "waiting at gate"
                elif recs and recs[-1].state == "failed":
                    state = "failed"
                last = recs[-1].message if recs else ""
            nodes = ", ".join(s.nodes[:3]) + (" ..." if len(s.nodes) > 3 else "") if s.scope == "node" else "-"
            rows.append({"phase": phase.id, "step": s.id, "nodes": nodes, "state": state, "last": last})
    return rows


__all__ = ["EXIT_BAD_INPUT", "apply", "rollback", "status"]
