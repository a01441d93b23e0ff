"""Calico's policy objects, and the namespaces, pods and service accounts they select, as the input of the policy
translation (``cni-migrate policy``, and the plans that carry the policies over to Cilium).

Read from an :class:`ObjectStore`, so a snapshot and the live cluster it was captured from give the same input.
Calico's policies are accepted from both API groups: ``crd.projectcalico.org/v1`` (what kubectl shows, Calico's
CRD storage) and ``projectcalico.org/v3`` (calicoctl, or the Calico API server). A cluster with the Calico API
server serves the same policies under both; each policy is kept once, the v3 copy preferred. In the CRD storage a
policy of the ``default`` tier may carry the tier as a name prefix (``default.allow-dns``) that the v3 API does not
show (``allow-dns``): both name the same policy.

Objects cni-migrate creates itself (label ``app.kubernetes.io/managed-by: cni-migrate``, e.g. the rolling plan's
temporary allow-all GlobalNetworkPolicy, or Cilium policies an earlier run created) are left out: they are not the
cluster's policies.
"""

from __future__ import annotations

from dataclasses import dataclass

from cni_migrate.facts.objects import (
    CALICO_GROUPS,
    CILIUM_CLUSTERWIDE_NETWORK_POLICY,
    CILIUM_NETWORK_POLICY,
    NAMESPACE,
    POD,
    SERVICE_ACCOUNT,
    KindRef,
    Obj,
    ObjectStore,
    dig,
    meta,
    name_of,
    namespace_of,
)

POLICY_KINDS = ("NetworkPolicy", "GlobalNetworkPolicy")
TIER_KIND = "Tier"
MANAGED_BY = ("app.kubernetes.io/managed-by", "cni-migrate")
V3_GROUP = "projectcalico.org"


@dataclass(frozen=True)
class CalicoPolicyObjects:
    """The raw objects the translation reads. ``listed``: the input listed Calico's policy kinds (in a snapshot
    without them, "no policies" is unknown, not a fact)."""

    policies: tuple[Obj, ...]
    tiers: tuple[Obj, ...]
    namespaces: tuple[Obj, ...]
    pods: tuple[Obj, ...]
    service_accounts: tuple[Obj, ...]
    listed: bool
    left_out: tuple[str, ...] = ()
    # Cilium policies the cluster has already, except cni-migrate's own: (kind, namespace or "", name)
    cilium_policies: frozenset[tuple[str, str, str]] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.policies


def _tier_of(obj: Obj) -> str:
    tier = dig(obj, "spec", "tier")
    return tier if isinstance(tier, str) and tier else "default"


def policy_key(obj: Obj) -> tuple[str, str, str]:
    """(kind, namespace, name) with the CRD storage's ``default.`` prefix of default-tier policies removed."""
    name = name_of(obj)
    if _tier_of(obj) == "default":
        name = name.removeprefix("default.")
    return (str(obj.get("kind")), namespace_of(obj), name)


def _is_managed(obj: Obj) -> bool:
    labels = meta(obj).get("labels")
    return isinstance(labels, dict) and labels.get(MANAGED_BY[0]) == MANAGED_BY[1]


def _one_copy(store: ObjectStore, kind: str) -> list[Obj]:
    """Objects of a Calico kind from both groups, each once; the v3 copy wins (it is listed first)."""
    ordered = sorted(CALICO_GROUPS, key=lambda g: g != V3_GROUP)
    seen: set[tuple[str, str, str]] = set()
    out: list[Obj] = []
    for group in ordered:
        for o in store.of(KindRef(group, kind)):
            k = policy_key(o) if kind != TIER_KIND else (kind, "", name_of(o))
            if k in seen:
                continue
            seen.add(k)
            out.append(o)
    return out


def calico_policy_objects(store: ObjectStore) -> CalicoPolicyObjects:
    policies: list[Obj] = []
    left_out: list[str] = []
    for kind in POLICY_KINDS:
        for o in _one_copy(store, kind):
            if _is_managed(o):
                ns = namespace_of(o)
                left_out.append(f"{kind} {ns + '/' if ns else ''}{name_of(o)}")
                continue
            policies.append(o)
    policies.sort(key=policy_key)
    kinds = [KindRef(g, k) for g in CALICO_GROUPS for k in POLICY_KINDS]
    return CalicoPolicyObjects(
        policies=tuple(policies),
        tiers=tuple(sorted(_one_copy(store, TIER_KIND), key=name_of)),
        namespaces=tuple(store.of(NAMESPACE)),
        pods=tuple(store.of(POD)),
        service_accounts=tuple(store.of(SERVICE_ACCOUNT)),
        listed=store.has_listed(*kinds),
        left_out=tuple(left_out),
        cilium_policies=frozenset(
            (str(o.get("kind")), namespace_of(o), name_of(o))
            for o in store.of(CILIUM_NETWORK_POLICY, CILIUM_CLUSTERWIDE_NETWORK_POLICY)
            if not _is_managed(o)
        ),
    )
