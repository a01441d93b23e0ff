"""Translation cases after Calico's documentation (default deny with kube-system excluded, allow DNS, order-sensitive
allow-before-deny, Pass to the next tier, named ports, service-account rules), each with the expected Cilium output
or report, and untranslatable input reported with the policy and the field."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_migrate.analysis.policy.calico import parse_policy_set
from cni_migrate.analysis.policy.check import check, representative_universe
from cni_migrate.analysis.policy.translate import Translation, VersionError, cilium_name, translate

from .test_calico_policy import gnp, np

POD_CIDRS = [ipaddress.ip_network("10.0.0.0/16")]
MANAGED = {"app.kubernetes.io/managed-by": "cni-migrate"}
NS = "k8s:io.kubernetes.pod.namespace"
SECURITY_TIER = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "Tier",
    "metadata": {"name": "security"},
    "spec": {"order": 100},
}


def run(objs: list[dict[str, Any]], version: str = "1.16", tiers: list[dict[str, Any]] | None = None) -> Translation:
    return translate(parse_policy_set(objs, tiers or []), cilium_version=version, pod_cidrs=POD_CIDRS)


def specs(t: Translation) -> dict[str, Any]:
    return {o["metadata"]["name"]: o["spec"] for o in t.objects}


def test_default_deny_excluding_kube_system_with_dns_allowed() -> None:
    t = run(
        [
            gnp(
                "default-deny",
                selector="projectcalico.org/namespace not in {'kube-system', 'calico-system'}",
                types=["Ingress", "Egress"],
                egress=[
                    {
                        "action": "Allow",
                        "protocol": "UDP",
                        "destination": {"selector": "k8s-app == 'kube-dns'", "ports": [53]},
                    }
                ],
            )
        ]
    )
    assert t.ok and t.exact == ("GlobalNetworkPolicy default-deny",)
    (obj,) = t.objects
    assert obj["kind"] == "CiliumClusterwideNetworkPolicy"
    assert obj["metadata"]["name"] == "calico-default-default-deny"
    assert obj["metadata"]["labels"] == MANAGED
    assert obj["metadata"]["annotations"]["cni-migrate.io/calico-kind"] == "GlobalNetworkPolicy"
    assert obj["spec"] == {
        "endpointSelector": {
            "matchExpressions": [{"key": NS, "operator": "NotIn", "values": ["calico-system", "kube-system"]}]
        },
        "ingress": [{}],
        "egress": [
            {
                "toEndpoints": [
                    {
                        "matchLabels": {"k8s:k8s-app": "kube-dns"},
                        "matchExpressions": [{"key": NS, "operator": "Exists"}],
                    }
                ],
                "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}],
            }
        ],
    }


def test_allow_before_deny_everything_leaves_the_deny_to_default_deny() -> None:
    t = run(
        [
            np(
                "allow-frontend",
                "prod",
                order=100,
                selector="app == 'api'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": "app == 'frontend'"},
                        "destination": {"ports": [8080]},
                    }
                ],
            ),
            np("deny-all", "prod", order=200, selector="all()", ingress=[{"action": "Deny"}]),
        ]
    )
    assert t.ok
    s = specs(t)
    assert s["calico-default-deny-all"] == {"endpointSelector": {}, "ingress": [{}]}  # no ingressDeny: it would win
    assert s["calico-default-allow-frontend"]["ingress"] == [
        {
            "fromEndpoints": [{"matchLabels": {"k8s:app": "frontend", NS: "prod"}}],
            "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}],
        }
    ]


def test_allow_before_an_overlapping_deny_that_a_later_allow_follows_is_reported() -> None:
    t = run(
        [
            np(
                "allow-db-http",
                "prod",
                order=100,
                selector="app == 'web'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": "app == 'db'"},
                        "destination": {"ports": [80]},
                    }
                ],
            ),
            np("deny-db", "prod", order=200, ingress=[{"action": "Deny", "source": {"selector": "app == 'db'"}}]),
            np("allow-rest", "prod", order=300, ingress=[{"action": "Allow"}]),
        ]
    )
    assert not t.ok
    pair = [u for u in t.untranslatable if u.policy == "NetworkPolicy prod/allow-db-http"]
    assert pair, [str(u) for u in t.untranslatable]
    u = pair[0]
    assert u.other_policy == "NetworkPolicy prod/deny-db"
    assert u.field == "spec.ingress[0]"
    assert u.example_flow is not None and u.example_flow.endswith("TCP/80")
    assert "Calico allows" in u.reason and "would deny" in u.reason
    # No silently different policy: neither policy of the pair is emitted.
    names = {o["metadata"]["name"] for o in t.objects}
    assert not names & {"calico-default-allow-db-http", "calico-default-deny-db"}
    assert "NetworkPolicy prod/allow-rest" in t.exact


def _security_pass(version: str) -> Translation:
    return run(
        [
            gnp(
                "security.quarantine",
                tier="security",
                order=10,
                ingress=[{"action": "Deny", "source": {"selector": "quarantine == 'true'"}}, {"action": "Pass"}],
            ),
            np(
                "allow-db",
                "prod",
                selector="app == 'db'",
                ingress=[{"action": "Allow", "source": {"selector": "app == 'web'"}}],
            ),
        ],
        version,
        [SECURITY_TIER],
    )


def test_pass_to_the_next_tier_on_cilium_116() -> None:
    t = _security_pass("1.16")
    assert t.ok, [str(u) for u in t.untranslatable]
    s = specs(t)
    assert s["calico-security-quarantine"] == {
        "endpointSelector": {"matchExpressions": [{"key": NS, "operator": "Exists"}]},
        "ingressDeny": [
            {
                "fromEndpoints": [
                    {"matchLabels": {"k8s:quarantine": "true"}, "matchExpressions": [{"key": NS, "operator": "Exists"}]}
                ]
            }
        ],
        "enableDefaultDeny": {"ingress": False},  # the tier passes what it does not deny
    }
    assert s["calico-default-allow-db"]["endpointSelector"] == {"matchLabels": {"k8s:app": "db"}}


def test_pass_to_the_next_tier_without_enable_default_deny_is_reported() -> None:
    t = _security_pass("1.14")
    assert not t.ok
    u = next(u for u in t.untranslatable if u.policy == "GlobalNetworkPolicy security.quarantine")
    assert "profile allows" in u.reason and "default deny" in u.reason
    assert u.example_flow is not None


def test_end_of_tier_deny_before_a_later_tier_allow_is_reported() -> None:
    t = run(
        [
            gnp(
                "security.web-only",
                tier="security",
                selector="app == 'web'",
                ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}],
            ),
            np("allow-all", "prod", ingress=[{"action": "Allow"}]),
        ],
        tiers=[SECURITY_TIER],
    )
    assert not t.ok
    u = next(u for u in t.untranslatable if u.other_policy == "NetworkPolicy prod/allow-all")
    assert u.policy == "GlobalNetworkPolicy security.web-only"
    assert "end of tier 'security'" in u.reason


def test_named_ports_and_service_accounts() -> None:
    t = run(
        [
            np(
                "sa-http",
                "prod",
                selector="app == 'db'",
                ingress=[
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"serviceAccounts": {"names": ["web-sa", "api-sa"]}},
                        "destination": {"ports": ["http", "9000:9100"]},
                    }
                ],
            )
        ]
    )
    assert t.ok
    assert specs(t)["calico-default-sa-http"]["ingress"] == [
        {
            "fromEndpoints": [
                {
                    "matchLabels": {NS: "prod"},
                    "matchExpressions": [
                        {
                            "key": "k8s:io.cilium.k8s.policy.serviceaccount",
                            "operator": "In",
                            "values": ["api-sa", "web-sa"],
                        }
                    ],
                }
            ],
            "toPorts": [
                {"ports": [{"port": "9000", "endPort": 9100, "protocol": "TCP"}, {"port": "http", "protocol": "TCP"}]}
            ],
        }
    ]


def test_nets_covering_the_pod_cidr_become_pods_and_addresses_and_or_becomes_several_selectors() -> None:
    t = run(
        [
            np(
                "egress",
                "prod",
                selector="app == 'a' || app == 'b'",
                types=["Egress"],
                egress=[
                    {"action": "Allow", "destination": {"nets": ["10.0.0.0/8"], "notNets": ["10.9.0.0/16"]}},
                    {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}},
                ],
            )
        ]
    )
    assert t.ok
    (obj,) = t.objects
    assert [s["endpointSelector"] for s in obj["specs"]] == [
        {"matchLabels": {"k8s:app": "a"}},
        {"matchLabels": {"k8s:app": "b"}},
    ]
    assert obj["specs"][0]["egress"] == [
        {"toEndpoints": [{"matchExpressions": [{"key": NS, "operator": "Exists"}]}]},
        {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.9.0.0/16"]}]},
        {"icmps": [{"fields": [{"family": "IPv4", "type": 8}]}]},
    ]


def test_the_check_finds_a_dropped_rule() -> None:
    objs = [
        np(
            "allow-web",
            "prod",
            selector="app == 'web'",
            ingress=[{"action": "Allow", "source": {"selector": "app == 'db'"}}],
        )
    ]
    ps = parse_policy_set(objs)
    t = translate(ps, cilium_version="1.16", pod_cidrs=POD_CIDRS)
    u = representative_universe(ps, pod_cidrs=POD_CIDRS)
    assert check(ps, t.objects, u) == ()
    broken = [dict(t.objects[0], spec={**t.objects[0]["spec"], "ingress": [{}]})]
    diffs = check(ps, broken, u)
    assert diffs and all(d.calico_allowed and not d.cilium_allowed for d in diffs)
    assert diffs[0].calico_policy == "NetworkPolicy prod/allow-web"


@pytest.mark.parametrize(
    ("obj", "field", "reason"),
    [
        (np("x", "prod", selector="app contains 'w'"), "spec.selector", "no Cilium label selector equivalent"),
        (
            np("x", "prod", ingress=[{"action": "Allow", "source": {"selector": "name starts with 'a'"}}]),
            "spec.ingress[0].source.selector",
            "no Cilium label selector equivalent",
        ),
        (gnp("x", preDNAT=True, applyOnForward=True), "spec.preDNAT", "host firewall"),
        (gnp("x", doNotTrack=True, applyOnForward=True), "spec.doNotTrack", "host firewall"),
        (
            np("x", "prod", ingress=[{"action": "Allow", "http": {"methods": ["GET"]}}]),
            "spec.ingress[0].http",
            "no Cilium L3/L4 equivalent",
        ),
        (
            np("x", "prod", ingress=[{"action": "Allow", "source": {"nets": ["10.0.5.0/24"]}}]),
            "spec.ingress[0].source.nets",
            "covers part of the pod CIDRs",
        ),
        (
            np("x", "prod", ingress=[{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 3, "code": 1}}]),
            "spec.ingress[0].icmp.code",
            "not codes",
        ),
        (
            np("x", "prod", ingress=[{"action": "Allow", "notProtocol": "TCP"}]),
            "spec.ingress[0].notProtocol",
            "cannot exclude a protocol",
        ),
        (
            np("x", "prod", ingress=[{"action": "Allow", "destination": {"selector": "app == 'a'"}}]),
            "spec.ingress[0].destination.selector",
            "narrows the policy's own endpoints",
        ),
        (np("x", "prod", serviceAccountSelector="role == 'x'"), "spec.serviceAccountSelector", "ServiceAccount labels"),
        (np("x", "prod", ingress=[{"action": "Allow", "protocol": 47}]), "spec.ingress[0].protocol", "TCP, UDP, SCTP"),
    ],
)
def test_untranslatable_input_names_policy_and_field(obj: dict[str, Any], field: str, reason: str) -> None:
    t = run([obj])
    assert not t.ok and not t.objects
    ref = "NetworkPolicy prod/x" if obj["kind"] == "NetworkPolicy" else "GlobalNetworkPolicy x"
    assert any(u.policy == ref and u.field == field and reason in u.reason for u in t.untranslatable), [
        str(u) for u in t.untranslatable
    ]


def test_bad_cilium_version() -> None:
    with pytest.raises(VersionError, match=r"1\.14 and later"):
        run([], "1.12")
    with pytest.raises(VersionError, match=r"expected MAJOR\.MINOR"):
        run([], "latest")


def test_names_are_deterministic() -> None:
    ps = parse_policy_set([gnp("security.Allow-DNS", tier="security")], [SECURITY_TIER])
    assert cilium_name(ps.policies[0]) == "calico-security-allow-dns"
    long = parse_policy_set([np("x" * 250, "prod")]).policies[0]
    name = cilium_name(long)
    assert len(name) == 253 and name == cilium_name(long)


def _range_policy(ports: list[Any]) -> list[dict[str, Any]]:
    return [
        np(
            "range",
            "prod",
            selector="app == 'db'",
            ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": ports}}],
        )
    ]


def test_port_range_before_1_16_is_written_port_by_port() -> None:
    """Cilium's policy CRDs have endPort only from 1.16: on 1.14 a short range becomes its single ports."""
    t = run(_range_policy(["9000:9003", 22]), version="1.14")
    assert t.ok, t.untranslatable
    ports = [p for tp in specs(t)["calico-default-range"]["ingress"][0]["toPorts"] for p in tp["ports"]]
    assert sorted(ports, key=lambda p: int(p["port"])) == [
        {"port": str(n), "protocol": "TCP"} for n in (22, 9000, 9001, 9002, 9003)
    ]
    on_116 = specs(run(_range_policy(["9000:9003"])))["calico-default-range"]["ingress"][0]["toPorts"]
    assert on_116 == [{"ports": [{"port": "9000", "endPort": 9003, "protocol": "TCP"}]}]


def test_wide_port_range_before_1_16_is_reported() -> None:
    t = run(_range_policy(["1024:65535"]), version="1.14")
    assert not t.ok and not t.objects
    (u,) = t.untranslatable
    assert u.policy == "NetworkPolicy prod/range" and u.field == "spec.ingress[0].ports"
    assert "1024:65535" in u.reason and "endPort" in u.reason
    assert run(_range_policy(["1024:65535"])).ok  # 1.16 has endPort
