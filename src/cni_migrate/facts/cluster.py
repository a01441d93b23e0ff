"""Cluster-wide facts: nodes, kube-proxy, address ranges, API endpoint, PDBs, workloads, policies, Istio."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cni_migrate.facts.model import (
    ApiEndpoint,
    CniFacts,
    Fact,
    HelmReleaseFacts,
    IstioFacts,
    KubeProxyFacts,
    NetworkFacts,
    NodeFacts,
    PDBFacts,
    PolicyFacts,
    Taint,
    WorkloadFacts,
)
from cni_migrate.facts.objects import (
    CILIUM_CLUSTERWIDE_NETWORK_POLICY,
    CILIUM_NETWORK_POLICY,
    CONFIGMAP,
    CRD,
    DAEMONSET,
    DEPLOYMENT,
    MUTATING_WEBHOOK,
    NAMESPACE,
    NETWORK_POLICY,
    NODE,
    PDB,
    POD,
    SECRET,
    KindRef,
    Obj,
    ObjectStore,
    calico,
    dig,
    meta,
    name_of,
    namespace_of,
    ref_text,
)
from cni_migrate.facts.podspec import args_of, containers, flag, image_tag
from cni_migrate.facts.validate import (
    KUBE_PROXY_CONFIG,
    KUBEADM_CLUSTER_CONFIGURATION,
    FactInputError,
    check_embedded,
    cidr_list,
    int_value,
    port_value,
)
from cni_migrate.yamlsafe import YamlInputError, load_one

CNI_ANNOTATION_PREFIXES = (
    "projectcalico.org/",
    "flannel.alpha.coreos.com/",
    "network.cilium.io/",
    "io.cilium",
)


def _missing_kind(ref: KindRef) -> str:
    return f"the input has no {ref.kind} objects"


# --- Nodes and pods -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodStats:
    """Everything the facts need from Pods, gathered in one pass (snapshots hold 100,000s of them)."""

    total: int
    per_node: Counter[str]
    host_network_per_node: Counter[str]
    host_network: int
    not_running: int

    @classmethod
    def of(cls, store: ObjectStore) -> PodStats:
        pods = store.of(POD)
        specs = [p.get("spec") or {} for p in pods]
        # Counter's C counting loop; unscheduled pods (no nodeName) count under "" and are dropped.
        per_node: Counter[str] = Counter(str(s.get("nodeName") or "") for s in specs)
        per_node.pop("", None)
        host_specs = [s for s in specs if s.get("hostNetwork")]
        host_per_node: Counter[str] = Counter(str(s.get("nodeName") or "") for s in host_specs)
        host_per_node.pop("", None)
        running = Counter((p.get("status") or {}).get("phase") for p in pods)
        return cls(
            total=len(pods),
            per_node=per_node,
            host_network_per_node=host_per_node,
            host_network=len(host_specs),
            not_running=len(pods) - running["Running"] - running["Succeeded"],
        )


def _str_or_none(v: Any) -> str | None:
    return str(v) if v else None


def node_facts(store: ObjectStore, stats: PodStats) -> list[NodeFacts]:
    pods_per_node = stats.per_node
    host_pods_per_node = stats.host_network_per_node
    nodes = []
    for n in store.of(NODE):
        md = meta(n)
        labels = {str(k): str(v) for k, v in (md.get("labels") or {}).items()}
        roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
        spec = n.get("spec") or {}
        status = n.get("status") or {}
        info = status.get("nodeInfo") or {}
        ready = next(
            (c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"),
            None,
        )
        name = str(md.get("name", ""))
        # model_construct: every field is built and typed right here, so pydantic's validation (the bulk of the
        # cost on 5,000 nodes) would only repeat it.
        nodes.append(
            NodeFacts.model_construct(
                name=name,
                roles=roles,
                control_plane="control-plane" in roles or "master" in roles,
                labels=labels,
                taints=[
                    Taint.model_construct(
                        key=str(t.get("key")),
                        value=str(t["value"]) if t.get("value") is not None else None,
                        effect=str(t.get("effect")),
                    )
                    for t in spec.get("taints") or []
                ],
                internal_ips=[
                    str(a.get("address")) for a in status.get("addresses") or [] if a.get("type") == "InternalIP"
                ],
                kernel_version=_str_or_none(info.get("kernelVersion")),
                os_image=_str_or_none(info.get("osImage")),
                container_runtime=_str_or_none(info.get("containerRuntimeVersion")),
                kubelet_version=_str_or_none(info.get("kubeletVersion")),
                pod_cidr=_str_or_none(spec.get("podCIDR")),
                pod_cidrs=[str(c) for c in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])],
                unschedulable=bool(spec.get("unschedulable", False)),
                ready=ready,
                cni_annotations={
                    str(k): str(v)
                    for k, v in (md.get("annotations") or {}).items()
                    if str(k).startswith(CNI_ANNOTATION_PREFIXES)
                },
                pods=pods_per_node[name],
                host_network_pods=host_pods_per_node[name],
            )
        )
    return sorted(nodes, key=lambda x: x.name)


def workload_facts(store: ObjectStore, stats: PodStats) -> WorkloadFacts:
    if not store.has_listed(POD):
        why = _missing_kind(POD)
        return WorkloadFacts(
            pods=Fact.missing(why), host_network_pods=Fact.missing(why), pods_not_running=Fact.missing(why)
        )
    return WorkloadFacts(
        pods=Fact.of(stats.total, "Pod objects"),
        host_network_pods=Fact.of(stats.host_network, "Pod objects with spec.hostNetwork"),
        pods_not_running=Fact.of(stats.not_running, "Pod objects whose status.phase is not Running or Succeeded"),
    )


# --- kubeadm and static pods --------------------------------------------------------------------------------


def _kubeadm_cluster_config(store: ObjectStore) -> tuple[dict[str, Any] | None, str]:
    cm = store.get(CONFIGMAP, "kube-system", "kubeadm-config")
    if cm is None:
        return None, ""
    raw = dig(cm, "data", "ClusterConfiguration")
    if not isinstance(raw, str):
        return None, ""
    try:
        doc = load_one(raw)
    except YamlInputError as e:
        raise FactInputError(cm, "data.ClusterConfiguration", f"a kubeadm ClusterConfiguration ({e})", raw) from e
    check_embedded(doc, KUBEADM_CLUSTER_CONFIGURATION, cm, "data.ClusterConfiguration")
    return (doc if isinstance(doc, dict) else None), f"{ref_text(cm)} ClusterConfiguration"


def _static_pod_args(store: ObjectStore, component: str) -> tuple[list[str], str, Obj | None]:
    for p in store.in_namespace(POD, "kube-system"):
        labels = meta(p).get("labels") or {}
        if labels.get("component") == component or name_of(p).startswith(component + "-"):
            for c in containers(p):
                if c.get("name") == component:
                    return args_of(c), f"{ref_text(p)} command", p
    return [], "", None


def kubernetes_version(store: ObjectStore) -> Fact[str]:
    if store.server_version:
        return Fact.of(store.server_version, "API server /version")
    cfg, src = _kubeadm_cluster_config(store)
    if cfg and cfg.get("kubernetesVersion"):
        return Fact.of(str(cfg["kubernetesVersion"]), f"{src} kubernetesVersion")
    _, src, pod = _static_pod_args(store, "kube-apiserver")
    if pod is not None:
        tag = image_tag(next((c.get("image") for c in containers(pod)), None))
        if tag:
            return Fact.of(tag, f"image of {ref_text(pod)}")
    kubelets = sorted({str(dig(n, "status", "nodeInfo", "kubeletVersion")) for n in store.of(NODE)} - {"None"})
    if len(kubelets) == 1:
        return Fact.of(kubelets[0], "kubeletVersion of every node (no API server version in the input)")
    return Fact.missing(
        "no API server version, kubeadm-config or kube-apiserver pod in the input"
        + (f"; nodes run kubelets {', '.join(kubelets)}" if kubelets else "")
    )


def kube_proxy_facts(store: ObjectStore) -> KubeProxyFacts:
    ds = next((d for d in store.of(DAEMONSET) if name_of(d) == "kube-proxy"), None)
    cm = store.get(CONFIGMAP, "kube-system", "kube-proxy")
    present: Fact[bool]
    if ds is not None:
        present = Fact.of(True, ref_text(ds))
    elif store.has_listed(DAEMONSET):
        present = Fact.of(False, "no kube-proxy DaemonSet among the DaemonSets")
    else:
        present = Fact.missing(_missing_kind(DAEMONSET))
    config: dict[str, Any] | None = None
    src = ""
    if cm is not None:
        raw = dig(cm, "data", "config.conf")
        if isinstance(raw, str):
            try:
                loaded = load_one(raw)
            except YamlInputError as e:
                raise FactInputError(cm, "data.config.conf", f"a KubeProxyConfiguration ({e})", raw) from e
            check_embedded(loaded, KUBE_PROXY_CONFIG, cm, "data.config.conf")
            config = loaded if isinstance(loaded, dict) else None
            src = f"{ref_text(cm)} config.conf"
    args = args_of(next(containers(ds), {})) if ds else []
    mode: Fact[str]
    if config is not None:
        m = str(config.get("mode") or "")
        mode = Fact.of(m or "iptables", src + ("" if m else " (mode empty: iptables, kube-proxy's default)"))
    elif flag(args, "proxy-mode"):
        mode = Fact.of(str(flag(args, "proxy-mode")), f"{ref_text(ds or {})} --proxy-mode")
    elif ds is None and present.known:
        mode = Fact.missing("kube-proxy is not installed")
    else:
        mode = Fact.missing("ConfigMap kube-system/kube-proxy (config.conf) not in the input")
    cluster_cidr: Fact[str]
    if config is not None and config.get("clusterCIDR"):
        cluster_cidr = Fact.of(str(config["clusterCIDR"]), src)
    elif flag(args, "cluster-cidr"):
        cluster_cidr = Fact.of(str(flag(args, "cluster-cidr")), f"{ref_text(ds or {})} --cluster-cidr")
    else:
        cluster_cidr = Fact.missing("kube-proxy's clusterCIDR is not set or its ConfigMap is not in the input")
    return KubeProxyFacts(
        present=present,
        mode=mode,
        cluster_cidr=cluster_cidr,
        daemonset=f"{namespace_of(ds)}/{name_of(ds)}" if ds else None,
        configmap=f"{namespace_of(cm)}/{name_of(cm)}" if cm else None,
    )


def _cidr_sort_key(cidr: str) -> tuple[int, int, int]:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return (9, 0, 0)
    return (net.version, int(net.network_address), net.prefixlen)


def _split(v: str) -> list[str]:
    return [x.strip() for x in v.split(",") if x.strip()]


def network_facts(store: ObjectStore, cni: CniFacts) -> NetworkFacts:
    cfg, cfg_src = _kubeadm_cluster_config(store)
    networking = (cfg or {}).get("networking") or {}
    api_args, api_src, api_pod = _static_pod_args(store, "kube-apiserver")
    kcm_args, kcm_src, _ = _static_pod_args(store, "kube-controller-manager")
    no_cp = "no kubeadm-config ConfigMap or kube-apiserver/kube-controller-manager static pods in the input"

    cfg_cm = store.get(CONFIGMAP, "kube-system", "kubeadm-config")
    kcm_pod = _static_pod_args(store, "kube-controller-manager")[2]

    def cidrs(raw: Any, obj: Obj | None, field: str) -> list[str]:
        return cidr_list(_split(str(raw)), obj, field)

    service: Fact[list[str]]
    if flag(api_args, "service-cluster-ip-range"):
        service = Fact.of(
            cidrs(flag(api_args, "service-cluster-ip-range"), api_pod, "command --service-cluster-ip-range"),
            f"{api_src} --service-cluster-ip-range",
        )
    elif networking.get("serviceSubnet"):
        service = Fact.of(
            cidrs(networking["serviceSubnet"], cfg_cm, "data.ClusterConfiguration networking.serviceSubnet"),
            f"{cfg_src} networking.serviceSubnet",
        )
    elif flag(kcm_args, "service-cluster-ip-range"):
        service = Fact.of(
            cidrs(flag(kcm_args, "service-cluster-ip-range"), kcm_pod, "command --service-cluster-ip-range"),
            f"{kcm_src} --service-cluster-ip-range",
        )
    else:
        service = Fact.missing(no_cp)

    pods: Fact[list[str]]
    if flag(kcm_args, "cluster-cidr"):
        pods = Fact.of(
            cidrs(flag(kcm_args, "cluster-cidr"), kcm_pod, "command --cluster-cidr"), f"{kcm_src} --cluster-cidr"
        )
    elif networking.get("podSubnet"):
        pods = Fact.of(
            cidrs(networking["podSubnet"], cfg_cm, "data.ClusterConfiguration networking.podSubnet"),
            f"{cfg_src} networking.podSubnet",
        )
    elif cni.flannel and cni.flannel.network.known and cni.flannel.network.value:
        pods = Fact.of([cni.flannel.network.value], str(cni.flannel.network.source))
    elif cni.calico and cni.calico.ip_pools.value:
        pods = Fact.of(
            sorted((p.cidr for p in cni.calico.ip_pools.value if not p.disabled), key=_cidr_sort_key),
            f"enabled Calico IPPools (no kubeadm podSubnet; {cni.calico.ip_pools.source})",
        )
    else:
        pods = Fact.missing(no_cp + ", and no CNI pool configuration")

    mask: Fact[int]
    if flag(kcm_args, "node-cidr-mask-size"):
        size = int_value(
            flag(kcm_args, "node-cidr-mask-size"), kcm_pod, "command --node-cidr-mask-size", low=1, high=128
        )
        mask = Fact.of(size, f"{kcm_src} --node-cidr-mask-size")
    elif kcm_args:
        mask = Fact.of(24, f"{kcm_src} (--node-cidr-mask-size unset: default 24 for IPv4)")
    else:
        mask = Fact.missing("no kube-controller-manager static pod in the input")

    allocate: Fact[bool]
    if kcm_args:
        allocate = Fact.of(flag(kcm_args, "allocate-node-cidrs") == "true", f"{kcm_src} --allocate-node-cidrs")
    else:
        allocate = Fact.missing("no kube-controller-manager static pod in the input")

    lb: Fact[list[str]]
    if cni.calico and cni.calico.bgp.known and cni.calico.bgp.value:
        lb = Fact.of(
            list(cni.calico.bgp.value.service_load_balancer_ips),
            f"{cni.calico.bgp.source} serviceLoadBalancerIPs",
        )
    else:
        lb = Fact.missing("no Calico BGPConfiguration with serviceLoadBalancerIPs in the input")

    endpoint: Fact[ApiEndpoint]
    cpe = str(cfg.get("controlPlaneEndpoint") or "") if cfg else ""
    if cpe:
        host, _, port = cpe.rpartition(":") if re.search(r":\d+$", cpe) else (cpe, "", "6443")
        api_port = port_value(port, cfg_cm, "data.ClusterConfiguration controlPlaneEndpoint (port)")
        endpoint = Fact.of(ApiEndpoint(host=host.strip("[]"), port=api_port), f"{cfg_src} controlPlaneEndpoint")
    elif flag(api_args, "advertise-address"):
        endpoint = Fact.of(
            ApiEndpoint(
                host=str(flag(api_args, "advertise-address")),
                port=port_value(flag(api_args, "secure-port") or 6443, api_pod, "command --secure-port"),
            ),
            f"{api_src} --advertise-address/--secure-port",
        )
    elif api_pod is not None and (meta(api_pod).get("annotations") or {}).get(
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
    ):
        raw = str(meta(api_pod)["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"])
        host, _, port = raw.rpartition(":")
        field = "metadata.annotations.kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint (port)"
        ann_port = port_value(port, api_pod, field)
        endpoint = Fact.of(ApiEndpoint(host=host, port=ann_port), f"{ref_text(api_pod)} advertise-address annotation")
    else:
        endpoint = Fact.missing("no controlPlaneEndpoint in kubeadm-config and no kube-apiserver pod in the input")
    return NetworkFacts(
        service_cidrs=service,
        pod_cidrs=pods,
        node_cidr_mask_size=mask,
        allocate_node_cidrs=allocate,
        load_balancer_cidrs=lb,
        api_endpoint=endpoint,
    )


# --- PDBs, policies, Istio, Helm ----------------------------------------------------------------------------


def pdb_facts(store: ObjectStore) -> Fact[list[PDBFacts]]:
    if not store.has_listed(PDB):
        return Fact.missing(_missing_kind(PDB))
    out = []
    for p in store.of(PDB):
        allowed = dig(p, "status", "disruptionsAllowed")
        expected = dig(p, "status", "expectedPods")
        out.append(
            PDBFacts(
                namespace=namespace_of(p),
                name=name_of(p),
                disruptions_allowed=int(allowed) if allowed is not None else None,
                blocks_eviction=allowed is not None and int(allowed) == 0 and (expected is None or int(expected) > 0),
            )
        )
    return Fact.of(sorted(out, key=lambda x: (x.namespace, x.name)), "PodDisruptionBudget objects and their status")


def _count(store: ObjectStore, *refs: KindRef) -> Fact[int]:
    if not store.has_listed(*refs) and not any(
        name_of(c).split(".", 1)[1] == refs[0].group for c in store.of(CRD) if "." in name_of(c)
    ):
        if store.has_listed(CRD):
            return Fact.of(0, f"no CustomResourceDefinition for {refs[0]}")
        return Fact.missing(_missing_kind(refs[0]))
    return Fact.of(len(store.of(*refs)), f"{refs[0].kind} objects")


def policy_facts(store: ObjectStore) -> PolicyFacts:
    k8s: Fact[int] = (
        Fact.of(len(store.of(NETWORK_POLICY)), "NetworkPolicy objects")
        if store.has_listed(NETWORK_POLICY)
        else Fact.missing(_missing_kind(NETWORK_POLICY))
    )
    return PolicyFacts(
        kubernetes_network_policies=k8s,
        calico_network_policies=_count(store, *calico("NetworkPolicy")),
        calico_global_network_policies=_count(store, *calico("GlobalNetworkPolicy")),
        cilium_network_policies=_count(store, CILIUM_NETWORK_POLICY, CILIUM_CLUSTERWIDE_NETWORK_POLICY),
    )


def istio_facts(store: ObjectStore) -> IstioFacts:
    evidence: list[str] = []
    if any(name_of(n) == "istio-system" for n in store.of(NAMESPACE)):
        evidence.append("Namespace istio-system")
    crds = [name_of(c) for c in store.of(CRD) if name_of(c).endswith(".istio.io")]
    if crds:
        evidence.append(f"{len(crds)} istio.io CRDs")
    for d in store.of(DEPLOYMENT):
        if name_of(d) == "istiod":
            evidence.append(ref_text(d))
    for d in store.of(DAEMONSET):
        if name_of(d) in ("ztunnel", "istio-cni-node"):
            evidence.append(ref_text(d))
    for w in store.of(MUTATING_WEBHOOK):
        if "istio" in name_of(w):
            evidence.append(ref_text(w))
    injected = [
        name_of(n) for n in store.of(NAMESPACE) if (meta(n).get("labels") or {}).get("istio-injection") == "enabled"
    ]
    if injected:
        evidence.append(f"namespaces with istio-injection=enabled: {', '.join(sorted(injected))}")
    if evidence:
        return IstioFacts(present=Fact.of(True, "; ".join(evidence)), evidence=evidence)
    looked = [r for r in (NAMESPACE, CRD, DEPLOYMENT) if store.has_listed(r)]
    if looked:
        return IstioFacts(
            present=Fact.of(
                False,
                "no Istio namespace, CRDs, istiod or ztunnel in the " + ", ".join(r.kind for r in looked),
            )
        )
    return IstioFacts(present=Fact.missing("the input has no Namespaces, CRDs or Deployments to look for Istio in"))


_HELM_SECRET = re.compile(r"^sh\.helm\.release\.v1\.(?P<name>.+)\.v(?P<rev>\d+)$")


def cilium_helm_releases(store: ObjectStore) -> Fact[list[HelmReleaseFacts]]:
    """Helm releases of Cilium, by the names of release Secrets only (their contents are never read)."""
    if not store.has_listed(SECRET):
        return Fact.missing("the input has no Helm release Secret names (capture them with `cni-migrate snapshot`)")
    release_names: set[tuple[str, str]] = {("kube-system", "cilium")}
    for obj in store.of(DAEMONSET, CONFIGMAP):
        ann = meta(obj).get("annotations") or {}
        if name_of(obj) in ("cilium", "cilium-config") and ann.get("meta.helm.sh/release-name"):
            release_names.add(
                (
                    str(ann.get("meta.helm.sh/release-namespace", namespace_of(obj))),
                    str(ann["meta.helm.sh/release-name"]),
                )
            )
    latest: dict[tuple[str, str], HelmReleaseFacts] = {}
    for s in store.of(SECRET):
        m = _HELM_SECRET.match(name_of(s))
        if not m:
            continue
        key = (namespace_of(s), m.group("name"))
        if key not in release_names:
            continue
        rev = int(m.group("rev"))
        if key not in latest or latest[key].revision < rev:
            latest[key] = HelmReleaseFacts(
                name=key[1],
                namespace=key[0],
                revision=rev,
                source=f"Secret name {namespace_of(s)}/{name_of(s)}",
            )
    return Fact.of(sorted(latest.values(), key=lambda r: (r.namespace, r.name)), "names of Helm release Secrets")
