"""Calico policy parsing (both API versions, bad input) and Calico's evaluation semantics (tiers, order, first
match, Pass, end-of-tier deny, profile allow), on cases from Calico's documentation."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_migrate.analysis.policy.calico import parse_policy_set
from cni_migrate.analysis.policy.calico_eval import CalicoEvaluator
from cni_migrate.analysis.policy.labels import NoEquivalent, namespace_key, pod_key, to_dnf, to_label_selector
from cni_migrate.analysis.policy.model import (
    EGRESS,
    INGRESS,
    Endpoint,
    Flow,
    NamedPort,
    Namespace,
    PolicyInputError,
    PortRange,
    Universe,
)
from cni_migrate.analysis.selectors import parse_calico_selector


def pod(name: str, ns: str, ip: str, sa: str = "default", **labels: str) -> Endpoint:
    return Endpoint(
        name, ipaddress.ip_address(ip), ns, labels, sa, (NamedPort("http", "TCP", 8080), NamedPort("dns", "UDP", 53))
    )


WEB = pod("web", "prod", "10.0.0.2", "web-sa", app="web")
DB = pod("db", "prod", "10.0.0.3", app="db")
DNS = pod("coredns", "kube-system", "10.0.0.10", **{"k8s-app": "kube-dns"})
OUT = Endpoint("out", ipaddress.ip_address("203.0.113.9"))
U = Universe(
    {"prod": Namespace("prod", {"team": "a"}), "kube-system": Namespace("kube-system", {})},
    (WEB, DB, DNS),
    (OUT,),
    (ipaddress.ip_network("10.0.0.0/16"),),
)


def gnp(name: str, api: str = "projectcalico.org/v3", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def np(name: str, ns: str, api: str = "projectcalico.org/v3", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def allowed(ev: CalicoEvaluator, src: Endpoint, dst: Endpoint, proto: str = "TCP", port: int | None = 80) -> bool:
    f = Flow(
        src,
        dst,
        proto,
        port if proto != "ICMP" else None,
        8 if proto == "ICMP" else None,
        0 if proto == "ICMP" else None,
    )
    ok = True
    if src.is_pod:
        ok = ev.verdict(f, EGRESS).allowed
    if dst.is_pod:
        ok = ok and ev.verdict(f, INGRESS).allowed
    return ok


@pytest.mark.parametrize("api", ["crd.projectcalico.org/v1", "projectcalico.org/v3"])
def test_both_api_versions_parse_alike(api: str) -> None:
    ps = parse_policy_set(
        [
            np(
                "allow",
                "prod",
                api,
                selector="app == 'web'",
                order=10,
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": "app == 'db'"},
                        "destination": {"ports": [80, "8000:8100", "http"]},
                    }
                ],
            )
        ]
    )
    (p,) = ps.policies
    assert (p.kind, p.namespace, p.tier, p.order, p.types) == ("NetworkPolicy", "prod", "default", 10.0, {INGRESS})
    assert p.ingress[0].destination.ports == (PortRange(80, 80), PortRange(8000, 8100), "http")


def test_default_types_follow_calico() -> None:
    ps = parse_policy_set(
        [
            gnp("a", ingress=[{"action": "Allow"}]),
            gnp("b", egress=[{"action": "Allow"}]),
            gnp("c", ingress=[{"action": "Allow"}], egress=[{"action": "Allow"}]),
            gnp("d"),
        ]
    )
    assert [set(p.types) for p in ps.policies] == [{INGRESS}, {EGRESS}, {INGRESS, EGRESS}, {INGRESS}]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (gnp("x", selector="app =="), "GlobalNetworkPolicy x: spec.selector: malformed selector"),
        (gnp("x", bogus=1), "GlobalNetworkPolicy x: spec.bogus: unknown field"),
        (gnp("x", tier="security"), "GlobalNetworkPolicy x: spec.tier: tier 'security' does not exist"),
        (
            np("x", "prod", ingress=[{"action": "Allow", "source": {"nets": ["10.0.0.0/33"]}}]),
            "NetworkPolicy prod/x: spec.ingress[0].source.nets[0]: '10.0.0.0/33' is not a CIDR",
        ),
        (np("x", "prod", ingress=[{"action": "Accept"}]), "NetworkPolicy prod/x: spec.ingress[0].action: 'Accept'"),
        (
            np("x", "prod", ingress=[{"action": "Allow", "destination": {"ports": [80]}}]),
            "NetworkPolicy prod/x: spec.ingress[0].destination.ports: ports need protocol",
        ),
        (np("x", "prod", preDNAT=True), "NetworkPolicy prod/x: spec.preDNAT: unknown field"),
        (
            np("x", "prod", egress=[{"action": "Allow", "destination": {"wat": 1}}]),
            "NetworkPolicy prod/x: spec.egress[0].destination.wat: unknown field",
        ),
    ],
)
def test_bad_input_names_policy_and_field(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(
        PolicyInputError, match="^" + message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        parse_policy_set([obj])


def test_tier_from_both_api_versions() -> None:
    tier = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "Tier",
        "metadata": {"name": "security"},
        "spec": {"order": 100},
    }
    ps = parse_policy_set([gnp("security.p", tier="security")], [tier])
    assert ps.tier_order() == ["security", "default"]


def test_default_deny_with_kube_system_excluded_and_dns_allowed() -> None:
    # Calico docs: a global default deny that leaves kube-system alone, and an allow for DNS egress.
    ps = parse_policy_set(
        [
            gnp(
                "default-deny",
                selector="projectcalico.org/namespace not in {'kube-system'}",
                types=["Ingress", "Egress"],
                egress=[
                    {
                        "action": "Allow",
                        "protocol": "UDP",
                        "destination": {"selector": "k8s-app == 'kube-dns'", "ports": [53]},
                    }
                ],
            ),
        ]
    )
    ev = CalicoEvaluator(ps, U)
    assert allowed(ev, WEB, DNS, "UDP", 53)
    assert not allowed(ev, WEB, DNS, "TCP", 53)
    assert not allowed(ev, WEB, DB)
    assert not allowed(ev, OUT, WEB)
    assert allowed(ev, OUT, DNS)  # kube-system is not selected: its profile allows


def test_order_allow_before_deny_first_match_wins() -> None:
    ps = parse_policy_set(
        [
            np("deny-all", "prod", order=200, ingress=[{"action": "Deny"}]),
            np(
                "allow-web-from-db",
                "prod",
                order=100,
                selector="app == 'web'",
                ingress=[{"action": "Allow", "source": {"selector": "app == 'db'"}}],
            ),
        ]
    )
    ev = CalicoEvaluator(ps, U)
    assert allowed(ev, DB, WEB)  # the lower order allow comes first
    assert not allowed(ev, DNS, WEB)
    v = ev.verdict(Flow(DNS, WEB, "TCP", 80), INGRESS)
    assert v.why == "NetworkPolicy prod/deny-all ingress[0] (Deny)"


def test_pass_goes_to_next_tier_and_end_of_tier_denies() -> None:
    tiers = [
        {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 1}}
    ]
    ps = parse_policy_set(
        [
            gnp(
                "security.pass-prod",
                tier="security",
                selector="projectcalico.org/namespace == 'prod'",
                ingress=[{"action": "Pass", "source": {"namespaceSelector": "team == 'a'"}}],
            ),
            np("allow-db", "prod", selector="app == 'db'", ingress=[{"action": "Allow"}]),
        ],
        tiers,
    )
    ev = CalicoEvaluator(ps, U)
    assert allowed(ev, WEB, DB)  # passed, then allowed in the default tier
    assert not allowed(ev, DNS, DB)  # not passed: end of the security tier denies
    assert allowed(ev, WEB, pod("other", "prod", "10.0.0.9"))  # passed; no default-tier policy: profile allows
    assert "end of tier 'security'" in ev.verdict(Flow(DNS, DB, "TCP", 80), INGRESS).why


def test_named_ports_and_service_accounts() -> None:
    ps = parse_policy_set(
        [
            np(
                "sa",
                "prod",
                selector="app == 'db'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"serviceAccounts": {"names": ["web-sa"]}},
                        "destination": {"ports": ["http"]},
                    }
                ],
            ),
        ]
    )
    ev = CalicoEvaluator(ps, U)
    assert allowed(ev, WEB, DB, "TCP", 8080)
    assert not allowed(ev, WEB, DB, "TCP", 80)
    assert not allowed(ev, pod("x", "prod", "10.0.0.8"), DB, "TCP", 8080)


def test_nets_and_not_nets() -> None:
    ps = parse_policy_set(
        [
            np(
                "ext",
                "prod",
                selector="app == 'web'",
                ingress=[{"action": "Allow", "source": {"nets": ["203.0.113.0/24"], "notNets": ["203.0.113.0/29"]}}],
            ),
        ]
    )
    ev = CalicoEvaluator(ps, U)
    assert allowed(ev, OUT, WEB)
    assert not allowed(ev, Endpoint("o2", ipaddress.ip_address("203.0.113.3")), WEB)
    assert not allowed(ev, DB, WEB)


def test_selector_dnf_as_cilium_label_selectors() -> None:
    dnf = to_dnf(parse_calico_selector("(app == 'a' || app == 'b') && has(tier) && !(env in {'x', 'y'})"), pod_key)
    sels = [to_label_selector(c) for c in dnf]
    assert sels == [
        {
            "matchLabels": {"k8s:app": "a"},
            "matchExpressions": [
                {"key": "k8s:tier", "operator": "Exists"},
                {"key": "k8s:env", "operator": "NotIn", "values": ["x", "y"]},
            ],
        },
        {
            "matchLabels": {"k8s:app": "b"},
            "matchExpressions": [
                {"key": "k8s:tier", "operator": "Exists"},
                {"key": "k8s:env", "operator": "NotIn", "values": ["x", "y"]},
            ],
        },
    ]
    assert to_dnf(parse_calico_selector("app == 'a' && app == 'b'"), pod_key) == []
    assert [
        to_label_selector(c)
        for c in to_dnf(parse_calico_selector("projectcalico.org/name == 'kube-system'"), namespace_key)
    ] == [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system"}}]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("app contains 'w'", "has no Cilium label selector equivalent"),
        ("!(name starts with 'x')", "has no Cilium label selector equivalent"),
        ("pod-template-hash == 'abc'", "not part of Cilium identities"),
        ("projectcalico.org/orchestrator == 'k8s'", "Calico's own label"),
    ],
)
def test_untranslatable_selectors_are_reported(text: str, reason: str) -> None:
    with pytest.raises(NoEquivalent, match=reason):
        to_dnf(parse_calico_selector(text), pod_key)
