"""Differential property test of the selector translation: for generated Calico selectors (every form Cilium can
express) and generated pods, Calico's match (selectors.calico_matches on Calico's endpoint labels) equals "some
translated Cilium selector matches" (cilium_eval.selector_matches on Cilium's endpoint labels).

Fixed example count and a recorded seed (``derandomize``): the same 600 cases every run.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni_migrate.analysis.policy.calico_eval import calico_labels
from cni_migrate.analysis.policy.cilium_eval import cilium_labels, selector_matches
from cni_migrate.analysis.policy.labels import pod_key, to_dnf, to_label_selector
from cni_migrate.analysis.policy.model import Endpoint, Namespace, Universe
from cni_migrate.analysis.selectors import All, And, Compare, Expr, Has, Not, Or, calico_matches

KEYS = ["app", "tier", "env", "projectcalico.org/namespace", "projectcalico.org/serviceaccount"]
VALUES = ["a", "b", "c", "ns1", "ns2", "sa1", "default"]

literal = st.one_of(
    st.just(All()),
    st.builds(Has, st.sampled_from(KEYS)),
    st.builds(
        lambda k, op, v: Compare(k, op, (v,)),
        st.sampled_from(KEYS),
        st.sampled_from(["==", "!="]),
        st.sampled_from(VALUES),
    ),
    st.builds(
        lambda k, op, vs: Compare(k, op, tuple(vs)),
        st.sampled_from(KEYS),
        st.sampled_from(["in", "not in"]),
        st.lists(st.sampled_from(VALUES), max_size=3),
    ),
)
exprs: st.SearchStrategy[Expr] = st.recursive(
    literal,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(lambda xs: And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=6,
)
pods = st.builds(
    lambda labels, ns, sa: Endpoint("p", ipaddress.ip_address("10.0.0.1"), ns, labels, sa),
    st.dictionaries(st.sampled_from(["app", "tier", "env"]), st.sampled_from(VALUES), max_size=3),
    st.sampled_from(["ns1", "ns2"]),
    st.sampled_from(["sa1", "default"]),
)
U = Universe({"ns1": Namespace("ns1", {}), "ns2": Namespace("ns2", {})}, (), (), ())


@settings(max_examples=600, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs, st.lists(pods, min_size=1, max_size=6))
def test_translated_selectors_match_exactly_the_same_pods(expr: Expr, eps: list[Endpoint]) -> None:
    selectors = [to_label_selector(c) for c in to_dnf(expr, pod_key)]
    for ep in eps:
        calico = calico_matches(expr, calico_labels(ep))
        cilium = any(selector_matches(s, cilium_labels(ep, U)) for s in selectors)
        assert calico == cilium, (expr, ep.labels, ep.namespace, ep.service_account, selectors)
