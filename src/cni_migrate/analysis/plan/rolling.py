"""The rolling strategy (the graceful seed, 003, with Cilium's per-node migration guide): Cilium runs next to
the old CNI as a second overlay, nodes move over in batches (workers first, control plane last), then the old CNI
and, optionally, kube-proxy (per node) are removed."""

from __future__ import annotations

import re
from typing import Any, Literal

from cni_migrate.analysis.calico_policies import MANAGED_LABELS
from cni_migrate.analysis.cidrs import try_parse
from cni_migrate.analysis.plan.bgp import bgp_plan
from cni_migrate.analysis.plan.cleanup import CNI_DIR, kube_proxy_node_cleanup, old_cni_cleanup_commands
from cni_migrate.analysis.plan.common import VERIFY_NS, Builder, kubectl, release_lint_context, short_hash
from cni_migrate.analysis.plan.model import (
    Action,
    ApplyObjects,
    Check,
    CommandCheck,
    CordonNodes,
    DeleteObjects,
    Disruption,
    EvictPods,
    FactCheck,
    LabelNodes,
    NodeCommand,
    NodeCommands,
    ObjectCheck,
    ObjectRef,
    PatchObject,
    Phase,
    RestartPods,
    Rollback,
    RolloutRestart,
    Step,
    UncordonNodes,
    Verify,
    WaitFor,
)
from cni_migrate.analysis.plan.offline import preflight_checks, preflight_step
from cni_migrate.analysis.plan.oldcni import kube_proxy_objects, old_cni_inventory, ref
from cni_migrate.analysis.plan.options import Resolved
from cni_migrate.analysis.plan.policies import apply_policies_step, policy_gate_step
from cni_migrate.analysis.plan.values import kpr_value
from cni_migrate.facts.model import ClusterFacts, Fact

MIGRATION_LABEL = "io.cilium.migration/cilium-default"
KPR_LABEL = "io.cilium.migration/kube-proxy-replacement"
CNC_DEFAULT = "cilium-default"
CNC_KPR = "kube-proxy-replacement-strict"
ALLOW_ALL = "cni-migrate-allow-all"


# --- the old CNI next to Cilium -------------------------------------------------------------------------------


def autodetection_risk(r: Resolved) -> str | None:
    """Why Calico's IP autodetection could pick Cilium's ``cilium_host`` interface, or None when it cannot."""
    calico = r.facts.cni.calico
    if calico is None or not calico.ip_autodetection_method.known:
        return None if calico is None else "the autodetection method is unknown"
    method = str(calico.ip_autodetection_method.value)
    if method == "none":  # Canal (CALICO_NETWORKING_BACKEND=none) or IP=none: no address is autodetected
        return None
    if method in ("first-found", "firstFound=true"):
        return f"{method} takes the first interface with an address, which can be cilium_host"
    if method.startswith("interface="):
        for pattern in method.removeprefix("interface=").split(","):
            try:
                if re.search(pattern, "cilium_host"):
                    return f"{method} matches cilium_host"
            except re.error:
                return f"{method} is not a valid regular expression"
        return None
    if method.startswith("skip-interface="):
        return f"{method} still autodetects among the remaining interfaces, cilium_host included"
    if method.startswith("cidr="):
        for c in method.removeprefix("cidr=").split(","):
            net = try_parse(c)
            pools = [try_parse(p) for p in r.pool_cidrs]
            if net is not None and any(p is not None and p.version == net.version and net.overlaps(p) for p in pools):
                return f"{method} includes Cilium's pod CIDR, where cilium_host takes its address"
        return None
    return None  # can-reach=, kubernetes-internal-ip: never cilium_host


PINNED_AUTODETECTION = "kubernetes=NodeInternalIP"


def pinned_facts(r: Resolved) -> ClusterFacts:
    """The facts as they are once pin-calico-autodetection ran (what the values are linted against)."""
    calico = r.facts.cni.calico
    assert calico is not None
    pinned = calico.model_copy(
        update={
            "ip_autodetection_method": Fact.of(
                PINNED_AUTODETECTION, "pinned by the plan's step pin-calico-autodetection"
            )
        }
    )
    cni = r.facts.cni.model_copy(update={"calico": pinned})
    return r.facts.model_copy(update={"cni": cni})


