"""``cni-migrate policy``: Calico NetworkPolicies and GlobalNetworkPolicies translated to Cilium policies, exactly,
and checked flow by flow. Read-only: nothing is created in the cluster (``kubectl apply -f`` the output, or let the
plan do it).

``translate`` writes the CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy manifests and lists every policy Cilium
cannot express with the same verdicts (the policy, the field, why, the policy it conflicts with and an example
flow). ``check`` compares the verdicts of the Calico set and of the translated (or a given) Cilium set on every
flow class of a universe built from the policies and the cluster's namespaces and pods, and lists each flow whose
verdict differs.

Exit codes: 0 every policy translated exactly (``check``: no flow differs); 1 a policy is untranslatable
(``check``: or a flow differs); 2 bad input (a malformed policy or selector, an unknown field, a tier that does not
exist, a bad --cilium-version), naming the file, the policy and the field.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cni_migrate.cli.common import (
    EXIT_FINDINGS,
    BadInput,
    GlobalOptions,
    dump_json,
    dump_yaml,
    guarded,
    options,
    output_formats,
)
from cni_migrate.cli.textfmt import text

if TYPE_CHECKING:
    from cni_migrate.analysis.calico_policies import PolicyMigration
    from cni_migrate.analysis.policy.check import FlowDiff
    from cni_migrate.facts.model import ClusterFacts

app = typer.Typer(
    name="policy",
    help="Translate Calico NetworkPolicies and GlobalNetworkPolicies to Cilium policies exactly, and check the "
    "translation flow by flow. Read-only.",
    no_args_is_help=True,
)

MANIFEST_FILE = "cilium-policies.yaml"
REPORT_FILE = "translation.json"

CiliumVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--cilium-version",
        metavar="X.Y.Z",
        help="The Cilium release the policies are for (default: the Cilium the cluster runs, if any)",
    ),
]


# --- input -------------------------------------------------------------------------------------------------


def _facts(opts: GlobalOptions) -> ClusterFacts:
    """The input's facts without discover's note on missing kinds: a snapshot of policies alone is complete here
    (only the pod CIDRs and the running Cilium's version are read from the facts)."""
    from cni_migrate.facts import extract_facts  # noqa: PLC0415

    return extract_facts(opts.store(), kind="snapshot" if opts.snapshot else "live")


def _version(facts: ClusterFacts, given: str | None) -> str:
    from cni_migrate.analysis.plan.version import CiliumVersion, VersionError  # noqa: PLC0415

    text_ = given
    if text_ is None:
        cilium = facts.cni.cilium
        found = cilium.version.value if cilium is not None else None
        if not found:
            raise BadInput("--cilium-version X.Y.Z is required: the input runs no Cilium whose version could be used")
        text_ = found.lstrip("v")
    try:
        return str(CiliumVersion.parse(text_))
    except VersionError as e:
        raise BadInput(str(e)) from None


def _migration(opts: GlobalOptions, facts: ClusterFacts, version: str) -> PolicyMigration:
    """The translation of the input's Calico policies; a bad policy is exit 2 naming the file, policy and field."""
    from cni_migrate.analysis.calico_policies import PolicySetError, migrate_policies, pod_cidrs_of  # noqa: PLC0415
    from cni_migrate.facts.policies import calico_policy_objects  # noqa: PLC0415

    store = opts.store()
    objs = calico_policy_objects(store)
    try:
        return migrate_policies(objs, version, pod_cidrs=pod_cidrs_of(facts))
    except PolicySetError as e:
        where = (store.file_of(e.obj) if e.obj is not None else None) or store.location or "input"
        raise BadInput(f"{where}: {e}") from None


def _nothing_note(opts: GlobalOptions, pm: PolicyMigration) -> None:
    if pm.policy_set.policies or opts.quiet:
        return
    from cni_migrate.facts.policies import calico_policy_objects  # noqa: PLC0415

    listed = calico_policy_objects(opts.store()).listed
    opts.err.print(
        "note: the input has no Calico NetworkPolicies or GlobalNetworkPolicies"
        + ("" if listed else " (it lists neither kind: Calico's CRDs are absent or were not captured)"),
        highlight=False,
    )


# --- translate ---------------------------------------------------------------------------------------------


def untranslatable_dicts(pm: PolicyMigration) -> list[dict[str, Any]]:
    out = []
    for u in pm.untranslatable:
        src = pm.sources.get(u.policy)
        out.append(
            {
                "policy": u.policy,
                "api_version": src.api_version if src is not None else None,
                "field": u.field,
                "reason": u.reason,
                "other_policy": u.other_policy,
                "example_flow": u.example_flow,
            }
        )
    return out


def translation_document(pm: PolicyMigration) -> dict[str, Any]:
    return {
        "cilium_version": pm.cilium_version,
        "policies": len(pm.policy_set.policies),
        "exact": list(pm.translation.exact),
        "untranslatable": untranslatable_dicts(pm),
        "left_out": list(pm.left_out),
        "objects": pm.objects,
    }


def render_untranslatable(console: Console, pm: PolicyMigration) -> None:
    if not pm.untranslatable:
        return
    t = Table(title="Untranslatable", title_justify="left", box=None, pad_edge=False)
    for col in ("POLICY", "FIELD", "REASON", "OTHER POLICY", "EXAMPLE FLOW"):
        t.add_column(col, overflow="fold")
    for u in pm.untranslatable:
        t.add_row(
            escape(u.policy),
            escape(u.field),
            escape(u.reason),
            escape(text(u.other_policy)),
            escape(text(u.example_flow)),
        )
    console.print(t)


def render_translation(console: Console, pm: PolicyMigration, written: list[str], out: Path | None) -> None:
    n = len(pm.policy_set.policies)
    bad = pm.untranslatable_policies()
    console.print(
        f"[bold]{n} Calico polic{'y' if n == 1 else 'ies'}[/bold] -> Cilium {pm.cilium_version}: "
        f"{len(pm.translation.exact)} translated exactly into {len(pm.objects)} objects, "
        f"{len(bad)} without a translation",
        highlight=False,
    )
    objects = Table(title="Cilium policies", title_justify="left", box=None, pad_edge=False)
    for col in ("KIND", "NAMESPACE", "NAME"):
        objects.add_column(col, overflow="fold")
    for o in pm.objects:
        md = o.get("metadata") or {}
        objects.add_row(str(o.get("kind")), text(md.get("namespace")), escape(str(md.get("name"))))
    if pm.objects:
        console.print(objects)
    render_untranslatable(console, pm)
    for ref in pm.left_out:
        console.print(f"[dim]left out (created by cni-migrate): {escape(ref)}[/dim]", highlight=False)
    if out is not None:
        console.print(f"wrote {', '.join(written)} to {out}", highlight=False)


def manifests_yaml(objects: list[dict[str, Any]]) -> str:
    return "".join("---\n" + dump_yaml(o) for o in objects)


def write_out(pm: PolicyMigration, out: Path) -> list[str]:
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MANIFEST_FILE).write_text(manifests_yaml(pm.objects))
        (out / REPORT_FILE).write_text(
            dump_json({k: v for k, v in translation_document(pm).items() if k != "objects"}) + "\n"
        )
    except OSError as e:
        raise BadInput(f"cannot write to --out {out}: {e.strerror}") from e
    return [MANIFEST_FILE, REPORT_FILE]


