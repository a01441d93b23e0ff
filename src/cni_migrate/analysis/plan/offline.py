"""The offline strategy (the lossy seed, 000): back up, uninstall the old CNI and kube-proxy, clean the nodes,
install Cilium with kube-proxy replacement, restore BGP routing, restart pods, verify."""

from __future__ import annotations

import hashlib

from cni_migrate.analysis.plan.bgp import bgp_plan
from cni_migrate.analysis.plan.common import Builder, kubectl, ref_of, release_lint_context
from cni_migrate.analysis.plan.model import (
    ApplyObjects,
    Check,
    CommandCheck,
    DeleteObjects,
    Disruption,
    FactCheck,
    HelmRelease,
    HelmUninstall,
    Phase,
    Rollback,
    Step,
    WaitFor,
)
from cni_migrate.analysis.plan.oldcni import old_cni_inventory, ref
from cni_migrate.analysis.plan.options import Resolved
from cni_migrate.analysis.plan.policies import apply_policies_step, policy_gate_step
from cni_migrate.facts.model import ClusterFacts

IPAM_RELEASE = "cni-migrate-ipam"
IPAM_NAMESPACE = "cni-migrate-ipam"
IPAM_CHART = "charts/cni-migrate-ipam"
IPAM_CHART_VERSION = "0.1.0"


def preflight_checks(b: Builder) -> list[Check]:
    r = b.r
    n = len(r.facts.nodes)
    names = "".join(f"node/{name}\n" for name in sorted(x.name for x in r.facts.nodes))
    uid = r.facts.kube_system_uid
    checks: list[Check] = [
        CommandCheck(
            description=f"the cluster answers and has exactly the {n} nodes the plan was made for (the SHA-256 of "
            "their sorted names)",
            shell="kubectl get nodes -o name | LC_ALL=C sort | sha256sum",
            expect=f"^{hashlib.sha256(names.encode()).hexdigest()} ",
        ),
        CommandCheck(
            description=f"this is the cluster the plan was made for: kube-system's UID is {uid.value}",
            argv=kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"),
            expect=f"^{uid.value}$",
        )
        if uid.known
        else FactCheck(
            description="the cluster's identity (kube-system's UID) is unknown, so only the node names are checked",
            fact="kube_system_uid",
            result="warn",
            detail=str(uid.unknown),
        ),
        CommandCheck(description="helm is installed", argv=["helm", "version", "--short"]),
        CommandCheck(description="jq is installed (backups are saved through it)", argv=["jq", "--version"]),
        FactCheck(
            description="the old CNI",
            fact="cni.detected",
            result="pass",
            detail=f"{r.old_cni} ({'; '.join(r.facts.cni.evidence)})",
        ),
        FactCheck(
            description="Cilium's pod CIDRs overlap no service, LoadBalancer or node address",
            fact="network.service_cidrs",
            result="pass",
            detail=f"pods {r.pod_cidr_text}; services {', '.join(r.facts.network.service_cidrs.value or ['unknown'])}",
        ),
    ]
    if r.kpr:
        checks.append(
            FactCheck(
                description="every node's kernel supports kube-proxy replacement (socket-LB)",
                fact="nodes[].kernel_version",
                result="pass" if all(x.kernel_version for x in r.facts.nodes) else "warn",
                detail=f"lowest kernel {r.facts.lowest_kernel or 'unknown'}",
            )
        )
        checks.append(
            FactCheck(
                description="Cilium reaches the API server without kube-proxy",
                fact="network.api_endpoint",
                result="pass",
                detail=f"k8sServiceHost {r.api_host}, k8sServicePort {r.api_port}",
            )
        )
    return checks


def preflight_step(b: Builder, checks: list[Check]) -> Step:
    return Step(
        id="preflight",
        title="Preflight: the cluster is the one the plan was made for, and the facts the plan relies on hold",
        scope="cluster",
        actions=[],
        preconditions=checks,
        rollback=Rollback(description="nothing to undo: preflight changes nothing"),
        relies_on=b.fr("cni.detected", "network.pod_cidrs", "network.service_cidrs", "network.api_endpoint", "nodes"),
    )


def podcidrpool_steps(b: Builder) -> list[Step]:
    r = b.r
    manifests = r.podcidrpool_manifests
    path = b.manifest("manifests/podcidrpools.yaml", manifests, "PodCIDRPools imported from Calico's IPPools")
    helm = HelmRelease(
        release=IPAM_RELEASE,
        chart=IPAM_CHART,
        version=IPAM_CHART_VERSION,
        namespace=IPAM_NAMESPACE,
        values_file=None,
        create_namespace=True,
    )
    return [
        Step(
            id="install-ipam-operator",
            title="Install cni-migrate's PodCIDRPool IPAM operator (writes spec.podCIDRs on nodes that have none)",
            scope="cluster",
            actions=[
                helm,
                WaitFor(condition="rollout", target=ref("apps/v1", "Deployment", IPAM_RELEASE, IPAM_NAMESPACE)),
            ],
            rollback=Rollback(
                description="uninstall the operator",
                actions=[HelmUninstall(release=IPAM_RELEASE, namespace=IPAM_NAMESPACE)],
            ),
            relies_on=b.fr("network.allocate_node_cidrs"),
        ),
        Step(
            id="apply-podcidrpools",
            title="Create the PodCIDRPools translated from Calico's IPPools and wait until every node has a podCIDR",
            scope="cluster",
            description="; ".join(r.podcidrpool_notes),
            actions=[ApplyObjects(artifact=path, objects=manifests)],
            success=[
                CommandCheck(
                    description="every node has a spec.podCIDR",
                    argv=kubectl(
                        "get",
                        "nodes",
                        "-o",
                        "custom-columns=NAME:.metadata.name,PODCIDR:.spec.podCIDR",
                        "--no-headers",
                    ),
                    reject=r"(?m)<none>",
                )
            ],
            rollback=Rollback(
                description="delete the PodCIDRPools (nodes keep the podCIDRs already written: they cannot be cleared)",
                actions=[DeleteObjects(objects=[ref_of(o) for o in manifests])],
            ),
            relies_on=b.fr("cni.calico.ip_pools"),
        ),
    ]


