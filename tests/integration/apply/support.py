"""Test support for the executor: an example cluster loaded into a real control plane, sandboxed node namespaces,
and object-set snapshots to compare a cluster before and after.

``load_example`` creates what the example snapshot holds (its Nodes as kwok nodes with the same names, labels,
taints, kernels and addresses; namespaces, CRDs, Calico resources, ConfigMaps, DaemonSets, Deployments, PDBs;
control-plane static pods as mirror pods), plus the objects the old CNI's manifests install that a snapshot does
not capture (ServiceAccounts, RBAC, Services: the ones the plan names), so the plan finds what a real cluster has.
Controllers and kwok then make the DaemonSet and Deployment pods, as on a real cluster.

``NodeSandbox`` gives every node a network namespace and its own copy-on-write /etc, /var and /run (overlayfs in a
private mount namespace), so the plan's root commands run for real without touching this machine.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cni_migrate.actions.nodes.transport import CommandResult, TransportError
from cni_migrate.analysis.plan.model import DeleteObjects, Plan
from cni_migrate.kube import NotFound
from cni_migrate.kube.client import Cluster
from cni_migrate.kube.rest import Rest
from cni_migrate_testbed import ControlPlane

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
CHART = ROOT / "tests" / "data" / "charts" / "cilium"
SERVER_META = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")

Obj = dict[str, Any]


def example_objects(name: str) -> list[Obj]:
    out: list[Obj] = []
    directory = EXAMPLES / name  # or an absolute path: a generated snapshot (bench/generate_cluster.py)
    for f in sorted([*directory.glob("*.yaml"), *directory.glob("*.json")]):
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc:
                continue
            items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
            out.extend(i for i in items or [] if i.get("kind") != "CniMigrateSnapshot")
    return out


def _clean(obj: Obj) -> Obj:
    o = json.loads(json.dumps(obj))
    o.pop("status", None)
    meta = o.setdefault("metadata", {})
    for k in SERVER_META:
        meta.pop(k, None)
    meta.pop("ownerReferences", None)
    return o


# Minimal bodies of kinds the manifests install that snapshots do not capture.
def _stub(ref_kind: str, api_version: str, name: str, namespace: str | None) -> Obj | None:
    meta: Obj = {"name": name, **({"namespace": namespace} if namespace else {})}
    if ref_kind in ("ServiceAccount", "ConfigMap"):
        return {"apiVersion": api_version, "kind": ref_kind, "metadata": meta}
    if ref_kind == "ClusterRole":
        return {
            "apiVersion": api_version,
            "kind": ref_kind,
            "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        }
    if ref_kind == "ClusterRoleBinding":
        return {
            "apiVersion": api_version,
            "kind": ref_kind,
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        }
    if ref_kind == "Service":
        return {
            "apiVersion": api_version,
            "kind": ref_kind,
            "metadata": meta,
            "spec": {"ports": [{"port": 5473, "name": "typha"}], "selector": {"k8s-app": name}},
        }
    if ref_kind == "PodDisruptionBudget":
        return {
            "apiVersion": api_version,
            "kind": ref_kind,
            "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"k8s-app": name}}},
        }
    return None


def load_example(cp: ControlPlane, name: str, plan: Plan | None = None) -> Cluster:
    objs = example_objects(name)
    cluster = Cluster.connect(str(cp.admin_kubeconfig))
    rest = cluster.rest()
    nodes = [o for o in objs if o["kind"] == "Node"]
    for n in nodes:
        meta, spec, status = n["metadata"], n.get("spec") or {}, n.get("status") or {}
        ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
        cp.create_fake_node(
            meta["name"],
            labels=meta.get("labels") or {},
            taints=[{k: v for k, v in t.items() if k in ("key", "value", "effect")} for t in spec.get("taints") or []],
            kernel_version=(status.get("nodeInfo") or {}).get("kernelVersion", "6.1.0"),
            internal_ip=ip,
            pod_cidr=spec.get("podCIDR"),
            pod_cidrs=spec.get("podCIDRs") or (),
            wait_ready=False,
        )
    order = ["Namespace", "CustomResourceDefinition"]
    rest_objs = [o for o in objs if o["kind"] not in ("Node", "Pod", "Secret")]
    rest_objs.sort(key=lambda o: order.index(o["kind"]) if o["kind"] in order else 9)
    for o in rest_objs:
        body = _clean(o)
        _ensure_kind(rest, body)
        rest.apply(body)
        if o["kind"] == "CustomResourceDefinition":
            _wait_established(rest, body["metadata"]["name"])
    present = {_key(o) for o in objs}
    if plan is not None:
        for s in plan.steps():
            for a in s.actions:
                if not isinstance(a, DeleteObjects):
                    continue
                for ref in a.objects:
                    body = _stub(ref.kind, ref.api_version, ref.name, ref.namespace)
                    k = f"{ref.group}/{ref.kind}/{ref.namespace or ''}/{ref.name}"
                    if body is not None and k not in present:
                        if ref.namespace and rest.get("v1", "Namespace", ref.namespace) is None:
                            rest.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ref.namespace}})
                        rest.apply(body)
                        present.add(k)
    # control-plane static pods, as the kubelet mirrors them (their commands carry the CIDR facts)
    for p in objs:
        if p["kind"] != "Pod":
            continue
        owners = (p.get("metadata") or {}).get("ownerReferences") or []
        if owners and not any(o.get("kind") == "Node" for o in owners):
            continue  # made by a controller here too
        body = _clean(p)
        body["metadata"].setdefault("annotations", {})["kubernetes.io/config.mirror"] = "cni-migrate-test"
        rest.create(body)
    cp.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    return cluster


def _ensure_kind(rest: Rest, obj: Obj) -> None:
    """A custom resource whose CRD the snapshot lacks (a generated one) gets a schemaless CRD of its kind."""
    api, kind = str(obj["apiVersion"]), str(obj["kind"])
    group = api.split("/", maxsplit=1)[0]
    if "/" not in api or group.endswith(".k8s.io") or "." not in group:
        return
    try:
        rest.resource(api, kind)
        return
    except NotFound:  # not served yet
        pass
    group, version = api.split("/")
    plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if obj["metadata"].get("namespace") else "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    rest.apply(crd)
    _wait_established(rest, crd["metadata"]["name"])


def _key(o: Obj) -> str:
    api = str(o.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    m = o.get("metadata") or {}
    return f"{group}/{o.get('kind')}/{m.get('namespace') or ''}/{m.get('name')}"


def _wait_established(rest: Rest, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = rest.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
        if any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        ):
            rest.forget()
            return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not established")


# --- object-set snapshots ----------------------------------------------------------------------------------

SNAPSHOT_KINDS = [
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "Node"),
]
IGNORED_NAMESPACES = {"kube-node-lease", "kube-public", "default"}


def _normal(o: Obj) -> Obj:
    """An object without what the server sets or what changes on its own (status, versions, timestamps)."""
    c = _clean(o)
    meta = c["metadata"]
    ann = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(
            (
                "deployment.kubernetes.io/",
                "kubectl.kubernetes.io/last-applied",
                "node.alpha",
                "kwok.x-k8s.io",
                "volumes.kubernetes.io",
                "meta.helm.sh",
            )
        )
    }
    meta["annotations"] = ann or None
    meta.pop("finalizers", None) if not meta.get("finalizers") else None
    if c["kind"] == "Node":
        return {
            "kind": "Node",
            "metadata": {"name": meta["name"], "labels": meta.get("labels")},
            "spec": {
                "unschedulable": (c.get("spec") or {}).get("unschedulable", False),
                "taints": (c.get("spec") or {}).get("taints"),
            },
        }
    tmeta = ((c.get("spec") or {}).get("template") or {}).get("metadata") or {}
    (tmeta.get("annotations") or {}).pop("kubectl.kubernetes.io/restartedAt", None)  # a timestamp per run
    if c["kind"] == "Service":
        spec = c.get("spec") or {}
        for k in (
            "clusterIP",
            "clusterIPs",
            "internalTrafficPolicy",
            "ipFamilies",
            "ipFamilyPolicy",
            "sessionAffinity",
        ):
            spec.pop(k, None)
    return c


def object_set(rest: Rest, kinds: Iterable[tuple[str, str]] = SNAPSHOT_KINDS) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for api, kind in kinds:
        try:
            items = rest.list(api, kind)
        except Exception:
            continue
        for o in items:
            ns = o["metadata"].get("namespace")
            name = o["metadata"]["name"]
            if ns in IGNORED_NAMESPACES or name.startswith(
                ("system:", "kubeadm:", "kube-root-ca", "extension-apiserver")
            ):
                continue
            if kind in ("ServiceAccount",) and name == "default":
                continue
            if kind in ("ClusterRole", "ClusterRoleBinding") and (
                name.startswith(("system:", "admin", "edit", "view", "cluster-admin"))
                or (o["metadata"].get("labels") or {}).get("kubernetes.io/bootstrapping")
            ):
                continue
            if kind == "Namespace" and name in ("kube-system",):
                continue
            if kind == "CustomResourceDefinition" and name.endswith((".cilium.io", ".cni-migrate.io")):
                # Cilium's CRDs outlive its release (its operator makes them), as on a real cluster; the
                # MigrationRun CRD holds the journal, which a rollback keeps as the record of what was done
                continue
            o.setdefault("apiVersion", api)
            o.setdefault("kind", kind)
            out[_key(o)] = _normal(o)
    return out


# --- node sandboxes ---------------------------------------------------------------------------------------


class NodeSandbox:
    """One network namespace and private /etc, /var, /run per node; a transport that runs scripts inside."""

    name = "local"

    def __init__(self, workdir: Path, nodes: Iterable[str], *, prefix: str = "cm") -> None:
        self.workdir = workdir
        self.netns: dict[str, str] = {}
        self.roots: dict[str, Path] = {}
        for i, node in enumerate(sorted(nodes)):
            ns = f"{prefix}{os.getpid() % 10000}-{i}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
            root = workdir / f"node-{i}"
            for d in ("etc", "var", "run"):
                (root / f"{d}-up").mkdir(parents=True, exist_ok=True)
                (root / f"{d}-work").mkdir(parents=True, exist_ok=True)
            self.netns[node] = ns
            self.roots[node] = root

    @classmethod
    def attach(cls, netns: dict[str, str], roots: dict[str, Path]) -> NodeSandbox:
        """The sandboxes another process created (the crash tests' child executors)."""
        self = cls.__new__(cls)
        self.workdir = next(iter(roots.values())).parent if roots else Path(".")
        self.netns = dict(netns)
        self.roots = dict(roots)
        return self

    def wrap(self, node: str, script: str) -> list[str]:
        root = self.roots[node]
        mounts = " && ".join(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={root}/{d}-up,workdir={root}/{d}-work /{d}"
            for d in ("etc", "var", "run")
        )
        inner = f"{mounts} && exec sh -c {shlex.quote(script)}"
        return [
            "ip",
            "netns",
            "exec",
            self.netns[node],
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            inner,
        ]

    def run(self, node: str, script: str, *, timeout: float) -> CommandResult:
        if node not in self.netns:
            raise TransportError(f"sandbox: no namespace for node {node}")
        try:
            p = subprocess.run(self.wrap(node, script), capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise TransportError(f"sandbox: node {node}: timed out") from e
        return CommandResult(node, p.returncode, p.stdout, p.stderr)

    def seed(self, node: str, script: str) -> None:
        r = self.run(node, script, timeout=30)
        assert r.ok, f"seeding {node}: {r.stderr}"

    def close(self) -> None:
        for ns in self.netns.values():
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def seed_flannel_like(sandbox: NodeSandbox, node: str, pod_cidr: str, vtep_index: int) -> None:
    """What Flannel (vxlan backend) leaves on a node: its CNI config, /run/flannel/subnet.env, the cni0 bridge,
    the flannel.1 VXLAN device, and its FLANNEL-* chains. (The node-agent tests run the real Flannel.)"""
    gw = pod_cidr.rsplit(".", 2)[0] + "." + pod_cidr.rsplit(".", 2)[1] + ".1/24"
    conf = json.dumps({"name": "cbr0", "cniVersion": "0.3.1", "plugins": [{"type": "flannel"}, {"type": "portmap"}]})
    sandbox.seed(
        node,
        f"""
mkdir -p /etc/cni/net.d /run/flannel /var/lib/cni/networks/cbr0
printf '%s' {shlex.quote(conf)} > /etc/cni/net.d/10-flannel.conflist
printf 'FLANNEL_NETWORK=10.243.0.0/16\\nFLANNEL_SUBNET={gw}\\nFLANNEL_MTU=1450\\n' > /run/flannel/subnet.env
ip link add cni0 type bridge && ip addr add {gw} dev cni0 && ip link set cni0 up
ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning local 127.0.0.{vtep_index + 2} dev lo
ip link set flannel.1 up
iptables -t nat -N FLANNEL-POSTRTG && iptables -t nat -A POSTROUTING -j FLANNEL-POSTRTG
iptables -N FLANNEL-FWD && iptables -A FORWARD -j FLANNEL-FWD
iptables -N HOST-OWN && iptables -A INPUT -j HOST-OWN && iptables -A HOST-OWN -p tcp --dport 22 -j ACCEPT
""",
    )


def seed_calico_like(sandbox: NodeSandbox, node: str, block: str, peer_block: str) -> None:
    """What calico-node (BGP, no encapsulation) leaves on a node, as its code writes it: the CNI config
    (10-calico.conflist), a workload veth cali<hash>, BIRD's routes (proto bird) to a peer's block and the
    blackhole route of its own block, and Felix's cali-* chains jumped to from the built-in ones. The node agent's
    tests (issue 12) check this state element by element; here it only has to be there to be cleaned."""
    conf = json.dumps({"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico"}]})
    sandbox.seed(
        node,
        f"""
mkdir -p /etc/cni/net.d /var/lib/calico
printf '%s' {shlex.quote(conf)} > /etc/cni/net.d/10-calico.conflist
echo {shlex.quote(node)} > /var/lib/calico/nodename
ip link add eth0 type bridge && ip addr add 192.0.2.10/24 dev eth0 && ip link set eth0 up
ip link add cali1a2b3c4d5e6 type veth peer name calipeer0 && ip link set cali1a2b3c4d5e6 up
ip route add blackhole {block} proto bird
ip route add {peer_block} via 192.0.2.20 dev eth0 proto bird
iptables -N cali-INPUT && iptables -A INPUT -j cali-INPUT
iptables -t nat -N cali-nat-outgoing && iptables -t nat -A POSTROUTING -j cali-nat-outgoing
iptables -N HOST-OWN && iptables -A INPUT -j HOST-OWN && iptables -A HOST-OWN -p tcp --dport 22 -j ACCEPT
""",
    )