def calico_node_daemonset(r: Resolved) -> ObjectRef:
    """The DaemonSet running calico-node, as the facts saw it (calico-node; canal for Canal)."""
    calico = r.facts.cni.calico
    assert calico is not None
    default = "canal" if r.old_cni == "canal" else "calico-node"
    return ref("apps/v1", "DaemonSet", calico.daemonset or default, calico.namespace)


def pin_autodetection_step(b: Builder, why: str) -> Step:
    r = b.r
    calico = r.facts.cni.calico
    assert calico is not None
    ds = calico_node_daemonset(r)
    if calico.install_method == "operator":
        target = ref("operator.tigera.io/v1", "Installation", "default")
        patch: dict[str, Any] = {
            "spec": {
                "calicoNetwork": {"nodeAddressAutodetectionV4": {"firstFound": False, "kubernetes": "NodeInternalIP"}}
            }
        }
        patch_type: Literal["merge", "strategic"] = "merge"
    else:
        target = ds
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "calico-node",
                                "env": [{"name": "IP_AUTODETECTION_METHOD", "value": "kubernetes-internal-ip"}],
                            }
                        ]
                    }
                }
            }
        }
        patch_type = "strategic"
    return Step(
        id="pin-calico-autodetection",
        title="Pin Calico's node address autodetection to the Kubernetes InternalIP, so it never picks cilium_host",
        scope="cluster",
        description=f"{why}; Cilium's migration guide patches it before Cilium is installed (cilium/cilium#31273)",
        actions=[
            PatchObject(target=target, patch_type=patch_type, patch=patch),
            WaitFor(condition="rollout", target=ds, timeout_seconds=900),
        ],
        preconditions=[ObjectCheck(description=f"{target.text()} exists", target=target)],
        success=[
            ObjectCheck(
                description=f"{ds.name} is ready on every node",
                target=ds,
                jsonpath="{.status.numberUnavailable}",
                equals="",
            )
        ],
        rollback=Rollback(
            description="restore the original autodetection setting from the backup",
            actions=[b.restore("old-cni", [target])],
        ),
        disruption=Disruption(
            disruptive=True,
            scope="node",
            estimate_seconds=30,
            what="calico-node restarts on every node in turn (BGP sessions and routes flap briefly)",
        ),
        relies_on=b.fr("cni.calico.ip_autodetection_method", "cni.calico.install_method", "cni.calico.daemonset"),
    )


def enforces_policies(r: Resolved) -> bool:
    if r.old_cni not in ("calico", "canal"):
        return False
    p = r.facts.policies
    counts = [p.kubernetes_network_policies, p.calico_network_policies, p.calico_global_network_policies]
    return any(not c.known or (c.value or 0) > 0 for c in counts)


def allow_all_step(b: Builder) -> Step:
    obj = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": ALLOW_ALL, "labels": dict(MANAGED_LABELS)},
        "spec": {
            "order": 0,
            "selector": "all()",
            "types": ["Ingress", "Egress"],
            "ingress": [{"action": "Allow"}],
            "egress": [{"action": "Allow"}],
        },
    }
    path = b.manifest(
        "manifests/calico-allow-all.yaml",
        [obj],
        "Calico GlobalNetworkPolicy allowing all traffic while both CNIs run (Cilium enforces no policy meanwhile)",
    )
    target = ref("crd.projectcalico.org/v1", "GlobalNetworkPolicy", ALLOW_ALL)
    return Step(
        id="calico-allow-all",
        title="Allow all traffic in Calico while both CNIs run (Calico would drop traffic from Cilium's pod CIDR)",
        scope="cluster",
        description="Network policies are not enforced from here until the migration ends: Cilium runs with "
        "policyEnforcementMode=never and Calico allows everything.",
        actions=[ApplyObjects(artifact=path, objects=[obj])],
        success=[ObjectCheck(description="the allow-all policy exists", target=target)],
        rollback=Rollback(description="delete the allow-all policy", actions=[DeleteObjects(objects=[target])]),
        disruption=Disruption(what="network policies stop being enforced until the migration ends"),
        relies_on=b.fr(
            "policies.kubernetes_network_policies",
            "policies.calico_network_policies",
            "policies.calico_global_network_policies",
        ),
    )


