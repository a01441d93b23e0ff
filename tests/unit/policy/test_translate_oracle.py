"""The differential oracle of issue 14: generated Calico policy sets and generated worlds, judged by the two
evaluators of ``oracle.py`` (written for the tests, independent of the tool's evaluators).

* A translation the tool claims exact (``Translation.ok``) gives, in every world, the same verdict as Calico on
  every flow and in both directions.
* Every order conflict it reports comes with an example flow on which Calico's verdict and the verdict of the
  rule-by-rule Cilium translation (``Translation.direct``) really differ.

Derandomized (the seed is fixed by the test's name: the same cases every run); ``--hypothesis-show-statistics``
prints how many sets were exact, conflicting or had untranslatable fields.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cni_migrate.analysis.policy.calico import parse_policy_set
from cni_migrate.analysis.policy.model import Endpoint, Flow
from cni_migrate.analysis.policy.translate import Translation, translate

from .oracle import POD_CIDR, Ext, OFlow, Pod, World, all_flows, calico_verdict, cilium_verdict
from .strategies import L4_POINTS, policy_sets, worlds

VERSIONS = {"1.14": (1, 14), "1.16": (1, 16)}
EXAMPLES = int(os.environ.get("POLICY_ORACLE_EXAMPLES", "1500"))


def _peer(ep: Endpoint) -> Pod | Ext:
    if not ep.is_pod:
        return Ext(str(ep.ip))
    ports = tuple((p.name, p.protocol, p.port) for p in ep.named_ports)
    return Pod(ep.name, ep.namespace or "", str(ep.ip), dict(ep.labels), ep.service_account, ports)


def _oflow(f: Flow) -> OFlow:
    port = f.icmp_type if f.protocol == "ICMP" else f.port
    return OFlow(_peer(f.src), _peer(f.dst), f.protocol, port)


def _check_exact(world: World, policies: list[dict[str, Any]], tiers: list[dict[str, Any]], t: Translation) -> None:
    ver = VERSIONS[t.cilium_version]
    for f in all_flows(world, L4_POINTS):
        for d in ("ingress", "egress"):
            local = f.dst if d == "ingress" else f.src
            if not isinstance(local, Pod):
                continue
            cal = calico_verdict(world, policies, tiers, f, d)
            cil = cilium_verdict(world, t.objects, f, d, ver)
            assert cal[0] == cil[0], (f, d, cal, cil, t.objects)


def _check_conflicts(policies: list[dict[str, Any]], tiers: list[dict[str, Any]], t: Translation) -> None:
    ver = VERSIONS[t.cilium_version]
    for u in t.untranslatable:
        if u.flow is None:
            continue
        assert u.example_flow and u.direction and u.namespace_labels is not None
        f = _oflow(u.flow)
        pods = tuple(p for p in (f.src, f.dst) if isinstance(p, Pod))
        exts = tuple(p for p in (f.src, f.dst) if isinstance(p, Ext))
        w = World(u.namespace_labels, pods, exts)
        cal = calico_verdict(w, policies, tiers, f, u.direction)
        cil = cilium_verdict(w, t.direct, f, u.direction, ver)
        assert cal[0] != cil[0], (str(u), cal, cil)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(policy_sets(), worlds(), st.sampled_from(sorted(VERSIONS)))
def test_exact_translations_agree_and_conflicts_have_a_differing_flow(
    pset: tuple[list[dict[str, Any]], list[dict[str, Any]]], world: World, version: str
) -> None:
    policies, tiers = pset
    t = translate(parse_policy_set(policies, tiers), cilium_version=version, pod_cidrs=[POD_CIDR])
    conflicts = [u for u in t.untranslatable if u.flow is not None]
    if t.ok:
        event("exact")
        _check_exact(world, policies, tiers, t)
    elif conflicts:
        event("order conflict reported")
    else:
        event("untranslatable fields only")
    _check_conflicts(policies, tiers, t)
