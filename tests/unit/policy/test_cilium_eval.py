"""Cilium's policy semantics in the tool's evaluator: deny wins, default deny once selected, ``ingress: [{}]``,
namespace scoping of endpoint peers, CIDR peers only outside the cluster, ports, ranges, named ports, ICMP."""

from __future__ import annotations

from typing import Any

from cni_migrate.analysis.policy.cilium_eval import CiliumEvaluator
from cni_migrate.analysis.policy.model import EGRESS, INGRESS, Flow

from .test_calico_policy import DB, DNS, OUT, WEB, U


def cnp(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def ccnp(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


WEB_SEL = {"matchLabels": {"k8s:app": "web"}}


def test_no_policy_allows_and_empty_rule_only_denies_by_default() -> None:
    assert CiliumEvaluator([], U).verdict(Flow(DB, WEB, "TCP", 80), INGRESS) == (True, "no policy selects")
    ev = CiliumEvaluator([cnp("d", "prod", endpointSelector=WEB_SEL, ingress=[{}])], U)
    assert ev.verdict(Flow(DB, WEB, "TCP", 80), INGRESS)[0] is False
    assert ev.verdict(Flow(WEB, DB, "TCP", 80), EGRESS)[0] is True  # egress not enforced
    off = cnp("o", "prod", endpointSelector=WEB_SEL, ingress=[{}], enableDefaultDeny={"ingress": False})
    assert CiliumEvaluator([off], U).verdict(Flow(DB, WEB, "TCP", 80), INGRESS)[0] is True


def test_deny_wins_over_allow_whatever_the_order() -> None:
    ev = CiliumEvaluator(
        [
            cnp(
                "allow", "prod", endpointSelector=WEB_SEL, ingress=[{"fromEndpoints": [{"matchLabels": {"app": "db"}}]}]
            ),
            ccnp(
                "deny",
                endpointSelector={},
                ingressDeny=[
                    {
                        "fromEndpoints": [{"matchLabels": {"k8s:app": "db"}}],
                        "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
                    }
                ],
            ),
        ],
        U,
    )
    assert ev.verdict(Flow(DB, WEB, "TCP", 80), INGRESS) == (
        False,
        "CiliumClusterwideNetworkPolicy deny ingressDeny[0]",
    )
    assert ev.verdict(Flow(DB, WEB, "TCP", 81), INGRESS)[0] is True
    assert ev.verdict(Flow(DNS, WEB, "TCP", 81), INGRESS)[0] is False


def test_namespace_scoping_cidrs_entities_ports_icmp() -> None:
    pol = cnp(
        "p",
        "prod",
        endpointSelector=WEB_SEL,
        ingress=[
            {"fromEndpoints": [{}]},  # same namespace only
            {"fromCIDRSet": [{"cidr": "10.0.0.0/8"}]},  # does not match pods
            {
                "fromEntities": ["world"],
                "toPorts": [
                    {
                        "ports": [
                            {"port": "8000", "endPort": 8100, "protocol": "TCP"},
                            {"port": "http", "protocol": "TCP"},
                        ]
                    }
                ],
            },
            {
                "fromEndpoints": [
                    {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]}
                ],
                "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}],
            },
        ],
    )
    ev = CiliumEvaluator([pol], U)
    assert ev.verdict(Flow(DB, WEB, "UDP", 9), INGRESS)[0] is True
    assert ev.verdict(Flow(DNS, WEB, "TCP", 80), INGRESS)[0] is False
    assert ev.verdict(Flow(OUT, WEB, "TCP", 8050), INGRESS)[0] is True
    assert ev.verdict(Flow(OUT, WEB, "TCP", 8080), INGRESS)[0] is True  # named port http
    assert ev.verdict(Flow(OUT, WEB, "TCP", 8101), INGRESS)[0] is False
    assert ev.verdict(Flow(DNS, WEB, "ICMP", None, 8, 0), INGRESS)[0] is True
    assert ev.verdict(Flow(DNS, WEB, "ICMP", None, 0, 0), INGRESS)[0] is False