def _warn_untranslatable(opts: GlobalOptions, pm: PolicyMigration) -> None:
    from cni_migrate.analysis.calico_policies import describe  # noqa: PLC0415

    for u in pm.untranslatable:
        opts.err.print(f"[yellow]untranslatable:[/yellow] {escape(describe(u))}", highlight=False, soft_wrap=True)


@app.command("translate")
@output_formats("table", "yaml", "json")
def translate(
    ctx: typer.Context,
    cilium_version: CiliumVersionOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help=f"Also write {MANIFEST_FILE} and {REPORT_FILE} (the findings) into this directory"),
    ] = None,
) -> None:
    """Translate the Calico policies of the cluster (or --snapshot) into Cilium policies.

    -o yaml prints the manifests (for kubectl apply -f -), -o json the manifests with the findings, -o table a
    summary. Untranslatable policies are listed (on stderr with -o yaml) and make the exit code 1.
    """
    opts = options(ctx)

    def body() -> int:
        facts = _facts(opts)
        pm = _migration(opts, facts, _version(facts, cilium_version))
        _nothing_note(opts, pm)
        written = write_out(pm, out) if out is not None else []
        fmt = opts.output_format
        if fmt == "yaml":
            sys.stdout.write(manifests_yaml(pm.objects))
            _warn_untranslatable(opts, pm)
        elif fmt == "json":
            sys.stdout.write(dump_json(translation_document(pm)) + "\n")
        else:
            console = Console()
            if not console.is_terminal:
                console = Console(width=160)
            render_translation(console, pm, written, out)
        return EXIT_FINDINGS if pm.untranslatable else 0

    guarded(body)


# --- check -------------------------------------------------------------------------------------------------

MAX_TABLE_DIFFS = 50


