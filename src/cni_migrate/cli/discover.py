"""``cni-migrate discover`` and ``cni-migrate snapshot``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Table

from cni_migrate.analysis.problems import Problem, find_problems
from cni_migrate.cli.common import (
    EXIT_FINDINGS,
    BadInput,
    emit,
    guarded,
    options,
    progress_bar,
)
from cni_migrate.cli.textfmt import text
from cni_migrate.facts.model import ApiEndpoint, ClusterFacts, Fact, TigeraOperatorFacts
from cni_migrate.facts.objects import KindRef
from cni_migrate.facts.snapshot import MANIFEST_NAME, manifest_document


def _fact_text(f: Fact[Any], verbose: bool) -> str:
    if not f.known:
        return f"[yellow]unknown[/yellow] [dim]({f.unknown})[/dim]"
    v = f.value
    if isinstance(v, list):
        v = text(v) if v else "none"
    elif isinstance(v, ApiEndpoint):
        v = f"{v.host}:{v.port}"
    elif isinstance(v, bool):
        v = "yes" if v else "no"
    else:
        v = text(v)
    return f"{v} [dim]({f.source})[/dim]" if verbose else v


def _operator_text(op: Fact[TigeraOperatorFacts], verbose: bool) -> str:
    if op.value is None:
        return _fact_text(op, verbose)
    o = op.value
    replicas = "" if o.replicas is None else f", {o.replicas} replica{'s' if o.replicas != 1 else ''}"
    if o.ready_replicas is not None:
        replicas += f" ({o.ready_replicas} ready)"
    return (
        f"Deployment {o.namespace}/{o.deployment}, image {o.image or '?'}, version {_fact_text(o.version, verbose)}"
        + replicas
    )


def _finalizer_rows(t: Table, facts: ClusterFacts, verbose: bool) -> None:
    bf = facts.cni.blocking_finalizers
    if bf.value is None:
        t.add_row("blocking finalizers", _fact_text(bf, verbose))
        return
    head = f"{len(bf.value)} object{'s' if len(bf.value) != 1 else ''}" if bf.value else "none"
    t.add_row("blocking finalizers", head + (f" [dim]({bf.source})[/dim]" if verbose else ""))
    for f in bf.value:
        where = f"{f.namespace}/" if f.namespace else ""
        state = " [red](deleting: stuck)[/red]" if f.deleting else ""
        t.add_row("", f"{where}{f.kind}/{f.name}: {', '.join(f.finalizers)}{state}")


def render_summary(console: Console, facts: ClusterFacts, problems: list[Problem], *, verbose: bool = False) -> None:
    """The human summary; sources of facts are shown with --verbose (always in -o json/yaml)."""

    def _fact(f: Fact[Any]) -> str:
        return _fact_text(f, verbose)

    s = facts.source
    console.print(f"[bold]Cluster facts[/bold] from {s.kind} {s.location} ({s.objects} objects)")
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_row("Kubernetes", _fact(facts.kubernetes_version))
    cni = facts.cni
    t.add_row(
        "CNI", f"[bold]{cni.detected}[/bold]" + (f" (also: {', '.join(cni.also_present)})" if cni.also_present else "")
    )
    for e in cni.evidence:
        t.add_row("", f"[dim]{e}[/dim]")
    if cni.calico:
        c = cni.calico
        t.add_row("  Calico", f"{c.install_method}-installed in {c.namespace}, version {_fact(c.version)}")
        if c.operator is not None:
            t.add_row("  tigera-operator", _operator_text(c.operator, verbose))
        t.add_row("  backend", _fact(c.calico_networking_backend))
        t.add_row("  IP autodetection", _fact(c.ip_autodetection_method))
        if not c.ip_pools.known:
            t.add_row("  IPPools", _fact(c.ip_pools))
        for p in c.ip_pools.value or []:
            t.add_row(
                "  IPPool",
                f"{p.name} {p.cidr} /{p.block_size} selector={p.node_selector} ipip={p.ipip_mode} "
                f"vxlan={p.vxlan_mode} nat={text(p.nat_outgoing)}{' DISABLED' if p.disabled else ''}",
            )
        if c.bgp.value:
            b = c.bgp.value
            t.add_row(
                "  BGP",
                f"AS {b.as_number}, node-to-node mesh {'on' if b.node_to_node_mesh else 'off'}, "
                f"advertises cluster IPs {text(b.service_cluster_ips)}, external {text(b.service_external_ips)}, "
                f"LB {text(b.service_load_balancer_ips)}",
            )
        for peer in c.bgp_peers:
            scope = peer.node or peer.node_selector or "all nodes"
            t.add_row(
                "  BGP peer",
                f"{peer.name}: {text(peer.peer_ip or peer.peer_selector)} AS {text(peer.as_number)} ({scope})",
            )
        for rr in c.route_reflectors:
            t.add_row("  route reflector", f"{rr.node} cluster ID {rr.cluster_id}")
        if c.felix:
            t.add_row("  Felix", ", ".join(f"{k}={v}" for k, v in c.felix.items()))
    if cni.flannel:
        f = cni.flannel
        t.add_row("  Flannel", f"{f.namespace}/{f.daemonset}, network {_fact(f.network)}")
        t.add_row("  backend", f"{_fact(f.backend_type)}, port {_fact(f.backend_port)}, VNI {_fact(f.vni)}")
        t.add_row("  ip-masq", _fact(f.ip_masq))
    if cni.cilium:
        ci = cni.cilium
        t.add_row(
            "  Cilium", f"version {_fact(ci.version)}, IPAM {_fact(ci.ipam_mode)}, routing {_fact(ci.routing_mode)}"
        )
        t.add_row("  kube-proxy replacement", _fact(ci.kube_proxy_replacement))
    if cni.kube_router:
        t.add_row("  kube-router", f"{cni.kube_router.namespace}/{cni.kube_router.daemonset}")
    _finalizer_rows(t, facts, verbose)
    kp = facts.kube_proxy
    t.add_row("kube-proxy", f"{_fact(kp.present)}; mode {_fact(kp.mode)}; clusterCIDR {_fact(kp.cluster_cidr)}")
    n = facts.network
    t.add_row("pod CIDRs", _fact(n.pod_cidrs))
    t.add_row("service CIDRs", _fact(n.service_cidrs))
    t.add_row("LoadBalancer CIDRs", _fact(n.load_balancer_cidrs))
    t.add_row("API endpoint", _fact(n.api_endpoint))
    t.add_row("node CIDR allocation", f"{_fact(n.allocate_node_cidrs)}; mask {_fact(n.node_cidr_mask_size)}")
    w = facts.workloads
    t.add_row(
        "pods", f"{_fact(w.pods)}; hostNetwork {_fact(w.host_network_pods)}; not running {_fact(w.pods_not_running)}"
    )
    pol = facts.policies
    t.add_row(
        "network policies",
        f"Kubernetes {_fact(pol.kubernetes_network_policies)}; Calico {_fact(pol.calico_network_policies)}; "
        f"Calico global {_fact(pol.calico_global_network_policies)}",
    )
    if facts.pdbs.value is not None:
        blocking = [p for p in facts.pdbs.value if p.blocks_eviction]
        t.add_row("PDBs", f"{len(facts.pdbs.value)} ({len(blocking)} allow no disruption now)")
    else:
        t.add_row("PDBs", _fact(facts.pdbs))
    t.add_row("Istio", _fact(facts.istio.present))
    t.add_row("Cilium Helm releases", _fact(facts.cilium_helm_releases))
    console.print(t)

    nodes = Table(title=f"Nodes ({len(facts.nodes)})", title_justify="left")
    for col in ("NAME", "ROLES", "INTERNAL-IP", "KERNEL", "RUNTIME", "POD-CIDR", "PODS"):
        nodes.add_column(col)
    for node in facts.nodes[:50]:
        nodes.add_row(
            node.name,
            ",".join(node.roles) or "<none>",
            ",".join(node.internal_ips),
            node.kernel_version or "?",
            node.container_runtime or "?",
            ",".join(node.pod_cidrs) or "<none>",
            str(node.pods),
        )
    if len(facts.nodes) > 50:
        nodes.caption = f"... and {len(facts.nodes) - 50} more (use -o json for all)"
    console.print(nodes)
    if problems:
        console.print("[bold]Problems already visible[/bold]")
        for prob in problems:
            color = {"error": "red", "warning": "yellow"}.get(prob.severity, "blue")
            console.print(f"  [{color}]{prob.severity}[/{color}] {prob.id}: {prob.message}", highlight=False)
    else:
        console.print("[green]No problems visible in these facts.[/green]")


def discover(ctx: typer.Context) -> None:
    """Print the cluster's networking facts, and the problems already visible in them."""
    opts = options(ctx)

    def body() -> int:
        facts = opts.facts()
        problems = find_problems(facts)
        doc = {"facts": facts, "problems": problems}
        emit(doc, opts.output, lambda c: render_summary(c, facts, problems, verbose=opts.verbose))
        return EXIT_FINDINGS if any(p.severity == "error" for p in problems) else 0

    guarded(body)


