"""CIDR overlaps (the sweep) and the problems discover reports."""

from __future__ import annotations

import ipaddress
import random

import pytest

from cni_migrate.analysis.cidrs import CidrError, NamedRange, find_overlaps, host_network, parse_cidr
from cni_migrate.analysis.problems import find_problems
from cni_migrate.facts.model import (
    CalicoFacts,
    ClusterFacts,
    CniFacts,
    Fact,
    IPPoolFacts,
    IstioFacts,
    KubeProxyFacts,
    NetworkFacts,
    NodeFacts,
    PDBFacts,
    PolicyFacts,
    SourceInfo,
    WorkloadFacts,
)


def _r(label: str, cidr: str) -> NamedRange:
    return NamedRange(label, ipaddress.ip_network(cidr))


def test_overlaps_between_groups_and_within() -> None:
    pods = [_r("pods", "10.0.0.0/16")]
    services = [_r("svc", "10.0.128.0/17"), _r("svc6", "fd00::/108")]
    assert [str(o) for o in find_overlaps(pods, services)] == ["pods 10.0.0.0/16 overlaps svc 10.0.128.0/17"]
    assert find_overlaps([_r("a", "10.0.0.0/24"), _r("b", "10.0.1.0/24")]) == []
    within = find_overlaps([_r("a", "10.0.0.0/23"), _r("b", "10.0.1.0/24"), _r("c", "10.0.1.128/25")])
    assert sorted((o.a.label, o.b.label) for o in within) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert find_overlaps([_r("v4", "0.0.0.0/0")], [_r("v6", "::/0")]) == []


def test_sweep_matches_pairwise_on_random_ranges() -> None:
    rnd = random.Random(7)
    left = [
        NamedRange(
            f"l{i}",
            ipaddress.ip_network(
                f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.0/{rnd.choice([16, 20, 24])}", strict=False
            ),
        )
        for i in range(60)
    ]
    right = [
        NamedRange(
            f"r{i}",
            ipaddress.ip_network(
                f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.0/{rnd.choice([22, 24, 26])}", strict=False
            ),
        )
        for i in range(60)
    ]
    expected = {(a.label, b.label) for a in left for b in right if a.network.overlaps(b.network)}
    assert {(o.a.label, o.b.label) for o in find_overlaps(left, right)} == expected
    expected_within = {
        frozenset((a.label, b.label))
        for i, a in enumerate(left)
        for b in left[i + 1 :]
        if a.network.overlaps(b.network)
    }
    assert {frozenset((o.a.label, o.b.label)) for o in find_overlaps(left)} == expected_within


def test_parse_cidr_errors() -> None:
    assert str(parse_cidr("10.0.0.0/8")) == "10.0.0.0/8"
    with pytest.raises(CidrError, match=r"'10\.0\.0\.1/8' is not a valid network"):
        parse_cidr("10.0.0.1/8")
    assert host_network("10.1.2.3") == ipaddress.ip_network("10.1.2.3/32")
    assert host_network("nope") is None


