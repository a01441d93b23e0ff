"""Typed facts about a cluster's networking, as every later decision sees them.

Every fact that could be missing is a :class:`Fact`: a value plus where it came from, or ``unknown`` with the
reason. A guess is never presented as a fact: extractors either find evidence or say why they could not.
The JSON form of :class:`ClusterFacts` is the documented ``discover -o json`` schema (``SCHEMA_VERSION``);
keys are stable within a schema version.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cni_migrate.facts.kernel import kernel_key

SCHEMA_VERSION = "cni-migrate.io/facts/v1"

T = TypeVar("T")


class Fact(BaseModel, Generic[T]):
    """A value with its provenance, or the reason it is unknown."""

    model_config = ConfigDict(frozen=True)

    value: T | None = None
    source: str | None = None
    unknown: str | None = None

    @property
    def known(self) -> bool:
        return self.unknown is None

    @classmethod
    def of(cls, value: T, source: str) -> Fact[T]:
        return cls(value=value, source=source)

    @classmethod
    def missing(cls, reason: str) -> Fact[T]:
        return cls(unknown=reason)


class Taint(BaseModel):
    key: str
    value: str | None = None
    effect: str


class NodeFacts(BaseModel):
    name: str
    roles: list[str] = Field(default_factory=list)
    control_plane: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    internal_ips: list[str] = Field(default_factory=list)
    kernel_version: str | None = None
    os_image: str | None = None
    container_runtime: str | None = None
    kubelet_version: str | None = None
    pod_cidr: str | None = None
    pod_cidrs: list[str] = Field(default_factory=list)
    unschedulable: bool = False
    ready: bool | None = None
    cni_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations written by Calico, Flannel or Cilium (projectcalico.org/*,"
        " flannel.alpha.coreos.com/*, network.cilium.io/*, io.cilium.network.*)",
    )
    pods: int = 0
    host_network_pods: int = 0


class IPPoolFacts(BaseModel):
    name: str
    cidr: str
    block_size: int
    node_selector: str = "all()"
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False
    source: str


class CalicoBGPFacts(BaseModel):
    node_to_node_mesh: bool = True
    as_number: int | None = None
    service_cluster_ips: list[str] = Field(default_factory=list)
    service_external_ips: list[str] = Field(default_factory=list)
    service_load_balancer_ips: list[str] = Field(default_factory=list)
    source: str


class BGPPeerFacts(BaseModel):
    name: str
    peer_ip: str | None = None
    as_number: int | None = None
    node: str | None = None
    node_selector: str | None = None
    peer_selector: str | None = None
    source: str


class RouteReflectorFacts(BaseModel):
    node: str
    cluster_id: str
    source: str


class CalicoNodeBGPFacts(BaseModel):
    node: str
    ipv4_address: str | None = None
    as_number: int | None = None
    route_reflector_cluster_id: str | None = None


class TigeraOperatorFacts(BaseModel):
    """The tigera-operator Deployment that installed Calico (and processes its finalizers while it runs)."""

    namespace: str
    deployment: str
    image: str | None = None
    version: Fact[str]
    replicas: int | None = None
    ready_replicas: int | None = None
    source: str


class BlockingFinalizerFacts(BaseModel):
    """An object of the old CNI whose finalizers only the old CNI's operator removes: once the operator is gone,
    deleting the object hangs until they are cleared."""

    namespace: str | None = None
    kind: str
    api_version: str
    name: str
    finalizers: list[str]
    deleting: bool = Field(default=False, description="metadata.deletionTimestamp is set: already stuck")


class CalicoFacts(BaseModel):
    install_method: Literal["manifest", "operator"]
    namespace: str
    daemonset: str | None = Field(
        default=None, description="the DaemonSet running calico-node: calico-node, or canal for Canal"
    )
    version: Fact[str]
    ip_pools: Fact[list[IPPoolFacts]] = Field(
        default_factory=lambda: Fact[list[IPPoolFacts]].missing("not read"),
        description="Calico's IPPools: the objects, else (when the input lists IPPools and there are none) what the "
        "Installation or calico-node's env makes Calico create; unknown when the input has no IPPool objects",
    )
    bgp: Fact[CalicoBGPFacts]
    bgp_peers: list[BGPPeerFacts] = Field(default_factory=list)
    route_reflectors: list[RouteReflectorFacts] = Field(default_factory=list)
    nodes_bgp: list[CalicoNodeBGPFacts] = Field(default_factory=list)
    ip_autodetection_method: Fact[str]
    calico_networking_backend: Fact[str]
    felix: dict[str, str] = Field(
        default_factory=dict, description="FelixConfiguration 'default' settings that matter to a migration"
    )
    vxlan_port: int = 4789
    uses_ipip: Fact[bool] = Field(default_factory=lambda: Fact[bool].missing("not read"))
    uses_vxlan: Fact[bool] = Field(default_factory=lambda: Fact[bool].missing("not read"))
    typha: Fact[bool] = Field(
        default_factory=lambda: Fact[bool].missing("not read"),
        description="a calico-typha Deployment runs next to calico-node (manifest installs: calico-typha.yaml)",
    )
    installation_finalizers: list[str] = Field(default_factory=list)
    operator: Fact[TigeraOperatorFacts] | None = Field(
        default=None, description="The tigera-operator Deployment; null when Calico is manifest-installed"
    )
    network_policies: int = 0
    global_network_policies: int = 0


class FlannelFacts(BaseModel):
    namespace: str
    daemonset: str
    configmap: str
    network: Fact[str]
    backend_type: Fact[str]
    backend_port: Fact[int]
    vni: Fact[int]
    direct_routing: Fact[bool]
    ip_masq: Fact[bool]
    canal: bool = False


class CiliumFacts(BaseModel):
    namespace: str
    version: Fact[str]
    ipam_mode: Fact[str]
    routing_mode: Fact[str]
    tunnel_protocol: Fact[str]
    kube_proxy_replacement: Fact[str]
    annotate_k8s_node: Fact[bool]
    config: dict[str, str] = Field(default_factory=dict)


class KubeRouterFacts(BaseModel):
    namespace: str
    daemonset: str
    args: list[str] = Field(default_factory=list)


CniName = Literal["calico", "flannel", "canal", "cilium", "kube-router", "none", "unknown"]


class CniFacts(BaseModel):
    detected: CniName
    evidence: list[str] = Field(default_factory=list)
    also_present: list[CniName] = Field(default_factory=list)
    calico: CalicoFacts | None = None
    flannel: FlannelFacts | None = None
    cilium: CiliumFacts | None = None
    kube_router: KubeRouterFacts | None = None
    blocking_finalizers: Fact[list[BlockingFinalizerFacts]] = Field(
        default_factory=lambda: Fact[list[BlockingFinalizerFacts]].missing("not determined"),
        description="Objects of the old CNI with finalizers only its operator removes",
    )


class KubeProxyFacts(BaseModel):
    present: Fact[bool]
    mode: Fact[str]
    cluster_cidr: Fact[str]
    daemonset: str | None = None
    configmap: str | None = None


class ApiEndpoint(BaseModel):
    host: str
    port: int


class NetworkFacts(BaseModel):
    service_cidrs: Fact[list[str]]
    pod_cidrs: Fact[list[str]]
    node_cidr_mask_size: Fact[int]
    allocate_node_cidrs: Fact[bool]
    load_balancer_cidrs: Fact[list[str]]
    api_endpoint: Fact[ApiEndpoint]


class PDBFacts(BaseModel):
    namespace: str
    name: str
    disruptions_allowed: int | None = None
    blocks_eviction: bool = False


class WorkloadFacts(BaseModel):
    pods: Fact[int]
    host_network_pods: Fact[int]
    pods_not_running: Fact[int]


class PolicyFacts(BaseModel):
    kubernetes_network_policies: Fact[int]
    calico_network_policies: Fact[int]
    calico_global_network_policies: Fact[int]
    cilium_network_policies: Fact[int]


class IstioFacts(BaseModel):
    present: Fact[bool]
    evidence: list[str] = Field(default_factory=list)


class HelmReleaseFacts(BaseModel):
    name: str
    namespace: str
    revision: int
    source: str


class SourceInfo(BaseModel):
    kind: Literal["snapshot", "live"]
    location: str
    objects: int = 0
    ignored_kinds: dict[str, int] = Field(default_factory=dict)
    missing_kinds: list[str] = Field(default_factory=list)


class ClusterFacts(BaseModel):
    schema_version: str = SCHEMA_VERSION
    source: SourceInfo
    kubernetes_version: Fact[str]
    nodes: list[NodeFacts]
    nodes_known: Fact[bool]
    cni: CniFacts
    kube_proxy: KubeProxyFacts
    network: NetworkFacts
    pdbs: Fact[list[PDBFacts]]
    workloads: WorkloadFacts
    policies: PolicyFacts
    istio: IstioFacts
    cilium_helm_releases: Fact[list[HelmReleaseFacts]]
    kube_system_uid: Fact[str] = Field(
        default=Fact(unknown="not read"),
        description="metadata.uid of the kube-system Namespace: identifies the cluster (a plan's preflight checks it)",
    )

    def node(self, name: str) -> NodeFacts | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @property
    def lowest_kernel(self) -> str | None:
        kernels = [n.kernel_version for n in self.nodes if n.kernel_version]
        return min(kernels, key=kernel_key) if kernels else None
