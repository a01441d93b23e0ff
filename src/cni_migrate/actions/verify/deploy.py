"""The probe DaemonSets and Service: manifests, pre-flight checks, creation, waiting, removal.

The pod probes run the project's own image (``python -m cni_migrate.actions.verify.prober serve``) as an
unprivileged user that satisfies the ``restricted`` Pod Security Standard, with no ServiceAccount token. The host
probes (node → pod) need ``hostNetwork`` and so a namespace whose PodSecurity level is ``privileged``: they run
only when asked for (``--node-probes``). Probes tolerate taints only where asked (``--tolerate``).

Only what this module created is ever deleted: every object carries ``app.kubernetes.io/managed-by:
cni-migrate-verify``, and an existing object without that label is never replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cni_migrate.actions.verify.agents import AgentInfo, CallbackChannel
from cni_migrate.actions.verify.prober import CONTROL_PORT, PROBE_PORT
from cni_migrate.analysis.verify import MatrixTargets, NodeAddress, Progress, classify_cni
from cni_migrate.kube import Forbidden, KubeError
from cni_migrate.kube import probes as api
from cni_migrate.kube.client import Cluster

Obj = dict[str, Any]
MANAGED_BY = "cni-migrate-verify"
HOST_PROBE_PORT = PROBE_PORT + 2
HOST_CONTROL_PORT = CONTROL_PORT + 2
PSA = "pod-security.kubernetes.io/enforce"


class VerifyInputError(Exception):
    """Bad input or a cluster that refuses the probes (PodSecurity, existing objects): exit code 2."""


@dataclass(frozen=True)
class ProbeConfig:
    namespace: str = "cni-migrate-verify"
    image: str = "cni-migrate:0.1.0"
    name: str = "cni-migrate-probe"
    node_probes: bool = False
    #: Taint keys to tolerate (any effect); "*" tolerates every taint.
    tolerate: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    image_pull_policy: str = "IfNotPresent"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/managed-by": MANAGED_BY}


def _tolerations(cfg: ProbeConfig) -> list[Obj]:
    if "*" in cfg.tolerate:
        return [{"operator": "Exists"}]
    return [{"key": k, "operator": "Exists"} for k in cfg.tolerate]


def _pod_template(cfg: ProbeConfig, role: str) -> Obj:
    host = role == "node"
    probe_port, control_port = (HOST_PROBE_PORT, HOST_CONTROL_PORT) if host else (PROBE_PORT, CONTROL_PORT)
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    container: Obj = {
        "name": "prober",
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "command": [
            "python",
            "-m",
            "cni_migrate.actions.verify.prober",
            "serve",
            "--probe-port",
            str(probe_port),
            "--control",
            f"0.0.0.0:{control_port}",
        ],
        "env": env,
        "ports": [
            {"name": "probe", "containerPort": probe_port, "protocol": "TCP"},
            {"name": "control", "containerPort": control_port, "protocol": "TCP"},
        ],
        "readinessProbe": {"tcpSocket": {"port": control_port}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
        "tolerations": _tolerations(cfg),
    }
    if host:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if cfg.node_selector:
        spec["nodeSelector"] = dict(cfg.node_selector)
    if cfg.nodes:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": list(cfg.nodes)}]}
                    ]
                }
            }
        }
    return {"metadata": {"labels": {**cfg.labels, "cni-migrate.io/probe-role": role}}, "spec": spec}


def manifests(cfg: ProbeConfig) -> list[Obj]:
    """The DaemonSet(s) and the Service (NodePort: a ClusterIP and a NodePort on every node)."""
    out: list[Obj] = []
    for role in ("pod", "node") if cfg.node_probes else ("pod",):
        name = cfg.name if role == "pod" else f"{cfg.name}-host"
        selector = {**cfg.labels, "cni-migrate.io/probe-role": role}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": name, "namespace": cfg.namespace, "labels": cfg.labels},
                "spec": {
                    "selector": {"matchLabels": selector},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
                    "template": _pod_template(cfg, role),
                },
            }
        )
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": cfg.labels},
            "spec": {
                "type": "NodePort",
                "selector": {**cfg.labels, "cni-migrate.io/probe-role": "pod"},
                "ports": [{"name": "probe", "port": PROBE_PORT, "targetPort": PROBE_PORT, "protocol": "TCP"}],
            },
        }
    )
    return out


def namespace_manifest(cfg: ProbeConfig) -> Obj:
    level = "privileged" if cfg.node_probes else "restricted"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": cfg.namespace, "labels": {**cfg.labels, PSA: level}},
    }


# ---------------------------------------------------------------------------------------------------------------


# What the DaemonSet controller tolerates on every DaemonSet pod (so cordoned nodes, the ones being migrated, keep
# their probe); a node that is not ready (yet) is left to the wait for ready pods, which names it if it stays so.
DAEMONSET_TOLERATED = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    }
)


def _tolerated(taint: Obj, cfg: ProbeConfig) -> bool:
    key = taint.get("key")
    return "*" in cfg.tolerate or key in cfg.tolerate or key in DAEMONSET_TOLERATED


def _internal_ip(node: Obj) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return str(a.get("address") or "")
    return ""


@dataclass
class NodePlan:
    probed: list[Obj]
    #: node -> why it gets no probe
    skipped: dict[str, str]


def select_nodes(nodes: Sequence[Obj], cfg: ProbeConfig) -> NodePlan:
    """Which nodes get a probe pod; unknown ``--nodes`` are bad input, untolerated taints are reported."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    missing = [n for n in cfg.nodes if n not in by_name]
    if missing:
        raise VerifyInputError(f"--nodes: no such node(s): {', '.join(missing)}")
    chosen = [by_name[n] for n in cfg.nodes] if cfg.nodes else list(nodes)
    if cfg.node_selector:
        sel = dict(cfg.node_selector)
        chosen = [n for n in chosen if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
    probed, skipped = [], {}
    for n in chosen:
        name = n["metadata"]["name"]
        blocking = [
            t
            for t in (n.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(t, cfg)
        ]
        if blocking:
            shown = ", ".join(
                f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}" for t in blocking
            )
            keys = ",".join(sorted({str(t.get("key")) for t in blocking}))
            skipped[name] = f"tainted {shown}: no probe pod (pass --tolerate {keys} to probe it anyway)"
        else:
            probed.append(n)
    if not probed:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())[:3])
        raise VerifyInputError(f"no node to probe ({why or 'no nodes match --nodes/--node-selector'})")
    return NodePlan(probed, skipped)