def _facts(
    *,
    pods: list[str] | None = None,
    services: list[str] | None = None,
    lbs: list[str] | None = None,
    nodes: list[NodeFacts] | None = None,
    pools: list[IPPoolFacts] | None = None,
    pdbs: list[PDBFacts] | None = None,
) -> ClusterFacts:
    def f(v: list[str] | None) -> Fact[list[str]]:
        return Fact.of(v, "test") if v is not None else Fact.missing("not given")

    calico = (
        CalicoFacts(
            install_method="manifest",
            namespace="kube-system",
            version=Fact.missing("x"),
            ip_pools=Fact.of(pools, "test"),
            bgp=Fact.missing("x"),
            ip_autodetection_method=Fact.missing("x"),
            calico_networking_backend=Fact.missing("x"),
        )
        if pools is not None
        else None
    )
    return ClusterFacts(
        source=SourceInfo(kind="snapshot", location="test"),
        kubernetes_version=Fact.missing("x"),
        nodes=nodes or [],
        nodes_known=Fact.of(True, "test"),
        cni=CniFacts(detected="calico" if calico else "none", calico=calico),
        kube_proxy=KubeProxyFacts(present=Fact.missing("x"), mode=Fact.missing("x"), cluster_cidr=Fact.missing("x")),
        network=NetworkFacts(
            service_cidrs=f(services),
            pod_cidrs=f(pods),
            node_cidr_mask_size=Fact.missing("x"),
            allocate_node_cidrs=Fact.missing("x"),
            load_balancer_cidrs=f(lbs),
            api_endpoint=Fact.missing("x"),
        ),
        pdbs=Fact.of(pdbs or [], "test"),
        workloads=WorkloadFacts(
            pods=Fact.missing("x"), host_network_pods=Fact.missing("x"), pods_not_running=Fact.missing("x")
        ),
        policies=PolicyFacts(
            kubernetes_network_policies=Fact.missing("x"),
            calico_network_policies=Fact.missing("x"),
            calico_global_network_policies=Fact.missing("x"),
            cilium_network_policies=Fact.missing("x"),
        ),
        istio=IstioFacts(present=Fact.missing("x")),
        cilium_helm_releases=Fact.missing("x"),
    )


def _pool(name: str, cidr: str, selector: str = "all()") -> IPPoolFacts:
    return IPPoolFacts(name=name, cidr=cidr, block_size=26, node_selector=selector, source="test")


def test_problem_ids() -> None:
    assert [p.id for p in find_problems(_facts(pods=["10.96.0.0/16"], services=["10.96.0.0/12"]))] == [
        "overlapping-cidrs"
    ]
    assert [p.id for p in find_problems(_facts(pods=["10.0.0.0/16"], lbs=["10.0.255.0/24"]))] == ["overlapping-cidrs"]
    node = NodeFacts(name="n1", internal_ips=["10.0.3.4"], kernel_version="5.15.0", pod_cidrs=["10.1.0.0/24"])
    assert [p.id for p in find_problems(_facts(pods=["10.0.0.0/16"], nodes=[node]))] == ["node-in-cluster-range"]
    n2 = NodeFacts(name="n2", kernel_version="6.1.0", pod_cidrs=["10.1.0.0/25"])
    ids = [p.id for p in find_problems(_facts(nodes=[node, n2]))]
    assert ids == ["overlapping-node-podcidrs", "mixed-kernels"]
    n3 = NodeFacts(name="n3", kernel_version="6.1.0")
    probs = find_problems(_facts(nodes=[n2, n3]))
    assert [(p.id, p.severity, p.subjects) for p in probs] == [("nodes-without-podcidr", "warning", ["n3"])]
    pools = [
        _pool("a", "10.0.0.0/16", 'rack == "r1"'),
        _pool("b", "10.0.128.0/17"),
        _pool("c", "10.2.0.0/16", "has(gpu)"),
    ]
    labelled = NodeFacts(
        name="n4", labels={"rack": "r1", "gpu": "true"}, kernel_version="6.1.0", pod_cidrs=["10.9.0.0/24"]
    )
    ids = sorted(p.id for p in find_problems(_facts(nodes=[labelled], pools=pools)))
    assert ids == [
        "overlapping-pool-selectors",
        "overlapping-pool-selectors",
        "overlapping-pool-selectors",
        "overlapping-pools",
    ]
    bad = find_problems(_facts(nodes=[labelled], pools=[_pool("bad", "10.0.0.0/16", "rack ==")]))
    assert [p.id for p in bad] == ["bad-pool-selector"]
    pdb = PDBFacts(namespace="ns", name="zk", disruptions_allowed=0, blocks_eviction=True)
    assert [p.id for p in find_problems(_facts(pdbs=[pdb]))] == ["pdbs-block-eviction"]
