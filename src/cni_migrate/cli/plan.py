"""``cni-migrate plan``: a reviewed, machine-readable migration plan, with its values files, manifests and runbook.

Exit codes: 0 plan made; 1 the plan refuses (a values file it would emit fails lint); 2 bad input, or options that
contradict each other or the cluster's facts; 3 internal error (the planner built a plan that breaks one of its own
safety invariants: a bug in cni-migrate, never in the input; no plan is written).
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cni_migrate import __version__
from cni_migrate.analysis.calico_policies import PolicyMigration, PolicySetError, migrate_policies, pod_cidrs_of
from cni_migrate.analysis.plan import Plan, PlanError, PlanOptions, build_plan, gc_paused, render_runbook
from cni_migrate.analysis.plan.version import CiliumVersion, VersionError
from cni_migrate.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    BadInput,
    GlobalOptions,
    guarded,
    options,
    output_formats,
)
from cni_migrate.cli.textfmt import text
from cni_migrate.facts.model import ClusterFacts
from cni_migrate.facts.policies import calico_policy_objects
from cni_migrate.yamlsafe import YamlInputError, load_one

PLAN_FILE = "plan.yaml"
PLAN_JSON = "plan.json"
RUNBOOK = "runbook.md"
# plan.json is always written; plan.yaml (the same document, for review) too unless the plan is huge, where YAML
# serialisation would dominate the run time and nobody reviews thousands of node steps as YAML.
MAX_YAML_STEPS = 1000


class PlanFormat(enum.StrEnum):
    text = "text"
    markdown = "markdown"
    yaml = "yaml"
    json = "json"


class Target(enum.StrEnum):
    cilium = "cilium"


class Strategy(enum.StrEnum):
    offline = "offline"
    rolling = "rolling"


def plan_document(plan: Plan) -> dict[str, Any]:
    # pydantic serializes straight to JSON in Rust; building Python dicts with model_dump() took most of the time
    # of a 5,000-node plan. Re-parsed so the output keeps sorted keys.
    doc: dict[str, Any] = orjson.loads(plan.model_dump_json())
    return doc


def plan_json(plan: Plan) -> bytes:
    return orjson.dumps(plan_document(plan), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def plan_yaml(plan: Plan) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(plan_document(plan), Dumper=dumper, sort_keys=True, default_flow_style=False, width=120))


def _load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = load_one(path.read_bytes())
    except OSError as e:
        raise BadInput(f"--values {path}: {e.strerror}") from e
    except YamlInputError as e:
        where = f"{path}:{e.line}" if e.line is not None else str(path)
        raise BadInput(f"--values {where}: not valid YAML ({e.message})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"--values {path}: a Helm values file must be a mapping, not {type(data).__name__}")
    return data


def _previous_generated(out: Path | None) -> dict[str, str]:
    """Values an earlier plan in --out generated (the Maglev seed): planning again keeps them."""
    if out is None:
        return {}
    doc = _previous_plan(out)
    if doc is None:
        return {}
    return {
        str(g["name"]): str(g["value"])
        for g in doc.get("generated") or []
        if isinstance(g, dict) and g.get("origin") == "generated" and "name" in g and "value" in g
    }


def _previous_plan(out: Path) -> dict[str, Any] | None:
    """The plan document an earlier run wrote into ``out`` (plan.json, else plan.yaml), if readable."""
    for name in (PLAN_JSON, PLAN_FILE):
        f = out / name
        if f.is_file():
            try:
                doc = orjson.loads(f.read_bytes()) if name.endswith(".json") else load_one(f.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict):
                return doc
    return None


def _stale_files(previous: dict[str, Any] | None, plan: Plan, out: Path) -> list[Path]:
    """Files the earlier plan in ``out`` wrote (its artifacts) that this plan does not: removed, so no values file
    or manifest of an old plan is left beside the new one. Only paths inside ``out`` the old plan recorded."""
    if previous is None:
        return []
    keep = {a.path for a in plan.artifacts}
    root = out.resolve()
    stale: list[Path] = []
    for a in previous.get("artifacts") or []:
        path = a.get("path") if isinstance(a, dict) else None
        if not isinstance(path, str) or path in keep:
            continue
        f = (out / path).resolve()
        if f.is_file() and f.is_relative_to(root):
            stale.append(f)
    return stale


def write_out(plan: Plan, runbook: str, out: Path, *, force: bool) -> list[str]:
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is not a directory")
    has_plan = (out / PLAN_FILE).exists() or (out / PLAN_JSON).exists()
    if out.is_dir() and any(out.iterdir()) and not has_plan and not force:
        raise BadInput(f"--out {out} is not empty and holds no plan; choose another directory or pass --force")
    previous = _previous_plan(out) if has_plan else None
    inputs = (previous or {}).get("inputs")
    old_digest = inputs.get("facts_digest") if isinstance(inputs, dict) else None
    if has_plan and old_digest != plan.inputs.facts_digest and not force:
        raise BadInput(
            f"--out {out} holds the plan of another cluster or of other facts (facts digest "
            f"{str(old_digest)[:16] if old_digest else 'unreadable'}, this plan's {plan.inputs.facts_digest[:16]}); "
            "choose another directory or pass --force to replace it"
        )
    written: list[str] = []
    try:
        for f in _stale_files(previous, plan, out):
            f.unlink()
        out.mkdir(parents=True, exist_ok=True)
        for a in plan.artifacts:
            dest = out / a.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(a.content)
            written.append(a.path)
        (out / PLAN_JSON).write_bytes(plan_json(plan))
        yaml_file = out / PLAN_FILE
        if len(plan.steps()) <= MAX_YAML_STEPS:
            yaml_file.write_text(plan_yaml(plan))
        elif yaml_file.exists():
            yaml_file.unlink()  # a stale YAML plan next to the new JSON one would mislead
        (out / RUNBOOK).write_text(runbook)
    except OSError as e:
        raise BadInput(f"cannot write to --out {out}: {e.strerror}") from e
    files = [PLAN_JSON, RUNBOOK] + ([PLAN_FILE] if len(plan.steps()) <= MAX_YAML_STEPS else [])
    return [*written, *files]


def render_text(console: Console, plan: Plan, written: list[str], out: Path | None) -> None:
    i = plan.inputs
    console.print(
        f"[bold]Plan {plan.id}[/bold]: {i.old_cni} -> Cilium {i.cilium_version}, {i.strategy} "
        f"({i.cluster_nodes} nodes, {len(plan.steps())} steps)",
        highlight=False,
    )
    t = Table(title="Decisions", title_justify="left", show_header=True, box=None, pad_edge=False)
    for col in ("OPTION", "VALUE", "FROM", "WHY"):
        t.add_column(col, overflow="fold")
    for d in plan.decisions:
        t.add_row(d.option, escape(text(d.value)), d.origin, escape(d.reason))
    console.print(t)
    for g in plan.generated:
        console.print(f"generated {g.name} = {text(g.value)} ({g.origin})", highlight=False)
    steps = Table(title="Steps", title_justify="left", box=None, pad_edge=False)
    for col in ("#", "STEP", "SCOPE", "DISRUPTION", "TITLE"):
        steps.add_column(col, overflow="fold")
    n = 0
    for phase in plan.phases:
        steps.add_row("", f"[bold]{escape(phase.title)}[/bold]", "", "", "")
        for k, s in enumerate(phase.steps):
            n += 1
            if len(phase.steps) > 12 and 5 <= k < len(phase.steps) - 3:
                if k == 5:
                    steps.add_row("", "...", "", "", f"{len(phase.steps) - 8} more steps like these")
                continue
            dr = s.disruption
            dis = f"{dr.scope} ~{dr.estimate_seconds}s" if dr.disruptive else "-"
            scope = s.scope if s.scope == "cluster" else f"node x{len(s.nodes)}"
            steps.add_row(str(n), s.id, scope, dis, escape(s.title))
    console.print(steps)
    for ls in plan.lint:
        console.print(f"lint {ls.artifact}: {ls.errors} errors, {ls.warnings} warnings", highlight=False)
    if plan.warnings:
        console.print("[bold yellow]Warnings[/bold yellow]")
        for w in plan.warnings:
            console.print(f"  - {escape(w)}", highlight=False)
    if plan.blocking_pdbs:
        console.print("[bold yellow]PodDisruptionBudgets blocking evictions now[/bold yellow]")
        for p in plan.blocking_pdbs:
            console.print(f"  - {escape(p)}", highlight=False)
    if out is not None:
        console.print(f"wrote {len(written)} files to {out}: {', '.join(written)}", highlight=False)
    else:
        console.print("[dim]pass --out DIR to write the values files, manifests, plan and runbook[/dim]")


def _tri(value: bool | None) -> str:
    return "auto" if value is None else ("true" if value else "false")


@output_formats(*(f.value for f in PlanFormat))
def plan(
    ctx: typer.Context,
    to: Annotated[Target, typer.Option("--to", help="The CNI to migrate to")],
    cilium_version: Annotated[str, typer.Option("--cilium-version", help="Cilium release X.Y.Z to install")],
    strategy: Annotated[
        Strategy, typer.Option(help="offline: uninstall, clean, install (downtime); rolling: node by node")
    ],
    values: Annotated[Path | None, typer.Option("--values", "-f", help="Base Helm values file (yours)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Helm --set override (repeatable), applied last")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write values, manifests, plan and runbook here")] = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty --out that holds no plan")] = False,
    routing: Annotated[str, typer.Option(help="auto, native or tunnel")] = "auto",
    tunnel_protocol: Annotated[str, typer.Option(help="auto, vxlan or geneve")] = "auto",
    tunnel_port: Annotated[int | None, typer.Option(help="UDP port of Cilium's tunnel")] = None,
    kube_proxy_replacement: Annotated[
        bool | None, typer.Option("--kube-proxy-replacement/--no-kube-proxy-replacement", help="default: from facts")
    ] = None,
    ipam: Annotated[str, typer.Option(help="auto, cluster-pool, kubernetes or podcidrpools")] = "auto",
    cluster_pool_cidr: Annotated[str | None, typer.Option(help="Cilium's pod CIDR (cluster-pool IPAM)")] = None,
    cluster_pool_mask_size: Annotated[int | None, typer.Option(help="Per-node block size (cluster-pool)")] = None,
    native_routing_cidr: Annotated[str | None, typer.Option(help="ipv4NativeRoutingCIDR (native routing)")] = None,
    auto_direct_node_routes: Annotated[
        bool, typer.Option(help="Native routing on one L2 segment: nodes route pod CIDRs to each other")
    ] = False,
    bgp: Annotated[str, typer.Option(help="auto, none, kube-router or cilium")] = "auto",
    lb_mode: Annotated[str, typer.Option(help="snat, dsr or hybrid")] = "snat",
    lb_acceleration: Annotated[str, typer.Option(help="disabled, native or best-effort (XDP)")] = "disabled",
    maglev: Annotated[bool, typer.Option(help="Maglev consistent hashing for services")] = False,
    maglev_table_size: Annotated[int, typer.Option(help="Maglev table size (a listed prime)")] = 16381,
    maglev_seed: Annotated[
        str | None, typer.Option(help="base64 of 12 bytes; generated and recorded if absent")
    ] = None,
    hubble: Annotated[bool, typer.Option(help="Hubble")] = True,
    hubble_ui: Annotated[bool, typer.Option(help="Hubble Relay and UI")] = False,
    masquerade: Annotated[
        bool | None, typer.Option("--masquerade/--no-masquerade", help="default: the old CNI's behaviour")
    ] = None,
    socket_lb_host_namespace_only: Annotated[
        bool | None,
        typer.Option(
            "--socket-lb-host-namespace-only/--no-socket-lb-host-namespace-only", help="default: on with Istio"
        ),
    ] = None,
    lb_external_cluster_ip: Annotated[
        bool | None,
        typer.Option("--lb-external-cluster-ip/--no-lb-external-cluster-ip", help="default: on if BGP advertises"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Workers per batch (rolling)")] = 1,
    node_order: Annotated[str, typer.Option(help="name, fewest-pods or most-pods (rolling)")] = "name",
    first_nodes: Annotated[str | None, typer.Option(help="Comma-separated canary nodes to move first")] = None,
    node_cleanup: Annotated[str, typer.Option(help="commands or reboot")] = "commands",
    reboot_migrated_nodes: Annotated[bool, typer.Option(help="Reboot each node after it moves (rolling)")] = False,
    keep_host_legacy_routing: Annotated[bool, typer.Option(help="Keep bpf.hostLegacyRouting in the end")] = False,
    k8s_service_host: Annotated[str | None, typer.Option(help="API server address for Cilium")] = None,
    k8s_service_port: Annotated[int | None, typer.Option(help="API server port for Cilium")] = None,
    release_name: Annotated[str, typer.Option(help="Helm release name")] = "cilium",
    namespace: Annotated[str, typer.Option(help="Cilium's namespace")] = "kube-system",
    kube_router_image: Annotated[str | None, typer.Option(help="kube-router image")] = None,
    backup_dir: Annotated[str, typer.Option(help="Where object backups go (relative to --out)")] = "backup",
) -> None:
    """Plan the migration: phases of steps with checks and rollbacks, values files, manifests and a runbook."""
    opts = options(ctx)
    assert to is Target.cilium  # the only target; the option keeps the command line explicit

    def body() -> int:
        facts = opts.facts()
        base = _load_values(values)
        kwargs: dict[str, Any] = {}
        if kube_router_image:
            kwargs["kube_router_image"] = kube_router_image
        try:
            popts = PlanOptions(
                cilium_version=cilium_version,
                strategy=strategy.value,
                routing=routing,
                tunnel_protocol=tunnel_protocol,
                tunnel_port=tunnel_port,
                kube_proxy_replacement=_tri(kube_proxy_replacement),
                ipam=ipam,
                cluster_pool_cidr=cluster_pool_cidr,
                cluster_pool_mask_size=cluster_pool_mask_size,
                native_routing_cidr=native_routing_cidr,
                auto_direct_node_routes=auto_direct_node_routes,
                bgp=bgp,
                lb_mode=lb_mode,
                lb_acceleration=lb_acceleration,
                maglev=maglev,
                maglev_table_size=maglev_table_size,
                maglev_seed=maglev_seed,
                hubble=hubble,
                hubble_ui=hubble_ui,
                masquerade=_tri(masquerade),
                socket_lb_host_namespace_only=_tri(socket_lb_host_namespace_only),
                lb_external_cluster_ip=_tri(lb_external_cluster_ip),
                batch_size=batch_size,
                node_order=node_order,
                first_nodes=[n.strip() for n in (first_nodes or "").split(",") if n.strip()],
                node_cleanup=node_cleanup,
                reboot_migrated_nodes=reboot_migrated_nodes,
                keep_host_legacy_routing=keep_host_legacy_routing,
                k8s_service_host=k8s_service_host,
                k8s_service_port=k8s_service_port,
                release_name=release_name,
                namespace=namespace,
                backup_dir=backup_dir,
                values_file=str(values) if values else None,
                kube_context=_context(opts),
                kubeconfig=opts.kubeconfig,
                base_values=base,
                set_values=list(set_ or []),
                **kwargs,
            )
        except ValueError as e:  # pydantic: a choice option with a value it does not know
            raise BadInput(_option_error(e)) from None
        policies = _policies(opts, facts, cilium_version)
        try:
            result = build_plan(
                facts, popts, tool_version=__version__, reuse=_previous_generated(out), policies=policies
            )
        except PlanError as e:
            if e.kind == "internal":
                head = (
                    "[bold red]internal error:[/bold red] cni-migrate built a plan that breaks its own safety checks "
                    "(a bug in the tool, not in your input or options); no plan was written. Please report it with "
                    "these lines"
                )
            else:
                what = "the plan refuses to emit a values file that fails lint" if e.kind == "lint" else "cannot plan"
                head = f"[bold red]error:[/bold red] {what}"
            Console(stderr=True, soft_wrap=True).print(f"{head}:", highlight=False)
            for p in e.problems:
                Console(stderr=True, soft_wrap=True).print(f"  - {escape(p)}", highlight=False)
            if e.kind == "internal":
                return EXIT_INTERNAL
            return EXIT_FINDINGS if e.kind == "lint" else EXIT_BAD_INPUT
        fmt = opts.output_format  # text, markdown (the runbook), yaml or json
        with gc_paused():  # rendering a 5,000-node plan allocates millions of objects that all stay alive
            runbook = render_runbook(result) if out is not None or fmt == "markdown" else ""
            written = write_out(result, runbook, out, force=force) if out is not None else []
            if fmt == "json":
                sys.stdout.buffer.write(plan_json(result))
            elif fmt == "yaml":
                sys.stdout.write(plan_yaml(result))
            elif fmt == "markdown":
                sys.stdout.write(runbook)
            else:
                render_text(Console(), result, written, out)
        return 0

    guarded(body)


def _policies(opts: GlobalOptions, facts: ClusterFacts, cilium_version: str) -> PolicyMigration | None:
    """The old CNI's Calico policies translated for the target Cilium (Calico and Canal enforce them); None for
    other CNIs. A malformed policy is bad input (exit 2) naming the file, the policy and the field."""
    if facts.cni.detected not in ("calico", "canal"):
        return None
    try:
        version = str(CiliumVersion.parse(cilium_version))
    except VersionError:
        return None  # build_plan reports the bad version with the other option errors
    store = opts.store()
    try:
        return migrate_policies(calico_policy_objects(store), version, pod_cidrs=pod_cidrs_of(facts))
    except PolicySetError as e:
        where = (store.file_of(e.obj) if e.obj is not None else None) or store.location or "input"
        raise BadInput(f"{where}: {e}") from None


def _context(opts: GlobalOptions) -> str | None:
    """The context the plan's runbook pins: --context, else (planning from the live cluster) the kubeconfig's
    current context; offline without --context the runbook takes it from $KUBE_CONTEXT."""
    if opts.context or opts.snapshot:
        return opts.context
    from cni_migrate.kube.client import load_kubeconfig  # noqa: PLC0415 - only when planning live

    current = load_kubeconfig(opts.kubeconfig, None).current_context
    return str(current) if current else None


def _option_error(e: ValueError) -> str:
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors():
            loc = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "option"
            parts.append(f"{loc} {err.get('input')!r}: {err['msg']}")
        return "; ".join(parts)
    return str(e)