@dataclass
class Deployment:
    cfg: ProbeConfig
    created_namespace: bool
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    nodes: NodePlan | None = None
    pods: list[Obj] = field(default_factory=list)
    service: Obj | None = None


def preflight(cluster: Cluster, cfg: ProbeConfig) -> tuple[NodePlan, bool]:
    """Nodes to probe, and whether the namespace must be created. Raises VerifyInputError for what the cluster
    would refuse: a namespace whose PodSecurity level forbids the probes, objects of the same name not ours."""
    plan = select_nodes(api.list_nodes(cluster), cfg)
    ns = api.get_namespace(cluster, cfg.namespace)
    if ns is None:
        return plan, True
    labels = (ns.get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA, "")
    for m in manifests(cfg):
        existing = api.get_object(cluster, m["kind"], m["metadata"]["name"], cfg.namespace)
        if existing is not None:
            owner = ((existing.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by")
            if owner != MANAGED_BY:
                raise VerifyInputError(
                    f"namespace {cfg.namespace}: {m['kind']} {m['metadata']['name']} exists and was not created by "
                    "cni-migrate verify; choose another --namespace"
                )
    # The server decides: a dry-run Pod of each template goes through PodSecurity admission without being stored.
    for m in manifests(cfg):
        if m["kind"] != "DaemonSet":
            continue
        template = m["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{m['metadata']['name']}-dry-run",
                "namespace": cfg.namespace,
                "labels": template["metadata"]["labels"],
            },
            "spec": {**template["spec"], "nodeName": plan.probed[0]["metadata"]["name"]},
        }
        try:
            api.create_object(cluster, pod, dry_run=True)
        except Forbidden as e:
            if "PodSecurity" not in str(e) and "violates" not in str(e):
                raise
            role = "host-network probes (--node-probes)" if template["spec"].get("hostNetwork") else "probe pods"
            raise VerifyInputError(
                f"namespace {cfg.namespace}: its PodSecurity level ({PSA}={level or 'cluster default'}) forbids the "
                f"{role}: {_psa_reason(str(e))}. Use a namespace labelled {PSA}="
                f"{'privileged' if template['spec'].get('hostNetwork') else 'restricted or weaker'}, "
                "or let the tool create its own (--namespace with a name that does not exist)"
            ) from e
    return plan, False


def _psa_reason(message: str) -> str:
    _, _, tail = message.partition("violates PodSecurity")
    return ("violates PodSecurity" + tail).rstrip(")").strip() if tail else message


def deploy(
    cluster: Cluster,
    cfg: ProbeConfig,
    *,
    timeout: float = 180.0,
    say: Callable[[str], None] = lambda _m: None,
) -> Deployment:
    """Create the probes and wait until every probed node has a ready probe pod. On failure everything created so
    far is removed again before the error propagates."""
    plan, create_ns = preflight(cluster, cfg)
    dep = Deployment(cfg, created_namespace=create_ns, nodes=plan)
    try:
        if create_ns:
            api.create_object(cluster, namespace_manifest(cfg))
            dep.created.append(("Namespace", cfg.namespace))
        for m in manifests(cfg):
            if api.get_object(cluster, m["kind"], m["metadata"]["name"], cfg.namespace) is not None:
                api.delete_object(cluster, m["kind"], m["metadata"]["name"], cfg.namespace)  # ours, left over
                _wait_gone(cluster, m["kind"], m["metadata"]["name"], cfg.namespace, timeout=60.0)
            api.create_object(cluster, m)
            dep.created.append((m["kind"], m["metadata"]["name"]))
        say(f"created {', '.join(f'{k} {n}' for k, n in dep.created)} in namespace {cfg.namespace}")
        dep.pods = wait_ready(cluster, cfg, [n["metadata"]["name"] for n in plan.probed], timeout=timeout)
        dep.service = api.get_object(cluster, "Service", cfg.name, cfg.namespace)
    except BaseException:
        teardown(cluster, dep)
        raise
    return dep


def _wait_gone(cluster: Cluster, kind: str, name: str, namespace: str | None, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while api.get_object(cluster, kind, name, namespace) is not None:
        if time.monotonic() > deadline:
            raise KubeError(f"{kind} {name} still present {timeout:.0f} s after deletion")
        time.sleep(0.5)


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def wait_ready(cluster: Cluster, cfg: ProbeConfig, nodes: Sequence[str], *, timeout: float) -> list[Obj]:
    """The probe pods, once every role has a ready pod on every node in ``nodes``."""
    roles = ("pod", "node") if cfg.node_probes else ("pod",)
    deadline = time.monotonic() + timeout
    while True:
        pods = api.list_pods(cluster, namespace=cfg.namespace, labels=cfg.labels)
        ready = {
            (p["metadata"]["labels"].get("cni-migrate.io/probe-role"), p["spec"].get("nodeName")): p
            for p in pods
            if _ready(p)
        }
        missing = [(r, n) for r in roles for n in nodes if (r, n) not in ready]
        if not missing:
            return [ready[(r, n)] for r in roles for n in nodes]
        if time.monotonic() > deadline:
            shown = ", ".join(f"{n} ({r})" for r, n in missing[:5])
            raise KubeError(
                f"probe pods not ready after {timeout:.0f} s on {len(missing)} node(s): {shown}"
                f"{' ...' if len(missing) > 5 else ''} (kubectl -n {cfg.namespace} get pods,events)"
            )
        time.sleep(1.0)


def teardown(cluster: Cluster, dep: Deployment, *, wait: bool = True, timeout: float = 120.0) -> None:
    """Delete what :func:`deploy` created (the namespace, when it made it, takes everything with it)."""
    cfg = dep.cfg
    for kind, name in reversed(dep.created):
        if kind == "Namespace":
            continue
        api.delete_object(cluster, kind, name, cfg.namespace)
    if dep.created_namespace and ("Namespace", cfg.namespace) in dep.created:
        api.delete_object(cluster, "Namespace", cfg.namespace)
    if wait:
        deadline = time.monotonic() + timeout
        while api.list_pods(cluster, namespace=cfg.namespace, labels=cfg.labels):
            if time.monotonic() > deadline:
                raise KubeError(f"probe pods in {cfg.namespace} still present {timeout:.0f} s after deletion")
            time.sleep(0.5)
    dep.created.clear()


# ---------------------------------------------------------------------------------------------------------------


def agents(
    cluster: Cluster, dep: Deployment, cilium_cidrs: Sequence[str] = (), old_cni: str = "old-cni"
) -> list[AgentInfo]:
    """The probers of a deployment, reached through the API server's pod proxy."""
    out = []
    for p in dep.pods:
        role = p["metadata"]["labels"].get("cni-migrate.io/probe-role", "pod")
        name, ns = p["metadata"]["name"], p["metadata"]["namespace"]
        port, control = (HOST_PROBE_PORT, HOST_CONTROL_PORT) if role == "node" else (PROBE_PORT, CONTROL_PORT)
        ip = p["status"]["podIP"]

        def call(
            method: str, path: str, body: Obj | None, timeout: float, _n: str = name, _c: int = control, _ns: str = ns
        ) -> Obj:
            return api.pod_proxy(cluster, _ns, _n, _c, method, path, body, timeout)

        cni = classify_cni(ip, cilium_cidrs, old_cni) if role == "pod" and cilium_cidrs else ""
        out.append(
            AgentInfo(
                name,
                p["spec"]["nodeName"],
                ip,
                port,
                CallbackChannel(call, f"pod {ns}/{name}"),
                "node" if role == "node" else "pod",
                cni,
            )
        )
    return out


def matrix_targets(cluster: Cluster, dep: Deployment) -> MatrixTargets:
    svc = dep.service or {}
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or [{}]
    cluster_ip = spec.get("clusterIP")
    node_port = ports[0].get("nodePort")
    nodes = tuple(NodeAddress(n["metadata"]["name"], _internal_ip(n)) for n in (dep.nodes.probed if dep.nodes else []))
    return MatrixTargets(
        service=(str(cluster_ip), PROBE_PORT) if cluster_ip else None,
        node_port=int(node_port) if node_port else None,
        nodes=tuple(n for n in nodes if n.ip),
        apiserver=api.kubernetes_service(cluster),
        dns_names=("kubernetes.default.svc", f"{dep.cfg.name}.{dep.cfg.namespace}.svc"),
    )


DONE_LABEL = "io.cilium.migration/cilium-default=true"


def migration_progress(cluster: Cluster, cilium_cidrs: Sequence[str], *, done_label: str = DONE_LABEL) -> Progress:
    """Pods on Cilium (pod network, running, address in Cilium's pod CIDRs) of all such pods; nodes done: nodes
    carrying ``done_label`` (the label of Cilium's per-node migration) when any node carries its key, else nodes
    whose every pod-network pod is on Cilium."""
    key, _, value = done_label.partition("=")
    nodes = api.list_nodes(cluster)
    pods = [
        p
        for p in api.list_pods(cluster)
        if not (p.get("spec") or {}).get("hostNetwork")
        and (p.get("status") or {}).get("phase") == "Running"
        and (p.get("status") or {}).get("podIP")
    ]
    on_cilium = {id(p) for p in pods if classify_cni(p["status"]["podIP"], cilium_cidrs) == "cilium"}
    labelled = [n for n in nodes if key in (n["metadata"].get("labels") or {})]
    if labelled:
        done = sum(1 for n in labelled if (n["metadata"]["labels"].get(key) == value or not value))
    else:
        per_node: dict[str, list[bool]] = {}
        for p in pods:
            per_node.setdefault(str(p["spec"].get("nodeName")), []).append(id(p) in on_cilium)
        done = sum(1 for flags in per_node.values() if flags and all(flags))
    return Progress(pods_on_cilium=len(on_cilium), pods_total=len(pods), nodes_done=done, nodes_total=len(nodes))


def cilium_pod_cidrs(cluster: Cluster) -> list[str]:
    """Cilium's cluster-pool pod CIDRs as configured in the cluster (empty when unknown)."""
    return api.cilium_pod_cidrs(cluster)
