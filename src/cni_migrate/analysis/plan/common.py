"""Steps both strategies share: backups, removing the old CNI and kube-proxy, node cleanup, installing Cilium,
BGP, and the seeds' verification."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import yaml

from cni_migrate.analysis.calico_policies import PolicyMigration
from cni_migrate.analysis.lint import LintContext, lint
from cni_migrate.analysis.plan.bgp import BgpPlan
from cni_migrate.analysis.plan.cleanup import node_backup_commands, old_cni_cleanup_commands, restore_commands
from cni_migrate.analysis.plan.factrefs import fact_ref, node_ref
from cni_migrate.analysis.plan.model import (
    SWEEP_SKIPPED_PATTERN,
    Action,
    AnnotateNodes,
    ApplyObjects,
    Artifact,
    Backup,
    Check,
    CommandCheck,
    DeleteObjects,
    Disruption,
    FactRef,
    HelmRelease,
    HelmUninstall,
    LintSummary,
    ManualGate,
    NameMatch,
    NodeCommand,
    NodeCommands,
    NodePortCheck,
    ObjectCheck,
    ObjectRef,
    ObjectSelector,
    RemoveFinalizers,
    RestartPods,
    RestoreBackup,
    Rollback,
    Step,
    WaitFor,
)
from cni_migrate.analysis.plan.oldcni import Inventory, kube_proxy_objects, ref
from cni_migrate.analysis.plan.options import PlanError, Resolved
from cni_migrate.analysis.plan.values import Phase, values_for
from cni_migrate.facts.model import ClusterFacts

CILIUM_REPO = ("cilium", "https://helm.cilium.io/")
VERIFY_NS = "cni-migrate-verify"
NODE_BACKUP_ROOT = "/var/backups/cni-migrate"


def kubectl(*args: str) -> list[str]:
    return ["kubectl", *args]


def dump_manifest(objects: Sequence[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)


def dump_values(values: dict[str, Any], header: str) -> str:
    body = yaml.safe_dump(values, sort_keys=True, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class Builder:
    """Collects artifacts, lint results and warnings while the strategy modules assemble phases."""

    def __init__(self, r: Resolved, plan_id: str, policies: PolicyMigration | None = None) -> None:
        self.r = r
        self.plan_id = plan_id
        self.policies = policies  # the cluster's Calico policies translated to Cilium, when the caller read them
        self.backup_dir = f"{r.opts.backup_dir.rstrip('/')}/{plan_id}"
        self.node_dir = f"{NODE_BACKUP_ROOT}/{plan_id}"
        self.artifacts: dict[str, Artifact] = {}
        self.lint: list[LintSummary] = []
        self.warnings: list[str] = []
        self.ns = r.opts.namespace
        self.dbg = r.version.dbg_binary

    # --- facts and artifacts ------------------------------------------------------------------------------

    def fr(self, *paths: str) -> list[FactRef]:
        """The facts at these paths; paths that lead nowhere on this cluster (e.g. Flannel's on Calico) are left
        out, unknown facts are kept (with why they are unknown)."""
        refs = [fact_ref(self.r.facts, p) for p in paths]
        return [f for f in refs if f.value is not None or f.source is not None]

    def node_ips(self, nodes: Sequence[str]) -> dict[str, str]:
        by = {n.name: n for n in self.r.facts.nodes}
        return {n: by[n].internal_ips[0] for n in nodes if n in by and by[n].internal_ips}

    def add_artifact(self, path: str, kind: Literal["values", "manifest", "runbook"], desc: str, content: str) -> str:
        self.artifacts[path] = Artifact(path=path, kind=kind, description=desc, content=content)
        return path

    def manifest(self, path: str, objects: Sequence[dict[str, Any]], desc: str) -> str:
        return self.add_artifact(path, "manifest", desc, dump_manifest(objects))

    def values(
        self, path: str, phase: Phase, desc: str, context: LintContext, facts: ClusterFacts | None = None
    ) -> str:
        """Build, lint and record a values file; lint errors stop the plan (PlanError naming each finding).
        ``facts``: the cluster as it will be when the values are installed, when earlier steps change it."""
        values, notes = values_for(self.r, phase, path)
        self.warnings.extend(notes)
        report = lint(values, str(self.r.version), facts or self.r.facts, context=context)
        summary = LintSummary(
            artifact=path,
            errors=len(report.errors),
            warnings=len(report.warnings),
            findings=[
                {"id": f.id, "severity": f.severity, "path": f.path, "message": f.message}
                for f in report.findings
                if f.severity in ("error", "warning")
            ],
            not_checked=sorted(n.id for n in report.not_checked),
        )
        if report.has_errors:
            raise PlanError(
                [
                    f"{path}: lint {f.id} at {f.path or '(values)'}: {f.message}"
                    + (f" (fix: {f.fix})" if f.fix else "")
                    for f in report.errors
                ],
                kind="lint",
            )
        self.lint.append(summary)
        header = (
            f"{desc}\nCilium {self.r.version}; generated by cni-migrate plan {self.plan_id}; "
            f"lint: {summary.errors} errors, {summary.warnings} warnings"
        )
        return self.add_artifact(path, "values", desc, dump_values(values, header))

    # --- generic steps ---------------------------------------------------------------------------------

    def gate(
        self, step_id: str, title: str, prompt: str, details: list[str], relies: list[FactRef] | None = None
    ) -> Step:
        return Step(
            id=step_id,
            title=title,
            scope="cluster",
            actions=[ManualGate(prompt=prompt, details=details)],
            rollback=Rollback(description="nothing to undo: nothing changed yet"),
            relies_on=relies or [],
        )

    def backup_step(
        self,
        step_id: str,
        title: str,
        destination: str,
        objects: list[ObjectRef],
        selectors: list[ObjectSelector] | None = None,
        name_match: NameMatch | None = None,
        relies: list[FactRef] | None = None,
    ) -> Step:
        return Step(
            id=step_id,
            title=title,
            scope="cluster",
            actions=[
                Backup(
                    destination=f"{self.backup_dir}/{destination}",
                    objects=objects,
                    selectors=selectors or [],
                    name_match=name_match,
                )
            ],
            success=[
                CommandCheck(
                    description=f"the backup directory {destination} holds the saved objects",
                    shell=f"test -d {self.backup_dir}/{destination} && ls {self.backup_dir}/{destination}",
                )
            ],
            rollback=Rollback(description="nothing to undo: a backup changes nothing in the cluster"),
            relies_on=relies or [],
        )

    def node_backup_step(self, step_id: str, nodes: list[str]) -> Step:
        return Step(
            id=step_id,
            title="Save each node's CNI configuration, iptables, IPVS, ipsets, routes and links",
            scope="node",
            nodes=nodes,
            description=f"On every node, as root, into {self.node_dir}",
            actions=[NodeCommands(nodes=nodes, commands=node_backup_commands(self.r, self.node_dir), parallel=10)],
            success=[
                CommandCheck(
                    description="the node backup exists",
                    shell=f"test -s {self.node_dir}/iptables.rules && test -d {self.node_dir}/cni-net.d",
                    nodes=nodes,
                )
            ],
            rollback=Rollback(description="nothing to undo: the backup changes nothing on the nodes"),
            relies_on=[*self.fr("kube_proxy.mode"), node_ref(self.r.facts, nodes, "internal_ips")],
        )

    # --- Cilium -------------------------------------------------------------------------------------------

    def cilium_exec(self, *args: str) -> list[str]:
        return kubectl("-n", self.ns, "exec", "ds/cilium", "-c", "cilium-agent", "--", self.dbg, *args)

    def cilium_status_checks(self, *, kpr: bool) -> list[Check]:
        checks: list[Check] = [
            CommandCheck(
                description="the Cilium agent reports itself healthy (cilium status)",
                argv=self.cilium_exec("status"),
                expect=r"Cilium:\s+Ok",
            ),
            CommandCheck(
                description="Cilium knows every node (cilium node list)",
                argv=self.cilium_exec("node", "list"),
            ),
        ]
        if kpr:
            checks.append(
                CommandCheck(
                    description="kube-proxy replacement is active (KubeProxyReplacement in cilium status)",
                    argv=self.cilium_exec("status"),
                    expect=r"KubeProxyReplacement:\s+(True|Strict)",
                )
            )
        return checks

    def helm_step(
        self,
        step_id: str,
        title: str,
        values_path: str,
        *,
        description: str,
        first_install: bool,
        kpr: bool,
        disruption: Disruption | None = None,
        relies: list[FactRef] | None = None,
        rollback: Rollback | None = None,
    ) -> Step:
        repo_name, repo_url = CILIUM_REPO
        cilium_ds = ref("apps/v1", "DaemonSet", "cilium", self.ns)
        operator = ref("apps/v1", "Deployment", "cilium-operator", self.ns)
        return Step(
            id=step_id,
            title=title,
            scope="cluster",
            description=description,
            actions=[
                HelmRelease(
                    release=self.r.opts.release_name,
                    chart=f"{repo_name}/cilium",
                    repo_name=repo_name,
                    repo_url=repo_url,
                    version=str(self.r.version),
                    namespace=self.ns,
                    values_file=values_path,
                ),
                WaitFor(condition="rollout", target=cilium_ds, timeout_seconds=900),
                WaitFor(condition="rollout", target=operator, timeout_seconds=600),
            ],
            preconditions=[
                CommandCheck(
                    description="helm can reach the cluster",
                    argv=["helm", "list", "-n", self.ns],
                )
            ],
            success=self.cilium_status_checks(kpr=kpr),
            rollback=rollback
            or (
                Rollback(
                    description="uninstall Cilium (the old CNI must then be restored from the backup)",
                    actions=[HelmUninstall(release=self.r.opts.release_name, namespace=self.ns)],
                )
                if first_install
                else Rollback(
                    description="roll the release back to its previous revision: helm rollback "
                    f"{self.r.opts.release_name} -n {self.ns}",
                    possible=True,
                )
            ),
            disruption=disruption or Disruption(),
            relies_on=relies or [],
        )

    # --- old CNI and kube-proxy ---------------------------------------------------------------------------------

    def old_cni_backup_steps(self, inv: Inventory) -> list[Step]:
        facts = ["cni.detected", "cni.calico.install_method", "cni.calico.namespace", "cni.flannel.daemonset"]
        steps = [
            self.backup_step(
                "backup-old-cni",
                f"Back up {self.r.old_cni}'s objects and custom resources (finalizers included)",
                "old-cni",
                inv.backup_objects,
                inv.backup_selectors,
                relies=self.fr(*facts),
            )
        ]
        if inv.leftovers is not None:
            steps.append(
                self.backup_step(
                    "backup-old-cni-leftovers",
                    f"Back up every object whose name matches /{inv.leftovers.pattern}/ (the leftover sweep deletes "
                    "from these)",
                    "old-cni-by-name",
                    [],
                    name_match=inv.leftovers,
                )
            )
        return steps

    def kube_proxy_backup_step(self) -> Step:
        return self.backup_step(
            "backup-kube-proxy",
            "Back up the kube-proxy DaemonSet and ConfigMap",
            "kube-proxy",
            kube_proxy_objects(self.r),
            relies=self.fr("kube_proxy.present", "kube_proxy.mode"),
        )

    def restore(
        self, destination: str, objects: list[ObjectRef], selectors: list[ObjectSelector] | None = None
    ) -> RestoreBackup:
        return RestoreBackup(source=f"{self.backup_dir}/{destination}", objects=objects, selectors=selectors or [])

    def _policy_loss_warnings(self) -> list[str]:
        """What deleting Calico's CRDs loses when the caller did not read the policies: all of them (counted from
        the facts). With the policies read, the translated ones are created in Cilium and the plan's policy gate
        names each of the others (see plan.policies)."""
        if self.policies is not None:
            return []  # translated, or named by the policy gate's warnings
        pol = self.r.facts.policies
        n_np = pol.calico_network_policies.value or 0
        n_gnp = pol.calico_global_network_policies.value or 0
        if not (n_np or n_gnp):
            return []
        return [
            f"deleting Calico's CRDs deletes its {n_np} NetworkPolicies and {n_gnp} GlobalNetworkPolicies "
            "(facts policies.calico_network_policies, policies.calico_global_network_policies): they are in "
            f"the backup ({self.backup_dir}/old-cni) but not translated to Cilium, as this plan was built without "
            "reading them, so the cluster stops enforcing them; plan with `cni-migrate plan` (which translates "
            "them) or translate them with `cni-migrate policy translate` before this step"
        ]

    def remove_old_cni_steps(self, inv: Inventory, *, disruptive: bool) -> list[Step]:
        r = self.r
        steps: list[Step] = []
        outage = Disruption(
            disruptive=disruptive,
            scope="cluster" if disruptive else "none",
            estimate_seconds=600 if disruptive else 0,
            what="pod networking is down from here until Cilium is running"
            if disruptive
            else "none: every pod already runs on Cilium",
        )
        restore_all = self.restore("old-cni", inv.backup_objects, inv.backup_selectors)
        calico = r.facts.cni.calico
        bgp_value = calico.bgp.value if calico is not None else None
        advertised = (
            [
                *bgp_value.service_cluster_ips,
                *bgp_value.service_external_ips,
                *bgp_value.service_load_balancer_ips,
            ]
            if bgp_value is not None
            else []
        )
        peers = [p.peer_ip for p in calico.bgp_peers if p.peer_ip] if calico is not None else []
        if not disruptive and calico is not None and (advertised or peers):
            # Rolling: pods already run on Cilium, but BIRD (in calico-node) still advertises service addresses
            # and pod routes to the routers; deleting Calico withdraws them until Cilium's BGP takes over.
            until = "the `bgp` step establishes the new sessions" if r.bgp != "none" else "nothing: --bgp none"
            outage = Disruption(
                disruptive=True,
                scope="cluster",
                estimate_seconds=120,
                what="Calico's BIRD stops advertising "
                + (f"service addresses {', '.join(advertised)} and " if advertised else "")
                + f"pod routes to the BGP peers ({', '.join(peers) or 'in-cluster peers'}); clients outside the "
                f"cluster lose them until {until}",
            )
        if inv.delete_crds and calico is not None:
            self.warnings.extend(self._policy_loss_warnings())
        if inv.delete_first:
            steps.append(
                Step(
                    id="uninstall-calico-operator-resources",
                    title="Delete the tigera-operator Installation (and APIServer) while the operator still runs",
                    scope="cluster",
                    description="The operator processes the Installation's finalizers and removes calico-system; "
                    "deleting the operator first would leave them stuck.",
                    actions=[
                        DeleteObjects(objects=inv.delete_first, wait=True, timeout_seconds=600),
                        *(WaitFor(condition="deleted", target=w, timeout_seconds=600) for w in inv.workloads),
                    ],
                    preconditions=[
                        ObjectCheck(
                            description="tigera-operator is running, so it can process the finalizers",
                            target=ref("apps/v1", "Deployment", "tigera-operator", "tigera-operator"),
                            jsonpath="{.status.availableReplicas}",
                            equals="1",
                        )
                    ],
                    # not "the Installation is gone": a stuck operator leaves it terminating, and
                    # clear-stuck-finalizers (after the operator is deleted) finishes it
                    success=[
                        ObjectCheck(
                            description=f"{w.text()} is gone (the operator removed it)", target=w, state="absent"
                        )
                        for w in inv.workloads
                    ],
                    rollback=Rollback(
                        description="re-create the Installation from the backup; the operator reinstalls Calico",
                        actions=[self.restore("old-cni", inv.delete_first)],
                    ),
                    disruption=outage,
                    relies_on=self.fr("cni.calico.install_method", "cni.calico.installation_finalizers"),
                )
            )
        clear_stuck: Step | None = None
        if inv.stuck_finalizers:
            clear_stuck = Step(
                id="clear-stuck-finalizers",
                title="Clear finalizers nobody will process any more (tigera.io/cni-protector, operator cleanup)",
                scope="cluster",
                description="Runs after the operator and its namespaces are deleted, so nobody is left to process "
                "these finalizers. Only objects still terminating after the grace time are touched; their full "
                "YAML, finalizers included, is in the backup. Calico's maintainers advise against stripping "
                "finalizers that a running operator can still process, hence the wait.",
                actions=[
                    *(
                        RemoveFinalizers(target=t, finalizers=f, after_seconds=120 if "cni-protector" in f[0] else 300)
                        for t, f in inv.stuck_finalizers
                    ),
                    # the namespaces these objects held in Terminating are finalized once they are gone
                    *(
                        WaitFor(condition="deleted", target=n, timeout_seconds=300)
                        for n in inv.delete_objects
                        if n.kind == "Namespace" and any(t.namespace == n.name for t, _ in inv.stuck_finalizers)
                    ),
                ],
                success=[
                    ObjectCheck(description=f"{t.text()} is gone", target=t, state="absent")
                    for t, _ in inv.stuck_finalizers
                ],
                rollback=Rollback(
                    description="finalizers cannot be re-added to a deleted object; restore the objects from "
                    "the backup if Calico must come back",
                    actions=[self.restore("old-cni", [t for t, _ in inv.stuck_finalizers])],
                ),
                disruption=outage,
                relies_on=self.fr("cni.calico.installation_finalizers"),
            )
        if inv.delete_objects:
            what = "the tigera-operator" if calico is not None and calico.install_method == "operator" else r.old_cni
            steps.append(
                Step(
                    id="delete-old-cni",
                    title=f"Delete {what} (DaemonSets, Deployments, RBAC, configuration)",
                    scope="cluster",
                    actions=[
                        DeleteObjects(objects=inv.delete_objects, wait=True, cascade="foreground"),
                        *(WaitFor(condition="deleted", target=w, timeout_seconds=600) for w in inv.workloads),
                    ],
                    success=[
                        ObjectCheck(description=f"{w.text()} is gone", target=w, state="absent") for w in inv.workloads
                    ],
                    rollback=Rollback(description=f"re-create {r.old_cni} from the backup", actions=[restore_all]),
                    disruption=outage,
                    relies_on=self.fr("cni.detected", "cni.calico.namespace", "cni.flannel.namespace"),
                )
            )
        if clear_stuck is not None:
            # after the operator and the namespaces are deleted: the finalizers of objects the namespace
            # deletion leaves terminating are cleared here, and nobody is left who could still process them
            steps.append(clear_stuck)
        if inv.delete_crds:
            steps.append(
                Step(
                    id="delete-old-cni-crds",
                    title="Delete the old CNI's CustomResourceDefinitions (and with them its custom resources)",
                    scope="cluster",
                    actions=[DeleteObjects(objects=inv.delete_crds, wait=True)],
                    success=[
                        ObjectCheck(description=f"{c.name} is gone", target=c, state="absent")
                        for c in inv.delete_crds[:3]
                    ],
                    rollback=Rollback(
                        description="re-create the CRDs, then the custom resources, from the backup",
                        actions=[restore_all],
                    ),
                    disruption=outage,
                )
            )
        if inv.leftovers is not None:
            steps.append(
                Step(
                    id="delete-old-cni-leftovers",
                    title=f"Delete leftovers found by name (/{inv.leftovers.pattern}/, as the seed's "
                    "`kubectl get all -A | egrep` sweep)",
                    scope="cluster",
                    actions=[
                        ManualGate(
                            prompt="Review the objects still matching the pattern (listed by the executor, all "
                            f"saved in {self.backup_dir}/old-cni-by-name) before they are deleted",
                            details=["objects of your own applications may match the pattern: exclude them"],
                        ),
                        DeleteObjects(name_match=inv.leftovers, wait=True),
                    ],
                    success=[
                        CommandCheck(
                            description="no object of a listable kind matches the pattern any more",
                            # a loop, not xargs: kubectl must stay the caller's (pinned) kubectl
                            shell=f"kubectl api-resources --verbs=list -o name | grep -vE '{SWEEP_SKIPPED_PATTERN}' "
                            '| while read -r R; do kubectl get "$R" -A -o name --ignore-not-found 2>/dev/null; done '
                            f"| grep -iE '{inv.leftovers.pattern}' || true",
                            reject=r"\S",
                        )
                    ],
                    rollback=Rollback(
                        description="re-create the deleted leftovers from the backup",
                        actions=[self.restore("old-cni-by-name", [])],
                    ),
                    disruption=outage,
                )
            )
        return steps

    def remove_kube_proxy_step(self, *, disruptive: bool) -> Step:
        objs = kube_proxy_objects(self.r)
        return Step(
            id="remove-kube-proxy",
            title="Delete the kube-proxy DaemonSet and its ConfigMap (so kubeadm upgrade does not bring it back)",
            scope="cluster",
            description="Removing kube-proxy breaks existing service connections until Cilium's kube-proxy "
            "replacement serves them. Also run kubeadm upgrades with --skip-phases=addon/kube-proxy from now on.",
            # foreground: the DaemonSet is gone only once its pods are, so the node cleanup that follows does not
            # race a kube-proxy still running and re-creating its chains
            actions=[DeleteObjects(objects=objs, wait=True, cascade="foreground")],
            preconditions=[ObjectCheck(description="kube-proxy's backup was taken first", target=objs[0])],
            success=[ObjectCheck(description=f"{o.text()} is gone", target=o, state="absent") for o in objs],
            rollback=Rollback(
                description="re-create kube-proxy from the backup", actions=[self.restore("kube-proxy", objs)]
            ),
            disruption=Disruption(
                disruptive=True,
                scope="cluster",
                estimate_seconds=300 if disruptive else 60,
                what="service traffic is not load-balanced until Cilium's kube-proxy replacement runs",
            ),
            relies_on=self.fr("kube_proxy.present", "kube_proxy.mode"),
        )

    def node_cleanup_step(self, step_id: str, nodes: list[str], *, kube_proxy: bool, disruptive: bool) -> Step:
        r = self.r
        cmds = old_cni_cleanup_commands(r, self.node_dir, kube_proxy=kube_proxy)
        if r.opts.node_cleanup == "reboot":
            globs = [c for c in cmds if "cni-config" in c.removes]
            cmds = [
                *globs,
                NodeCommand(
                    run="systemctl reboot",
                    description="reboot: clears the old CNI's routes, links, iptables rules and IPVS state",
                    removes=sorted(
                        {k for c in node_backup_commands(r, self.node_dir) for k in c.saves} - {"cni-config"}
                    ),
                ),
            ]
        return Step(
            id=step_id,
            title="Clean the nodes: old CNI configuration, routes, interfaces, iptables chains"
            + (", IPVS rules" if kube_proxy and r.facts.kube_proxy.mode.value == "ipvs" else "")
            + (" (reboot)" if r.opts.node_cleanup == "reboot" else ""),
            scope="node",
            nodes=nodes,
            description=f"On every node, as root. Configuration files are moved to {self.node_dir}/removed-cni.",
            actions=[
                NodeCommands(nodes=nodes, commands=cmds, parallel=10 if disruptive else 1),
                *(
                    [WaitFor(condition="nodes-ready", nodes=nodes, timeout_seconds=900)]
                    if r.opts.node_cleanup == "reboot"
                    else []
                ),
            ],
            preconditions=[
                CommandCheck(
                    description="the node backup was taken", shell=f"test -d {self.node_dir}/cni-net.d", nodes=nodes
                )
            ],
            success=[
                CommandCheck(
                    description="no old CNI interface is left",
                    shell="ip -o link show | awk -F': ' '{print $2}' | "
                    "grep -E '^(cali|flannel|cni0|tunl0|vxlan\\.calico)' || true",
                    nodes=nodes,
                    reject=r"\S",
                )
            ],
            rollback=Rollback(
                description="restore each node's CNI configuration and iptables rules from its backup (routes and "
                "interfaces are re-created by the old CNI when it is reinstalled)",
                actions=[NodeCommands(nodes=nodes, commands=restore_commands(self.node_dir))],
            ),
            disruption=Disruption(
                disruptive=disruptive,
                scope="cluster" if disruptive else "none",
                estimate_seconds=60,
                what="part of the cluster-wide outage" if disruptive else "none: the old CNI no longer carries traffic",
            ),
            relies_on=self.fr("cni.detected", "kube_proxy.mode", "cni.flannel.vni"),
        )

    # --- BGP ---------------------------------------------------------------------------------------------------

    def bgp_step(self, bgp: BgpPlan, *, disruptive: bool) -> Step:
        r = self.r
        if r.bgp == "kube-router":
            path = self.manifest(
                "manifests/kube-router.yaml",
                bgp.objects,
                "kube-router advertising pod CIDRs and service addresses over BGP (translated from Calico)",
            )
            actions: list[Action] = []
            if bgp.node_annotations:
                actions.append(AnnotateNodes(annotations={k: dict(v) for k, v in sorted(bgp.node_annotations.items())}))
            actions += [
                ApplyObjects(artifact=path, objects=bgp.objects),
                WaitFor(condition="rollout", target=ref("apps/v1", "DaemonSet", "kube-router", "kube-system")),
            ]
            success: list[Check] = [
                CommandCheck(
                    description="kube-router's BGP sessions to the peers are established",
                    argv=kubectl("-n", "kube-system", "exec", "ds/kube-router", "--", "gobgp", "neighbor"),
                    expect="Establ",
                )
            ]
            rollback = Rollback(
                description="delete kube-router (and its node annotations)",
                actions=[
                    DeleteObjects(objects=[_ref_of(o) for o in bgp.objects]),
                    *(
                        [
                            AnnotateNodes(
                                annotations={n: dict.fromkeys(v) for n, v in sorted(bgp.node_annotations.items())}
                            )
                        ]
                        if bgp.node_annotations
                        else []
                    ),
                ],
            )
            title = f"Advertise routes with kube-router (cluster ASN {bgp.cluster_asn}, peers "
        else:
            path = self.manifest(
                "manifests/cilium-bgp.yaml",
                bgp.objects,
                "Cilium BGP control plane configuration (translated from Calico's BGPConfiguration and BGPPeers)",
            )
            crd_ref = ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", "ciliumbgpclusterconfigs.cilium.io")
            actions = [
                WaitFor(condition="condition", target=crd_ref, value="Established", timeout_seconds=300),
                ApplyObjects(artifact=path, objects=bgp.objects),
            ]
            success = [
                CommandCheck(
                    description="Cilium's BGP sessions to the peers are established",
                    argv=self.cilium_exec("bgp", "peers"),
                    expect="(?i)established",
                )
            ]
            rollback = Rollback(
                description="delete the Cilium BGP resources",
                actions=[DeleteObjects(objects=[_ref_of(o) for o in bgp.objects])],
            )
            title = f"Configure Cilium's BGP control plane (ASN {bgp.cluster_asn}, peers "
        peers = ", ".join(f"{ip} AS {asn}" for ip, asn in bgp.peers)
        return Step(
            id="bgp",
            title=title + peers + ")",
            scope="cluster",
            description="; ".join(bgp.notes),
            actions=actions,
            success=success,
            rollback=rollback,
            disruption=Disruption(
                disruptive=disruptive,
                scope="cluster" if disruptive else "none",
                estimate_seconds=60,
                what="routes to pods and service addresses are withdrawn until the new BGP sessions are up",
            ),
            relies_on=self.fr("cni.calico.bgp", "cni.calico.bgp_peers", "cni.calico.route_reflectors"),
        )

    # --- verification --------------------------------------------------------------------------------------------

    def verify_namespace_step(self) -> Step:
        objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": VERIFY_NS}}]
        path = self.manifest("manifests/verify-namespace.yaml", objs, "namespace for cni-migrate's probes")
        return Step(
            id="verify-namespace",
            title=f"Create the namespace {VERIFY_NS} for the verification workloads",
            scope="cluster",
            actions=[ApplyObjects(artifact=path, objects=objs)],
            success=[ObjectCheck(description="the namespace exists", target=ref("v1", "Namespace", VERIFY_NS))],
            rollback=Rollback(
                description="delete the namespace",
                actions=[DeleteObjects(objects=[ref("v1", "Namespace", VERIFY_NS)])],
            ),
        )

    def nodeport_objects(self) -> list[dict[str, Any]]:
        labels = {"app.kubernetes.io/name": "cni-migrate-verify"}
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": VERIFY_NS}},
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "echo", "namespace": VERIFY_NS, "labels": dict(labels)},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": dict(labels)},
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "containers": [
                                {
                                    "name": "echo",
                                    "image": self.r.opts.verify_image,
                                    "args": ["netexec", "--http-port=8080"],
                                    "ports": [{"containerPort": 8080, "name": "http"}],
                                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                                }
                            ],
                            "tolerations": [{"operator": "Exists"}],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "echo", "namespace": VERIFY_NS, "labels": dict(labels)},
                "spec": {
                    "type": "NodePort",
                    "selector": dict(labels),
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            },
        ]

    def verify_steps(self, *, kpr: bool, bgp: BgpPlan | None) -> list[Step]:
        r = self.r
        nodes = r.node_names
        objs = self.nodeport_objects()
        path = self.manifest(
            "manifests/verify-nodeport.yaml", objs, "an echo Deployment behind a NodePort Service, to probe every node"
        )
        svc = ref("v1", "Service", "echo", VERIFY_NS)
        checks: list[Check] = [
            *self.cilium_status_checks(kpr=kpr),
            CommandCheck(
                description="Cilium's service table lists the cluster's services (cilium service list)",
                argv=self.cilium_exec("service", "list"),
                expect="ClusterIP" if kpr else None,
            ),
            CommandCheck(
                description="Cilium manages endpoints on the node (cilium endpoint list)",
                argv=self.cilium_exec("endpoint", "list"),
            ),
            CommandCheck(
                description="every pod that is not hostNetwork has an address in Cilium's pod CIDRs",
                argv=kubectl(
                    "get",
                    "pods",
                    "-A",
                    "--field-selector=status.phase=Running",
                    "-o",
                    "custom-columns=IP:.status.podIP,HOSTNETWORK:.spec.hostNetwork",
                    "--no-headers",
                ),
                expect_in_cidr=list(r.pool_cidrs),
                ignore_lines=r"\strue\s*$",
            ),
        ]
        if kpr:
            checks.append(
                CommandCheck(
                    description="no kube-proxy service chains are left in iptables (KUBE-SVC)",
                    shell="iptables-save | grep -c KUBE-SVC || true",
                    nodes=nodes,
                    expect=r"^0\s*$",
                )
            )
        apply = Step(
            id="verify-nodeport",
            title="Verify as the seeds do: cilium status, kube-proxy replacement mode, service list, and a NodePort "
            "answering on every node",
            scope="cluster",
            actions=[
                ApplyObjects(artifact=path, objects=objs),
                WaitFor(condition="rollout", target=ref("apps/v1", "Deployment", "echo", VERIFY_NS)),
            ],
            success=[
                *checks,
                NodePortCheck(
                    description="the echo Service's NodePort answers on every node's InternalIP",
                    service=svc,
                    addresses=self.node_ips(nodes),
                ),
                *(self._bgp_checks(bgp) if bgp is not None else []),
            ],
            rollback=Rollback(
                description="delete the verification workload",
                actions=[DeleteObjects(objects=[ref("v1", "Namespace", VERIFY_NS)])],
            ),
            relies_on=[node_ref(r.facts, nodes, "internal_ips")],
        )
        cleanup = Step(
            id="verify-cleanup",
            title="Remove the verification workload",
            scope="cluster",
            actions=[DeleteObjects(objects=[ref("v1", "Namespace", VERIFY_NS)], wait=True)],
            success=[
                ObjectCheck(
                    description="the namespace is gone", target=ref("v1", "Namespace", VERIFY_NS), state="absent"
                )
            ],
            rollback=Rollback(description="nothing to undo: only the plan's own probe objects were removed"),
        )
        return [apply, cleanup]

    def _bgp_checks(self, bgp: BgpPlan) -> list[Check]:
        if self.r.bgp == "kube-router":
            return [
                CommandCheck(
                    description="kube-router's BGP sessions are established",
                    argv=kubectl("-n", "kube-system", "exec", "ds/kube-router", "--", "gobgp", "neighbor"),
                    expect="Establ",
                )
            ]
        return [
            CommandCheck(
                description="Cilium's BGP sessions are established",
                argv=self.cilium_exec("bgp", "peers"),
                expect="(?i)established",
            )
        ]

    def restart_unmanaged_step(self) -> Step:
        return Step(
            id="restart-unmanaged-pods",
            title="Restart the pods Cilium does not manage yet (non-hostNetwork pods without a CiliumEndpoint)",
            scope="cluster",
            description="Pods that kept an address from the old CNI get a new one from Cilium. PodDisruptionBudgets "
            "are not consulted: the cluster is in its maintenance window.",
            actions=[RestartPods(unmanaged_only=True)],
            success=[
                CommandCheck(
                    description="no pod is left without an address",
                    argv=kubectl("get", "pods", "-A", "--field-selector=status.phase=Pending", "-o", "name"),
                    reject=r"\S",
                )
            ],
            rollback=Rollback(description="nothing to undo: restarted pods are recreated by their controllers"),
            disruption=Disruption(
                disruptive=True, scope="cluster", estimate_seconds=120, what="every non-hostNetwork pod restarts once"
            ),
            relies_on=self.fr("workloads.pods", "workloads.host_network_pods"),
        )


def _ref_of(obj: dict[str, Any]) -> ObjectRef:
    md = obj.get("metadata") or {}
    return ObjectRef(
        api_version=str(obj["apiVersion"]), kind=str(obj["kind"]), name=str(md["name"]), namespace=md.get("namespace")
    )


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    return _ref_of(obj)


def release_lint_context(
    r: Resolved,
    *,
    old_cni_present: bool,
    kube_proxy_present: bool,
    first_install: bool = False,
    migration: Literal["none", "rolling"] = "none",
) -> LintContext:
    """How a values file of the plan's Cilium release is linted: applied with ``helm upgrade --install``."""
    return LintContext(
        old_cni_present=old_cni_present,
        kube_proxy_present=kube_proxy_present,
        helm_action="install" if first_install else "upgrade",
        release_name=r.opts.release_name,
        namespace=r.opts.namespace,
        migration=migration,
        upgrade_install=True,
    )
