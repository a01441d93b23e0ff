"""Calico selectors as Cilium label selectors: the expression in disjunctive normal form, one Kubernetes-style
selector per alternative (``||`` becomes several selectors, ``has()`` Exists, ``in {}`` In, ``!`` pushed down
to NotIn/DoesNotExist). ``contains``, ``starts with`` and ``ends with`` have no equivalent and are reported.

Keys are rewritten to the labels Cilium gives an endpoint: pod labels under the ``k8s`` source, Calico's
``projectcalico.org/namespace`` and ``projectcalico.org/serviceaccount`` as Cilium's namespace and
service-account labels, namespace labels as ``io.cilium.k8s.namespace.labels.<key>``. Labels Cilium leaves out
of identities by default (``pod-template-hash``, ``*kubernetes.io*`` other than ``app.kubernetes.io``, ...)
cannot be selected on and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cni_migrate.analysis.selectors import All, And, Compare, Expr, Has, Not, Or

NS_KEY = "k8s:io.kubernetes.pod.namespace"
SA_KEY = "k8s:io.cilium.k8s.policy.serviceaccount"
NS_LABEL_PREFIX = "k8s:io.cilium.k8s.namespace.labels."
MAX_ALTERNATIVES = 64

_FILTERED_EXACT = {"pod-template-generation", "pod-template-hash", "controller-revision-hash", "etcd_node"}
_FILTERED_PREFIXES = ("io.kubernetes", "kubernetes.io", "beta.kubernetes.io", "k8s.io", "annotation")


class NoEquivalent(ValueError):
    """A selector Cilium cannot express; the message names the sub-expression."""


@dataclass(frozen=True)
class Req:
    key: str
    op: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


Conj = tuple[Req, ...]
FALSE: list[Conj] = []
TRUE: list[Conj] = [()]


def _filtered(key: str) -> bool:
    if key in _FILTERED_EXACT or key.startswith(_FILTERED_PREFIXES):
        return True
    return "kubernetes.io" in key and not key.startswith("app.kubernetes.io/")


def pod_key(key: str) -> str:
    if key == "projectcalico.org/namespace":
        return NS_KEY
    if key == "projectcalico.org/serviceaccount":
        return SA_KEY
    if key.startswith("projectcalico.org/"):
        raise NoEquivalent(f"Calico's own label {key!r} has no Cilium endpoint label")
    if _filtered(key):
        raise NoEquivalent(f"label {key!r} is not part of Cilium identities by default, so it cannot be selected on")
    return f"k8s:{key}"


def namespace_key(key: str) -> str:
    if key in ("projectcalico.org/name", "kubernetes.io/metadata.name"):
        return NS_KEY
    if key.startswith("projectcalico.org/"):
        raise NoEquivalent(f"Calico's own namespace label {key!r} has no Cilium equivalent")
    return NS_LABEL_PREFIX + key


def _literal(e: Expr, negate: bool, keymap: Any) -> list[Conj]:
    if isinstance(e, All):
        return FALSE if negate else TRUE
    if isinstance(e, Has):
        return [(Req(keymap(e.key), "DoesNotExist" if negate else "Exists"),)]
    assert isinstance(e, Compare)
    if e.op in ("contains", "starts with", "ends with"):
        raise NoEquivalent(f"'{e.key} {e.op} \"{e.values[0]}\"' has no Cilium label selector equivalent")
    positive = e.op in ("==", "in")
    if negate:
        positive = not positive
    key = keymap(e.key)
    if not e.values:  # 'in {}' matches nothing, 'not in {}' everything
        return FALSE if positive else TRUE
    return [(Req(key, "In" if positive else "NotIn", tuple(sorted(set(e.values)))),)]


def _dnf(e: Expr, negate: bool, keymap: Any) -> list[Conj]:
    if isinstance(e, Not):
        return _dnf(e.expr, not negate, keymap)
    if isinstance(e, And | Or):
        conjunctive = isinstance(e, And) != negate
        parts = [_dnf(x, negate, keymap) for x in e.items]
        if not conjunctive:
            out = [c for p in parts for c in p]
        else:
            out = TRUE
            for p in parts:
                out = [m for a in out for b in p if (m := _merge(a, b)) is not None]
                if len(out) > MAX_ALTERNATIVES:
                    break
        if len(out) > MAX_ALTERNATIVES:
            raise NoEquivalent(f"the selector expands to more than {MAX_ALTERNATIVES} alternatives")
        return out
    return _literal(e, negate, keymap)


def _merge(a: Conj, b: Conj) -> Conj | None:
    """The conjunction of two conjunctions, or None if contradictory (kept simple: same-key checks only)."""
    reqs = list(dict.fromkeys((*a, *b)))
    by_key: dict[str, list[Req]] = {}
    for r in reqs:
        by_key.setdefault(r.key, []).append(r)
    for rs in by_key.values():
        ops = {r.op for r in rs}
        if "DoesNotExist" in ops and (ops & {"Exists", "In"}):
            return None
        ins = [set(r.values) for r in rs if r.op == "In"]
        if ins:
            common = set.intersection(*ins)
            for r in rs:
                if r.op == "NotIn":
                    common -= set(r.values)
            if not common:
                return None
    return tuple(reqs)


def to_dnf(expr: Expr, keymap: Any) -> list[Conj]:
    return _dnf(expr, False, keymap)


def conj_and(a: list[Conj], b: list[Conj]) -> list[Conj]:
    out = [m for x in a for y in b if (m := _merge(x, y)) is not None]
    if len(out) > MAX_ALTERNATIVES:
        raise NoEquivalent(f"the selectors combine to more than {MAX_ALTERNATIVES} alternatives")
    return out


def has_key(c: Conj, key: str) -> bool:
    return any(r.key == key for r in c)


def to_label_selector(c: Conj) -> dict[str, Any]:
    """A Kubernetes-style selector: single-value In as matchLabels, the rest as matchExpressions."""
    match_labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    for r in c:
        if r.op == "In" and len(r.values) == 1 and r.key not in match_labels:
            match_labels[r.key] = r.values[0]
        elif r.op in ("In", "NotIn"):
            exprs.append({"key": r.key, "operator": r.op, "values": list(r.values)})
        else:
            exprs.append({"key": r.key, "operator": r.op})
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if exprs:
        out["matchExpressions"] = exprs
    return out
