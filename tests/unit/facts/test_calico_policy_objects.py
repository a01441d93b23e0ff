"""Calico's policy objects as the policy translation reads them: both API versions, each policy once, cni-migrate's
own objects left out; and the cluster's pods as the policy model's endpoints."""

from __future__ import annotations

import ipaddress
from typing import Any

from cni_migrate.analysis.calico_policies import cluster_endpoints, parse_objects, pod_label_keys
from cni_migrate.facts.objects import ObjectStore
from cni_migrate.facts.policies import calico_policy_objects, policy_key


def gnp(api: str, name: str, tier: str | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"selector": "all()", **spec}
    if tier:
        s["tier"] = tier
    return {"apiVersion": api, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": s}


def np(api: str, ns: str, name: str, **labels: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"apiVersion": api, "kind": "NetworkPolicy", "metadata": md, "spec": {"selector": "all()"}}


def store_of(*objs: dict[str, Any]) -> ObjectStore:
    s = ObjectStore(location="test")
    s.add_all(list(objs))
    return s


V1, V3 = "crd.projectcalico.org/v1", "projectcalico.org/v3"


def test_each_policy_once_the_v3_copy_preferred() -> None:
    store = store_of(
        gnp(V1, "default.allow-dns", order=10),  # the CRD storage's name of a default-tier policy
        gnp(V3, "allow-dns", order=10),
        gnp(V1, "security.block", tier="security"),
        gnp(V3, "security.block", tier="security"),
        gnp(V1, "only-in-crd"),
        np(V1, "prod", "web"),
        np(V3, "prod", "web"),
        np(V1, "dev", "web"),  # same name, another namespace: another policy
        {"apiVersion": V1, "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 100}},
        {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 100}},
    )
    objs = calico_policy_objects(store)
    got = sorted(
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs.policies
    )
    assert got == [
        (V1, "GlobalNetworkPolicy", "", "only-in-crd"),
        (V1, "NetworkPolicy", "dev", "web"),
        (V3, "GlobalNetworkPolicy", "", "allow-dns"),
        (V3, "GlobalNetworkPolicy", "", "security.block"),
        (V3, "NetworkPolicy", "prod", "web"),
    ]
    assert [t["apiVersion"] for t in objs.tiers] == [V3]
    assert objs.listed


def test_the_default_prefix_is_only_dropped_in_the_default_tier() -> None:
    assert policy_key(gnp(V1, "default.x")) == ("GlobalNetworkPolicy", "", "x")
    assert policy_key(gnp(V1, "default.x", tier="default")) == ("GlobalNetworkPolicy", "", "x")
    assert policy_key(gnp(V1, "default.x", tier="other")) == ("GlobalNetworkPolicy", "", "default.x")


def test_cni_migrates_own_objects_are_left_out() -> None:
    mine = gnp(V1, "cni-migrate-allow-all")
    mine["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "cni-migrate"}
    cnp_mine = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {
            "name": "calico-default-a",
            "namespace": "prod",
            "labels": {"app.kubernetes.io/managed-by": "cni-migrate"},
        },
    }
    cnp_theirs = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "x", "namespace": "prod"},
    }
    objs = calico_policy_objects(store_of(mine, gnp(V1, "real"), cnp_mine, cnp_theirs))
    assert [o["metadata"]["name"] for o in objs.policies] == ["real"]
    assert objs.left_out == ("GlobalNetworkPolicy cni-migrate-allow-all",)
    assert objs.cilium_policies == frozenset({("CiliumNetworkPolicy", "prod", "x")})


def test_without_calico_kinds_nothing_is_listed() -> None:
    objs = calico_policy_objects(store_of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}))
    assert objs.empty
    assert not objs.listed


def test_pods_become_endpoints_with_labels_service_accounts_and_named_ports() -> None:
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}],
            },
            "status": {"podIP": "10.244.1.5"},
        },
        {  # hostNetwork: no Calico workload endpoint
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "node-agent", "namespace": "kube-system"},
            "spec": {"hostNetwork": True, "containers": []},
            "status": {"podIP": "192.168.0.10"},
        },
        {  # pending, no address yet
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pending", "namespace": "prod"},
            "spec": {"containers": []},
            "status": {},
        },
    ]
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"team": "a"}}}
    namespaces, endpoints = cluster_endpoints(calico_policy_objects(store_of(ns, *pods)))
    assert [e.name for e in endpoints] == ["web-1"]
    (web,) = endpoints
    assert web.ip == ipaddress.ip_address("10.244.1.5")
    assert web.service_account == "web"
    assert web.labels == {"app": "web"}
    assert web.named_port("http", "TCP") == 8080
    assert namespaces["prod"].labels == {"team": "a"}


def test_replicas_alike_are_one_endpoint() -> None:
    def pod(name: str, ip: str, app: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "prod", "labels": {"app": app}},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"podIP": ip},
        }

    store = store_of(pod("web-1", "10.0.0.1", "web"), pod("web-2", "10.0.0.2", "web"), pod("db-1", "10.0.0.3", "db"))
    _, endpoints = cluster_endpoints(calico_policy_objects(store))
    assert [e.name for e in endpoints] == ["web-1", "db-1"]


def test_only_the_labels_policies_look_at_split_pods_into_classes() -> None:
    policy = gnp(V1, "p", ingress=[{"action": "Allow", "source": {"selector": "has(tier) || app in {'a'}"}}])
    policy["spec"]["selector"] = "!has(team)"
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"web-{i}",
                "namespace": "prod",
                "labels": {"app": "web", "pod-template-hash": str(i)},
            },
            "spec": {"containers": []},
            "status": {"podIP": f"10.0.0.{i + 1}"},
        }
        for i in range(5)
    ]
    objs = calico_policy_objects(store_of(policy, *pods))
    policy_set, _ = parse_objects(objs)
    keys = pod_label_keys(policy_set)
    assert keys == frozenset({"team", "tier", "app"})
    assert len(cluster_endpoints(objs)[1]) == 5  # every pod differs in pod-template-hash
    assert [e.name for e in cluster_endpoints(objs, keys)[1]] == ["web-0"]  # which no policy looks at