def assigned_facts(r: Resolved) -> ClusterFacts | None:
    """With PodCIDRPools, the nodes as they are once the IPAM operator gave each its podCIDR."""
    if not r.pod_cidr_assignments:
        return None
    nodes = [
        n.model_copy(update={"pod_cidr": r.pod_cidr_assignments[n.name], "pod_cidrs": [r.pod_cidr_assignments[n.name]]})
        if n.name in r.pod_cidr_assignments and not n.pod_cidrs
        else n
        for n in r.facts.nodes
    ]
    return r.facts.model_copy(update={"nodes": nodes})


def build_offline(b: Builder) -> list[Phase]:
    r = b.r
    nodes = r.node_names
    inv = old_cni_inventory(r)
    phases: list[Phase] = []

    outage_detail = [
        f"old CNI: {r.old_cni}; Cilium {r.version}; routing {r.routing}"
        + (f" ({r.tunnel_protocol})" if r.routing == "tunnel" else f" (native CIDR {r.native_cidr})"),
        f"IPAM {r.ipam} ({r.pod_cidr_text}); kube-proxy replacement {'on' if r.kpr else 'off'}; BGP {r.bgp}",
        *r.warnings,
    ]
    gate = policy_gate_step(b, b.policies)
    phases.append(
        Phase(
            id="preflight",
            title="Preflight and review",
            steps=[
                preflight_step(b, preflight_checks(b)),
                *([gate] if gate is not None else []),
                b.gate(
                    "review",
                    "Review the plan and open the maintenance window",
                    "This offline migration interrupts all pod networking from the old CNI's removal until Cilium is "
                    "running (about 10 minutes, longer on large clusters). Proceed?",
                    outage_detail,
                ),
            ],
        )
    )

    backups: list[Step] = []
    if inv is not None:
        backups += b.old_cni_backup_steps(inv)
    if r.remove_kube_proxy:
        backups.append(b.kube_proxy_backup_step())
    backups.append(b.node_backup_step("backup-nodes", nodes))
    phases.append(Phase(id="backup", title="Back up everything the migration removes", steps=backups))

    if r.ipam == "podcidrpools":
        phases.append(Phase(id="prepare-ipam", title="Node podCIDRs from PodCIDRPools", steps=podcidrpool_steps(b)))

    if inv is not None:
        phases.append(
            Phase(
                id="remove-old-cni",
                title=f"Uninstall {r.old_cni} the way it was installed",
                description="From here until Cilium runs, pods have no network.",
                steps=b.remove_old_cni_steps(inv, disruptive=True),
            )
        )
    if r.remove_kube_proxy:
        phases.append(
            Phase(id="remove-kube-proxy", title="Remove kube-proxy", steps=[b.remove_kube_proxy_step(disruptive=True)])
        )
    if inv is not None or r.remove_kube_proxy:
        phases.append(
            Phase(
                id="clean-nodes",
                title="Clean the nodes",
                steps=[b.node_cleanup_step("clean-nodes", nodes, kube_proxy=r.remove_kube_proxy, disruptive=True)],
            )
        )

    kp = r.facts.kube_proxy
    kube_proxy_stays = bool(not r.remove_kube_proxy and kp.present.known and kp.present.value)
    releases = r.facts.cilium_helm_releases.value or []
    context = release_lint_context(
        r, old_cni_present=False, kube_proxy_present=kube_proxy_stays, first_install=not releases
    )
    apply_policies = apply_policies_step(b, b.policies, enforced_now=True)
    values_path = b.values(
        "values/install.yaml", "install", "Cilium values for the offline install", context, assigned_facts(r)
    )
    phases.append(
        Phase(
            id="install-cilium",
            title="Install Cilium",
            steps=[
                b.helm_step(
                    "install-cilium",
                    f"helm upgrade --install Cilium {r.version}"
                    + (" with kube-proxy replacement" if r.kpr else "")
                    + f", {r.routing} routing, IPAM {r.ipam}",
                    values_path,
                    description="Pods stuck without a network (Pending/Unknown) get Cilium addresses once the agents "
                    "are ready.",
                    first_install=not releases,
                    kpr=r.kpr,
                    disruption=Disruption(
                        disruptive=True,
                        scope="cluster",
                        estimate_seconds=300,
                        what="still in the outage: pod networking resumes node by node as the agents become ready",
                    ),
                    relies=b.fr("network.api_endpoint", "network.pod_cidrs", "nodes", "kube_proxy.present"),
                ),
                *([apply_policies] if apply_policies is not None else []),
            ],
        )
    )
    bgp = bgp_plan(r)
    if bgp is not None:
        b.warnings.extend(bgp.warnings)
        phases.append(Phase(id="bgp", title="Routes over BGP", steps=[b.bgp_step(bgp, disruptive=True)]))
    phases.append(
        Phase(id="restart-pods", title="Restart pods Cilium does not manage yet", steps=[b.restart_unmanaged_step()])
    )
    phases.append(Phase(id="verify", title="Verify", steps=b.verify_steps(kpr=r.kpr, bgp=bgp)))
    return phases