def node_config(b: Builder, name: str, label: str, defaults: dict[str, str]) -> dict[str, Any]:
    api = b.r.version.node_config_api
    assert api is not None
    return {
        "apiVersion": api,
        "kind": "CiliumNodeConfig",
        "metadata": {"name": name, "namespace": b.ns},
        "spec": {"nodeSelector": {"matchLabels": {label: "true"}}, "defaults": defaults},
    }


# --- per-node batches ------------------------------------------------------------------------------------------


def probe_pod(b: Builder, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"probe-{short_hash(node)}",
            "namespace": VERIFY_NS,
            "labels": {"app": "cni-migrate-probe"},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "probe",
                    "image": b.r.opts.probe_image,
                    "command": [
                        "/bin/sh",
                        "-c",
                        "ip -br addr && curl -sk --max-time 10 "
                        "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/healthz && echo",
                    ],
                }
            ],
        },
    }


def _pod_ref(obj: dict[str, Any]) -> ObjectRef:
    return ref("v1", "Pod", obj["metadata"]["name"], obj["metadata"]["namespace"])


def node_checks(b: Builder, nodes: list[str], cidrs: list[str]) -> tuple[list[Action], list[Check], list[ObjectRef]]:
    """Probe pods pinned to the nodes: each must get an address in ``cidrs`` and reach the API server."""
    pods = [probe_pod(b, n) for n in nodes]
    refs = [_pod_ref(p) for p in pods]
    actions: list[Action] = [
        ApplyObjects(objects=pods),
        *(WaitFor(condition="pod-phase", target=x, value="Succeeded", timeout_seconds=300) for x in refs),
    ]
    checks: list[Check] = []
    for n, x in zip(nodes, refs, strict=True):
        checks += [
            CommandCheck(
                description=f"a pod on {n} gets an address in Cilium's CIDR",
                argv=kubectl("-n", VERIFY_NS, "get", "pod", x.name, "-o", "jsonpath={.status.podIP}"),
                expect_in_cidr=list(cidrs),
            ),
            CommandCheck(
                description=f"a pod on {n} reaches the API server",
                argv=kubectl("-n", VERIFY_NS, "logs", x.name),
                expect=r"\bok\b",
            ),
            CommandCheck(
                description=f"the Cilium agent on {n} is healthy",
                argv=[b.dbg, "status"],
                cilium_pod_on=n,
                expect=r"Cilium:\s+Ok",
            ),
        ]
    return actions, checks, refs