def _against(path: Path) -> list[dict[str, Any]]:
    """The Cilium policies of a file or directory (kubectl output or manifests)."""
    from cni_migrate.facts.objects import CILIUM_CLUSTERWIDE_NETWORK_POLICY, CILIUM_NETWORK_POLICY  # noqa: PLC0415
    from cni_migrate.facts.snapshot import load_snapshot  # noqa: PLC0415

    store = load_snapshot(path)
    objs = store.of(CILIUM_NETWORK_POLICY, CILIUM_CLUSTERWIDE_NETWORK_POLICY)
    if not objs:
        raise BadInput(f"--against {path}: holds no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy objects")
    for o in objs:
        md = o.get("metadata")
        if not isinstance(md, dict) or not isinstance(md.get("name"), str):
            raise BadInput(f"--against {store.file_of(o) or path}: a {o.get('kind')} without metadata.name")
        if not isinstance(o.get("spec") or {}, dict) and not isinstance(o.get("specs"), list):
            raise BadInput(
                f"--against {store.file_of(o) or path}: {o.get('kind')} {md['name']}: spec: expected an object"
            )
    return objs


def diff_dict(d: FlowDiff) -> dict[str, Any]:
    return {
        "flow": d.flow,
        "direction": d.direction,
        "calico": {"allowed": d.calico_allowed, "why": d.calico_why, "policy": d.calico_policy},
        "cilium": {"allowed": d.cilium_allowed, "why": d.cilium_why, "policy": d.cilium_policy},
    }


def _verdict(allowed: bool, why: str, policy: str | None) -> str:
    return f"{'allow' if allowed else 'deny'}: {why}" + (f" ({policy})" if policy and policy not in why else "")


def render_check(console: Console, pm: PolicyMigration, diffs: tuple[FlowDiff, ...], flows: int, against: str) -> None:
    console.print(
        f"[bold]{len(pm.policy_set.policies)} Calico policies[/bold] vs {against}: {flows} flow classes compared, "
        f"{len(diffs)} with a different verdict",
        highlight=False,
    )
    if diffs:
        t = Table(title="Flows whose verdict differs", title_justify="left", box=None, pad_edge=False)
        for col in ("FLOW", "DIRECTION", "CALICO", "CILIUM"):
            t.add_column(col, overflow="fold")
        for d in diffs[:MAX_TABLE_DIFFS]:
            t.add_row(
                escape(d.flow),
                d.direction,
                escape(_verdict(d.calico_allowed, d.calico_why, d.calico_policy)),
                escape(_verdict(d.cilium_allowed, d.cilium_why, d.cilium_policy)),
            )
        console.print(t)
        if len(diffs) > MAX_TABLE_DIFFS:
            console.print(f"... {len(diffs) - MAX_TABLE_DIFFS} more (-o json lists every one)", highlight=False)
    render_untranslatable(console, pm)


@app.command("check")
@output_formats("table", "yaml", "json")
def check(
    ctx: typer.Context,
    cilium_version: CiliumVersionOpt = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Compare with the Cilium policies in this file or directory instead of the translation",
        ),
    ] = None,
) -> None:
    """Compare the Calico policies with their Cilium translation (or --against FILE) flow class by flow class.

    The flow classes come from the policies (a witness pod for every selector, an address in and around every
    CIDR, the ends of every port range, ...) and the cluster's own namespaces and pods. Exit 1 lists every flow
    whose verdict differs, and every untranslatable policy.
    """
    opts = options(ctx)

    def body() -> int:
        from cni_migrate.analysis.calico_policies import cluster_endpoints, pod_label_keys  # noqa: PLC0415
        from cni_migrate.analysis.policy.check import check as run_check  # noqa: PLC0415
        from cni_migrate.analysis.policy.check import representative_universe, universe_flows  # noqa: PLC0415
        from cni_migrate.facts.policies import calico_policy_objects  # noqa: PLC0415

        facts = _facts(opts)
        pm = _migration(opts, facts, _version(facts, cilium_version))
        _nothing_note(opts, pm)
        objects = _against(against) if against is not None else pm.objects
        label = (
            f"the Cilium policies of {against}"
            if against is not None
            else f"the translation for Cilium {pm.cilium_version}"
        )
        namespaces, pods = cluster_endpoints(calico_policy_objects(opts.store()), pod_label_keys(pm.policy_set))
        universe = representative_universe(
            pm.policy_set, namespaces=namespaces.values(), pods=pods, pod_cidrs=pm.pod_cidrs
        )
        flows = universe_flows(universe)
        diffs = run_check(pm.policy_set, objects, universe, flows)
        fmt = opts.output_format
        doc = {
            "cilium_version": pm.cilium_version,
            "compared": label,
            "flow_classes": len(flows),
            "differences": [diff_dict(d) for d in diffs],
            "untranslatable": untranslatable_dicts(pm),
        }
        if fmt == "json":
            sys.stdout.write(dump_json(doc) + "\n")
        elif fmt == "yaml":
            sys.stdout.write(dump_yaml(doc))
        else:
            console = Console()
            if not console.is_terminal:
                console = Console(width=160)
            render_check(console, pm, diffs, len(flows), label)
        return EXIT_FINDINGS if diffs or (pm.untranslatable and against is None) else 0

    guarded(body)
