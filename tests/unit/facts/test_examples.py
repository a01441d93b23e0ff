"""discover on each bundled example yields, field by field, the facts its seed describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_migrate.analysis.problems import find_problems
from cni_migrate.facts import ClusterFacts, facts_from_snapshot

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def lossy() -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / "calico-bgp-lossy"))


@pytest.fixture(scope="module")
def flannel() -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / "flannel-graceful"))


@pytest.fixture(scope="module")
def multipool() -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / "calico-operator-multipool"))


class TestLossyCalicoSeed:
    """Seed 000: kubeadm, 3 control-plane + 3 workers, Calico BGP from manifests, kube-proxy IPVS."""

    def test_kubernetes_version(self, lossy: ClusterFacts) -> None:
        assert lossy.kubernetes_version.value == "v1.26.0"

    def test_nodes(self, lossy: ClusterFacts) -> None:
        assert [n.internal_ips for n in lossy.nodes] == [[f"10.31.90.{i}"] for i in range(1, 7)]
        assert [n.control_plane for n in lossy.nodes] == [True, True, True, False, False, False]
        assert {n.kernel_version for n in lossy.nodes} == {"6.1.4-1.el7.elrepo.x86_64"}
        assert {n.container_runtime for n in lossy.nodes} == {"containerd://1.6.14"}
        assert {n.os_image for n in lossy.nodes} == {"CentOS Linux 7 (Core)"}
        assert {n.kubelet_version for n in lossy.nodes} == {"v1.26.0"}
        assert lossy.nodes[0].roles == ["control-plane"]
        assert lossy.nodes[0].taints[0].key == "node-role.kubernetes.io/control-plane"
        assert lossy.nodes[3].roles == []
        assert lossy.nodes[0].cni_annotations == {"projectcalico.org/IPv4Address": "10.31.90.1/24"}

    def test_calico(self, lossy: ClusterFacts) -> None:
        assert lossy.cni.detected == "calico"
        c = lossy.cni.calico
        assert c is not None
        assert c.install_method == "manifest"
        assert c.namespace == "kube-system"
        assert c.version.value == "v3.24.5"
        assert c.calico_networking_backend.value == "bird"
        assert c.ip_autodetection_method.value == "interface=eth0"
        assert [
            (p.name, p.cidr, p.block_size, p.ipip_mode, p.vxlan_mode, p.nat_outgoing) for p in c.ip_pools.value or []
        ] == [("default-ipv4-ippool", "10.33.0.0/17", 24, "Never", "Never", True)]
        assert c.uses_ipip.value is False and c.uses_vxlan.value is False
        bgp = c.bgp.value
        assert bgp is not None
        assert bgp.as_number == 64517
        assert bgp.node_to_node_mesh is False
        assert bgp.service_cluster_ips == ["10.33.128.0/18"]
        assert bgp.service_load_balancer_ips == ["10.33.192.0/18"]
        assert sorted((p.peer_ip, p.as_number) for p in c.bgp_peers) == [
            ("10.31.100.100", 64516),
            ("10.31.254.253", 64512),
        ]
        assert c.route_reflectors == []

    def test_kube_proxy(self, lossy: ClusterFacts) -> None:
        kp = lossy.kube_proxy
        assert kp.present.value is True
        assert kp.mode.value == "ipvs"
        assert kp.cluster_cidr.value == "10.33.0.0/17"
        assert kp.daemonset == "kube-system/kube-proxy"

    def test_network(self, lossy: ClusterFacts) -> None:
        n = lossy.network
        assert n.pod_cidrs.value == ["10.33.0.0/17"]
        assert n.service_cidrs.value == ["10.33.128.0/18"]
        assert n.load_balancer_cidrs.value == ["10.33.192.0/18"]
        assert n.api_endpoint.value is not None
        assert (n.api_endpoint.value.host, n.api_endpoint.value.port) == ("10.31.90.0", 8443)
        assert "controlPlaneEndpoint" in str(n.api_endpoint.source)
        assert n.allocate_node_cidrs.value is True
        assert [node.pod_cidr for node in lossy.nodes] == [f"10.33.{i}.0/24" for i in range(6)]

    def test_rest(self, lossy: ClusterFacts) -> None:
        assert lossy.istio.present.value is False
        assert lossy.cilium_helm_releases.value == []
        assert lossy.workloads.pods.value == 30
        assert lossy.workloads.host_network_pods.value == 24
        assert lossy.source.missing_kinds == []
        assert find_problems(lossy) == []


class TestFlannelGracefulSeed:
    """Seed 003: Kubernetes 1.24, Flannel VXLAN on 10.243.0.0/16, host-local IPAM on node podCIDRs."""

    def test_flannel(self, flannel: ClusterFacts) -> None:
        assert flannel.kubernetes_version.value == "v1.24.8"
        assert flannel.cni.detected == "flannel"
        f = flannel.cni.flannel
        assert f is not None
        assert (f.namespace, f.daemonset, f.configmap) == ("kube-flannel", "kube-flannel-ds", "kube-flannel-cfg")
        assert f.network.value == "10.243.0.0/16"
        assert f.backend_type.value == "vxlan"
        assert f.backend_port.value == 8472
        assert "default" in str(f.backend_port.source)
        assert f.vni.value == 1
        assert f.direct_routing.value is False
        assert f.ip_masq.value is True
        assert flannel.cni.calico is None and flannel.cni.cilium is None

    def test_node_podcidrs_and_pods(self, flannel: ClusterFacts) -> None:
        assert {n.name.split(".")[0]: n.pod_cidr for n in flannel.nodes} == {
            "node-01": "10.243.4.0/24",
            "node-02": "10.243.6.0/24",
            "node-03": "10.243.0.0/24",
        }
        assert flannel.nodes[0].cni_annotations["flannel.alpha.coreos.com/backend-type"] == "vxlan"
        assert flannel.network.pod_cidrs.value == ["10.243.0.0/16"]
        assert flannel.network.service_cidrs.value == ["10.96.0.0/12"]
        assert flannel.kube_proxy.mode.value == "iptables"
        ep = flannel.network.api_endpoint.value
        assert ep is not None and (ep.host, ep.port) == ("192.168.10.11", 6443)
        assert find_problems(flannel) == []


class TestOperatorMultiPool:
    """Seeds 002/004: tigera-operator, IPPools selected by node labels, route reflectors."""

    def test_calico_operator(self, multipool: ClusterFacts) -> None:
        c = multipool.cni.calico
        assert multipool.cni.detected == "calico"
        assert c is not None
        assert c.install_method == "operator"
        assert c.namespace == "calico-system"
        assert c.installation_finalizers == ["tigera.io/operator-cleanup"]
        assert c.ip_autodetection_method.value == "firstFound=true"
        pools = {p.name: p for p in c.ip_pools.value or []}
        assert set(pools) == {"rack1-pool", "rack2-pool", "gpu-pool", "edge-pool", "legacy-pool"}
        assert pools["gpu-pool"].block_size == 28
        assert pools["gpu-pool"].node_selector == 'gpu == "true" && rack in {"r1", "r2"}'
        assert pools["legacy-pool"].disabled is True
        assert c.global_network_policies == 2
        assert c.felix["vxlanVNI"] == "4096"

    def test_bgp_and_route_reflectors(self, multipool: ClusterFacts) -> None:
        c = multipool.cni.calico
        assert c is not None and c.bgp.value is not None
        assert c.bgp.value.as_number == 64512
        assert c.bgp.value.node_to_node_mesh is False
        assert [(r.node, r.cluster_id) for r in c.route_reflectors] == [("cp-1", "244.0.0.1"), ("cp-3", "244.0.0.1")]
        peers = {p.name: p for p in c.bgp_peers}
        assert peers["peer-with-route-reflectors"].peer_selector == "route-reflector == 'true'"
        assert (peers["tor-r2"].peer_ip, peers["tor-r2"].as_number) == ("10.70.2.1", 65002)

    def test_cluster(self, multipool: ClusterFacts) -> None:
        assert multipool.istio.present.value is True
        assert multipool.policies.kubernetes_network_policies.value == 3
        assert multipool.network.allocate_node_cidrs.value is False
        assert multipool.network.pod_cidrs.value == ["10.60.0.0/18", "10.60.64.0/18", "10.61.0.0/20", "10.63.0.0/20"]
        ep = multipool.network.api_endpoint.value
        assert ep is not None and (ep.host, ep.port) == ("api.dc1.example.internal", 6443)
        assert multipool.lowest_kernel == "5.4.0-150-generic"
        pdbs = multipool.pdbs.value or []
        assert [(p.namespace, p.name) for p in pdbs if p.blocks_eviction] == [("data", "zk")]

    def test_problems(self, multipool: ClusterFacts) -> None:
        ids = sorted(p.id for p in find_problems(multipool))
        assert ids == ["mixed-kernels", "nodes-without-podcidr", "overlapping-pool-selectors", "pdbs-block-eviction"]