def _ready(nodes: list[str]) -> list[Check]:
    return [
        CommandCheck(
            description=f"node {n} is Ready",
            argv=kubectl("get", "node", n, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'),
            expect=r"^True$",
        )
        for n in nodes
    ]


def _label(nodes: list[str]) -> str:
    return ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")


def migrate_batch_step(b: Builder, index: int, nodes: list[str], control_plane: bool) -> Step:
    r = b.r
    cilium_ds = ref("apps/v1", "DaemonSet", "cilium", b.ns)
    probe_actions, probe_checks, probe_refs = node_checks(b, nodes, r.pool_cidrs)
    reboot: list[Action] = []
    if r.opts.reboot_migrated_nodes:
        reboot = [
            NodeCommands(
                nodes=nodes,
                commands=[
                    NodeCommand(run="systemctl reboot", description="reboot (Cilium's guide), clearing old state")
                ],
            ),
            WaitFor(condition="nodes-ready", nodes=nodes, timeout_seconds=900),
        ]
    undo_conf = NodeCommand(
        run=f"rm -f {CNI_DIR}/05-cilium.conflist && for f in {CNI_DIR}/*.cilium_bak; do "
        '[ -e "$f" ] && mv "$f" "${f%.cilium_bak}"; done; true',
        description="remove Cilium's CNI configuration and rename the old CNI's *.cilium_bak files back",
    )
    return Step(
        id=f"migrate-{index:04d}",
        title=f"Move {'control-plane node' if control_plane else 'worker batch'} {_label(nodes)} to Cilium",
        scope="node",
        nodes=nodes,
        description="cordon, evict (PodDisruptionBudgets respected), label for the CiliumNodeConfig, restart the "
        "Cilium agent so it writes its CNI configuration, verify with a probe pod, uncordon",
        actions=[
            CordonNodes(nodes=nodes),
            EvictPods(nodes=nodes),
            LabelNodes(nodes=nodes, labels={MIGRATION_LABEL: "true"}),
            RestartPods(namespace=b.ns, selector="k8s-app=cilium", nodes=nodes),
            WaitFor(condition="rollout", target=cilium_ds, timeout_seconds=600),
            *reboot,
            *probe_actions,
            Verify(checks=probe_checks),
            DeleteObjects(objects=probe_refs, wait=False),
            UncordonNodes(nodes=nodes),
        ],
        preconditions=[
            *_ready(nodes),
            ObjectCheck(
                description="the CiliumNodeConfig for migrated nodes exists",
                target=ref(r.version.node_config_api or "cilium.io/v2", "CiliumNodeConfig", CNC_DEFAULT, b.ns),
            ),
        ],
        success=[
            CommandCheck(
                description=f"node {n} is schedulable again",
                argv=kubectl("get", "node", n, "-o", "jsonpath={.spec.unschedulable}"),
                reject="true",
            )
            for n in nodes
        ],
        rollback=Rollback(
            description="move the nodes back to the old CNI: cordon, evict, unlabel, restart the agent, restore the "
            "old CNI configuration, evict again, uncordon",
            actions=[
                CordonNodes(nodes=nodes),
                EvictPods(nodes=nodes),
                LabelNodes(nodes=nodes, labels={MIGRATION_LABEL: None}),
                RestartPods(namespace=b.ns, selector="k8s-app=cilium", nodes=nodes),
                NodeCommands(nodes=nodes, commands=[undo_conf]),
                EvictPods(nodes=nodes),
                UncordonNodes(nodes=nodes),
            ],
        ),
        disruption=Disruption(
            disruptive=True,
            scope="node",
            estimate_seconds=120 + (300 if r.opts.reboot_migrated_nodes else 0),
            what="pods on these nodes are evicted and start again on other nodes or, after uncordon, here",
        ),
        relies_on=[*b.fr("pdbs"), *([] if index else b.fr("nodes"))],
    )


def kpr_batch_step(b: Builder, index: int, nodes: list[str]) -> Step:
    r = b.r
    cilium_ds = ref("apps/v1", "DaemonSet", "cilium", b.ns)
    return Step(
        id=f"kpr-{index:04d}",
        title=f"Switch {_label(nodes)} to Cilium's kube-proxy replacement",
        scope="node",
        nodes=nodes,
        description="Labelled nodes drop kube-proxy (DaemonSet affinity) and get kube-proxy replacement from the "
        "CiliumNodeConfig; kube-proxy's iptables chains are then removed from them.",
        actions=[
            LabelNodes(nodes=nodes, labels={KPR_LABEL: "true"}),
            CordonNodes(nodes=nodes),
            RestartPods(namespace=b.ns, selector="k8s-app=cilium", nodes=nodes),
            WaitFor(condition="rollout", target=cilium_ds, timeout_seconds=600),
            WaitFor(condition="deleted", selector="k8s-app=kube-proxy", namespace="kube-system", nodes=nodes),
            NodeCommands(nodes=nodes, commands=kube_proxy_node_cleanup(r)),
            Verify(
                checks=[
                    CommandCheck(
                        description=f"kube-proxy replacement is active on {n}",
                        argv=[b.dbg, "status"],
                        cilium_pod_on=n,
                        expect=r"KubeProxyReplacement:\s+(True|Strict)",
                    )
                    for n in nodes
                ]
            ),
            UncordonNodes(nodes=nodes),
        ],
        preconditions=_ready(nodes),
        success=[
            CommandCheck(
                description="no kube-proxy service chains are left",
                shell="iptables-save | grep -c KUBE-SVC || true",
                nodes=nodes,
                expect=r"^0\s*$",
            )
        ],
        rollback=Rollback(
            description="unlabel the nodes (kube-proxy comes back), restart the agents without kube-proxy replacement",
            actions=[
                LabelNodes(nodes=nodes, labels={KPR_LABEL: None}),
                RestartPods(namespace=b.ns, selector="k8s-app=cilium", nodes=nodes),
                UncordonNodes(nodes=nodes),
            ],
        ),
        disruption=Disruption(
            disruptive=True,
            scope="node",
            estimate_seconds=60,
            what="existing service connections through these nodes break (two NAT tables do not share state)",
        ),
    )


# --- the strategy -------------------------------------------------------------------------------------------


def mixed_cluster_checks(b: Builder, autodetect_why: str | None) -> list[Check]:
    r = b.r
    calico = r.facts.cni.calico
    flannel = r.facts.cni.flannel
    old_ipam = (
        "Calico IPAM (IPPools)" if calico is not None and r.old_cni == "calico" else "host-local on node podCIDRs"
    )
    old_port = None
    if flannel is not None and flannel.backend_type.value == "vxlan":
        old_port = f"Flannel VXLAN on UDP {flannel.backend_port.value}"
    elif calico is not None and calico.uses_vxlan.value:
        old_port = f"Calico VXLAN on UDP {calico.vxlan_port}"
    checks: list[Check] = [
        FactCheck(
            description="the two CNIs use different IPAM",
            fact="cni.detected",
            result="pass",
            detail=f"{r.old_cni}: {old_ipam}; Cilium: cluster-pool",
        ),
        FactCheck(
            description="the two CNIs allocate from distinct CIDRs",
            fact="network.pod_cidrs",
            result="pass",
            detail=f"old {', '.join(r.facts.network.pod_cidrs.value or ['unknown'])}; Cilium {r.pod_cidr_text}",
        ),
        FactCheck(
            description="the node is the gateway between them (both CNIs route through the Linux stack)",
            fact="cni.calico.felix" if calico is not None else "cni.flannel.backend_type",
            result="pass",
            detail=f"{r.old_cni} routes via the host; Cilium runs with bpf.hostLegacyRouting=true",
        ),
        FactCheck(
            description="one VXLAN overlay per host",
            fact="cni.flannel.backend_port" if flannel is not None else "cni.calico.vxlan_port",
            result="pass",
            detail=f"old: {old_port or 'no VXLAN'}; Cilium: {r.tunnel_protocol} on UDP {r.effective_tunnel_port}",
        ),
    ]
    if calico is not None:
        checks.append(
            FactCheck(
                description="Calico's IP autodetection cannot pick cilium_host",
                fact="cni.calico.ip_autodetection_method",
                result="warn" if autodetect_why else "pass",
                detail=autodetect_why + "; pinned before Cilium is installed"
                if autodetect_why
                else str(calico.ip_autodetection_method.value),
            )
        )
    pdbs = r.facts.pdbs
    if pdbs.known:
        blocking = [f"{p.namespace}/{p.name}" for p in pdbs.value or [] if p.blocks_eviction]
        checks.append(
            FactCheck(
                description="no PodDisruptionBudget blocks evictions",
                fact="pdbs",
                result="warn" if blocking else "pass",
                detail=("blocking: " + ", ".join(blocking)) if blocking else "every PDB allows a disruption",
            )
        )
    return checks


def build_rolling(b: Builder) -> list[Phase]:
    r = b.r
    nodes = r.node_names
    inv = old_cni_inventory(r)
    assert inv is not None
    kp = r.facts.kube_proxy
    kube_proxy_present = bool(not kp.present.known or kp.present.value)
    releases = r.facts.cilium_helm_releases.value or []
    phases: list[Phase] = []
    why = autodetection_risk(r) if r.old_cni in ("calico", "canal") else None

    blocking = [
        f"{p.namespace}/{p.name} (disruptions allowed: {p.disruptions_allowed})"
        for p in r.facts.pdbs.value or []
        if p.blocks_eviction
    ]
    pre: list[Step] = [preflight_step(b, [*preflight_checks(b), *mixed_cluster_checks(b, why)])]
    gate = policy_gate_step(b, b.policies)
    if gate is not None:
        pre.append(gate)
    if blocking:
        pre.append(
            b.gate(
                "blocking-pdbs",
                "PodDisruptionBudgets that would block the drains",
                "These PodDisruptionBudgets allow no disruption now, so evicting their pods stalls the node batches: "
                "scale the workloads up, relax the budgets or plan a switchover (e.g. a database primary) first.",
                blocking,
                b.fr("pdbs"),
            )
        )
    pre.append(
        b.gate(
            "review",
            "Review the plan",
            f"Nodes move to Cilium in {len(r.worker_batches)} worker batch(es), then {len(r.control_plane_batches)} "
            "control-plane node(s) one at a time; pods on each batch are evicted and restarted. Proceed?",
            [
                f"Cilium {r.version}: {r.tunnel_protocol} tunnel on UDP {r.effective_tunnel_port}, cluster-pool "
                f"{r.pod_cidr_text}",
                *r.warnings,
            ],
        )
    )
    phases.append(Phase(id="preflight", title="Preflight: conditions for a mixed cluster", steps=pre))

    backups = b.old_cni_backup_steps(inv)
    if r.remove_kube_proxy:
        backups.append(b.kube_proxy_backup_step())
    backups.append(b.node_backup_step("backup-nodes", nodes))
    phases.append(Phase(id="backup", title="Back up everything the migration changes or removes", steps=backups))

    prepare: list[Step] = []
    if why is not None:
        prepare.append(pin_autodetection_step(b, why))
    if enforces_policies(r):
        prepare.append(allow_all_step(b))
    if prepare:
        phases.append(Phase(id="prepare-old-cni", title="Prepare the old CNI to run next to Cilium", steps=prepare))

    # Cilium next to the old CNI
    ctx = release_lint_context(
        r,
        old_cni_present=True,
        kube_proxy_present=kube_proxy_present,
        first_install=not releases,
        migration="rolling",
    )
    lint_facts = pinned_facts(r) if why is not None else None
    mig_values = b.values(
        "values/10-migration.yaml",
        "migration",
        "Cilium values while both CNIs run (the guide's values-migration)",
        ctx,
        lint_facts,
    )
    cnc = node_config(
        b,
        CNC_DEFAULT,
        MIGRATION_LABEL,
        {
            "write-cni-conf-when-ready": "/host/etc/cni/net.d/05-cilium.conflist",
            "custom-cni-conf": "false",
            "cni-chaining-mode": "none",
            "cni-exclusive": "true",
        },
    )
    cnc_path = b.manifest(
        "manifests/ciliumnodeconfig-cilium-default.yaml", [cnc], "per-node Cilium CNI settings for migrated nodes"
    )
    cnc_ref = ref(str(cnc["apiVersion"]), "CiliumNodeConfig", CNC_DEFAULT, b.ns)
    phases.append(
        Phase(
            id="install-cilium",
            title="Install Cilium next to the old CNI",
            steps=[
                b.helm_step(
                    "install-cilium",
                    f"helm upgrade --install Cilium {r.version} as a second overlay ({r.tunnel_protocol} on UDP "
                    f"{r.effective_tunnel_port}, pods from {r.pod_cidr_text}); no pod moves yet",
                    mig_values,
                    description="Cilium writes no CNI configuration yet (cni.customConf) and enforces no policy; "
                    "existing pods keep running on the old CNI.",
                    first_install=not releases,
                    kpr=False,
                    relies=b.fr("cni.detected", "network.pod_cidrs", "cni.flannel.backend_port"),
                ),
                Step(
                    id="cilium-node-config",
                    title="Create the CiliumNodeConfig that makes labelled nodes use Cilium as their CNI",
                    scope="cluster",
                    actions=[ApplyObjects(artifact=cnc_path, objects=[cnc])],
                    success=[ObjectCheck(description="the CiliumNodeConfig exists", target=cnc_ref)],
                    rollback=Rollback(description="delete it", actions=[DeleteObjects(objects=[cnc_ref])]),
                ),
                b.verify_namespace_step(),
            ],
        )
    )

    steps: list[Step] = []
    i = 0
    for batch in r.worker_batches:
        steps.append(migrate_batch_step(b, i, batch, control_plane=False))
        i += 1
    for batch in r.control_plane_batches:
        steps.append(migrate_batch_step(b, i, batch, control_plane=True))
        i += 1
    phases.append(
        Phase(
            id="migrate-nodes",
            title="Move the nodes to Cilium: workers first, control plane last",
            description=f"batch size {r.opts.batch_size}, order {r.opts.node_order}",
            steps=steps,
        )
    )

    # final values
    final_ctx = release_lint_context(
        r, old_cni_present=True, kube_proxy_present=kube_proxy_present, migration="rolling"
    )
    final_values = b.values(
        "values/20-final.yaml",
        "final",
        "Cilium values once every node runs on Cilium (values-final)",
        final_ctx,
        lint_facts,
    )
    cilium_ds = ref("apps/v1", "DaemonSet", "cilium", b.ns)
    finalize = b.helm_step(
        "cilium-final-values",
        "helm upgrade Cilium to its final values (CNI configuration, policy enforcement, unmanaged pod restarts)"
        + ("" if r.opts.keep_host_legacy_routing else ", BPF host routing"),
        final_values,
        description="Each agent restarts; switching bpf.hostLegacyRouting off interrupts each node's traffic briefly.",
        first_install=False,
        kpr=False,
        disruption=Disruption(
            disruptive=not r.opts.keep_host_legacy_routing,
            scope="node" if not r.opts.keep_host_legacy_routing else "none",
            estimate_seconds=10,
            what="a short interruption per node when host routing changes",
        ),
    )
    finalize.actions.insert(1, RolloutRestart(target=cilium_ds))
    apply_policies = apply_policies_step(b, b.policies, enforced_now=False)
    phases.append(
        Phase(
            id="finalize-cilium",
            title="Cilium's final configuration",
            steps=[
                *([apply_policies] if apply_policies is not None else []),
                finalize,
                Step(
                    id="delete-migration-node-config",
                    title="Delete the migration CiliumNodeConfig and the node labels",
                    scope="cluster",
                    actions=[
                        DeleteObjects(objects=[cnc_ref]),
                        LabelNodes(nodes=nodes, labels={MIGRATION_LABEL: None}),
                    ],
                    success=[ObjectCheck(description="it is gone", target=cnc_ref, state="absent")],
                    rollback=Rollback(
                        description="re-create it and re-label the nodes",
                        actions=[
                            ApplyObjects(artifact=cnc_path, objects=[cnc]),
                            LabelNodes(nodes=nodes, labels={MIGRATION_LABEL: "true"}),
                        ],
                    ),
                ),
            ],
        )
    )

    removal = b.remove_old_cni_steps(inv, disruptive=False)
    removal.append(b.node_cleanup_step("clean-nodes", nodes, kube_proxy=False, disruptive=False))
    phases.append(Phase(id="remove-old-cni", title=f"Remove {r.old_cni}", steps=removal))

    bgp = bgp_plan(r)
    if bgp is not None:
        b.warnings.extend(bgp.warnings)
        phases.append(Phase(id="bgp", title="Routes over BGP", steps=[b.bgp_step(bgp, disruptive=True)]))

    if r.remove_kube_proxy:
        phases.append(Phase(id="kube-proxy-replacement", title="Per-node kube-proxy replacement", steps=kpr_steps(b)))

    phases.append(Phase(id="verify", title="Verify", steps=b.verify_steps(kpr=r.kpr, bgp=bgp)))
    return phases


def kpr_steps(b: Builder) -> list[Step]:
    r = b.r
    ds, cm = kube_proxy_objects(r)
    affinity_patch = {
        "spec": {
            "template": {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {"matchExpressions": [{"key": KPR_LABEL, "operator": "NotIn", "values": ["true"]}]}
                                ]
                            }
                        }
                    }
                }
            }
        }
    }
    cnc = node_config(
        b,
        CNC_KPR,
        KPR_LABEL,
        {
            "kube-proxy-replacement": str(kpr_value(r, True)).lower(),
            "kube-proxy-replacement-healthz-bind-address": "0.0.0.0:10256",
        },
    )
    cnc_path = b.manifest(
        "manifests/ciliumnodeconfig-kube-proxy-replacement.yaml", [cnc], "per-node kube-proxy replacement"
    )
    cnc_ref = ref(str(cnc["apiVersion"]), "CiliumNodeConfig", CNC_KPR, b.ns)
    steps: list[Step] = [
        Step(
            id="kpr-prepare",
            title="Keep kube-proxy off labelled nodes and give them kube-proxy replacement (CiliumNodeConfig)",
            scope="cluster",
            actions=[
                PatchObject(target=ds, patch_type="strategic", patch=affinity_patch),
                ApplyObjects(artifact=cnc_path, objects=[cnc]),
            ],
            preconditions=[
                FactCheck(
                    description="Cilium reaches the API server without kube-proxy (k8sServiceHost is set)",
                    fact="network.api_endpoint",
                    result="pass",
                    detail=f"{r.api_host}:{r.api_port}",
                )
            ],
            success=[ObjectCheck(description="the CiliumNodeConfig exists", target=cnc_ref)],
            rollback=Rollback(
                description="restore kube-proxy's DaemonSet from the backup and delete the CiliumNodeConfig",
                actions=[b.restore("kube-proxy", [ds]), DeleteObjects(objects=[cnc_ref])],
            ),
            relies_on=b.fr("kube_proxy.present", "network.api_endpoint"),
        )
    ]
    for i, batch in enumerate([*r.worker_batches, *r.control_plane_batches]):
        steps.append(kpr_batch_step(b, i, batch))
    ctx = release_lint_context(r, old_cni_present=False, kube_proxy_present=False)
    values = b.values(
        "values/30-kube-proxy-replacement.yaml", "kpr", "Cilium values with kube-proxy replacement everywhere", ctx
    )
    steps.append(
        b.helm_step(
            "kpr-global",
            "helm upgrade Cilium with kube-proxy replacement as the global setting",
            values,
            description="Every node already runs kube-proxy replacement through the CiliumNodeConfig.",
            first_install=False,
            kpr=True,
        )
    )
    steps.append(
        Step(
            id="kpr-cleanup",
            title="Delete kube-proxy (DaemonSet and ConfigMap), the CiliumNodeConfig and the node labels",
            scope="cluster",
            actions=[
                DeleteObjects(objects=[cnc_ref]),
                DeleteObjects(objects=[ds, cm]),
                LabelNodes(nodes=r.node_names, labels={KPR_LABEL: None}),
            ],
            success=[ObjectCheck(description=f"{o.text()} is gone", target=o, state="absent") for o in (ds, cm)],
            rollback=Rollback(
                description="re-create kube-proxy from the backup", actions=[b.restore("kube-proxy", [ds, cm])]
            ),
            relies_on=b.fr("kube_proxy.present"),
        )
    )
    return steps


__all__ = ["build_rolling", "old_cni_cleanup_commands"]