def snapshot(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out-dir", "-d", help="Directory to write the snapshot into")],
    force: Annotated[bool, typer.Option(help="Write into a non-empty directory")] = False,
) -> None:
    """Capture, read-only, everything cni-migrate needs from a live cluster into a snapshot directory."""
    opts = options(ctx)

    def body() -> int:
        if out_dir.exists() and not out_dir.is_dir():
            raise BadInput(f"--out-dir {out_dir} is not a directory")
        if out_dir.exists() and any(out_dir.iterdir()) and not force:
            raise BadInput(f"{out_dir} is not empty; choose another directory or pass --force")
        from cni_migrate.facts.live import read_cluster  # noqa: PLC0415 - loads the client library

        cluster = opts.connect()
        with progress_bar(opts, "capturing") as advance:
            store = read_cluster(cluster, progress=advance)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            written = 0
            for ref, _count in store.kinds():
                objs = store.of(ref)
                doc = {"apiVersion": "v1", "kind": "List", "items": objs}
                fname = f"{ref.kind.lower()}{'.' + ref.group if ref.group else ''}.json"
                (out_dir / fname).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
                written += len(objs)
            listed: list[KindRef] = sorted(store.listed)
            manifest = manifest_document(listed, store.server_version, dt.datetime.now(dt.UTC).isoformat())
            (out_dir / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False))
        except OSError as e:
            raise BadInput(f"cannot write snapshot to {out_dir}: {e.strerror}") from e
        opts.err.print(f"captured {written} objects of {len(listed)} kinds into {out_dir}")
        return 0

    guarded(body)
