"""Facts layer: typed models of a cluster, loaded from a snapshot or a live API."""

from __future__ import annotations

from cni_migrate.facts.cluster import (
    PodStats,
    cilium_helm_releases,
    istio_facts,
    kube_proxy_facts,
    kubernetes_version,
    network_facts,
    node_facts,
    pdb_facts,
    policy_facts,
    workload_facts,
)
from cni_migrate.facts.cni import detect_cni
from cni_migrate.facts.gcpause import gc_paused
from cni_migrate.facts.model import ClusterFacts, Fact, SourceInfo
from cni_migrate.facts.objects import (
    CONFIGMAP,
    DAEMONSET,
    NAMESPACE,
    NODE,
    PDB,
    POD,
    KindRef,
    ObjectStore,
    calico,
)
from cni_migrate.facts.snapshot import SnapshotError, load_snapshot
from cni_migrate.facts.validate import FactInputError, validate_store

# Kinds without which whole groups of facts are unknown; a snapshot lacking one says so.
REQUIRED_KINDS: tuple[KindRef, ...] = (NODE, POD, DAEMONSET, CONFIGMAP, PDB)
# Required when Calico is found: without IPPools its pools and encapsulation are unknown.
CALICO_IPPOOL = KindRef("crd.projectcalico.org", "IPPool")

__all__ = [
    "ClusterFacts",
    "Fact",
    "FactInputError",
    "SnapshotError",
    "extract_facts",
    "facts_from_snapshot",
    "load_snapshot",
]


def extract_facts(store: ObjectStore, *, kind: str = "snapshot") -> ClusterFacts:
    """The facts of the objects in ``store``. A field of the wrong type or an impossible value raises
    :class:`SnapshotError` naming the file (or the live cluster), the object, the field and what was expected."""
    with gc_paused():
        try:
            validate_store(store)
            return _extract(store, kind)
        except FactInputError as e:
            where = (store.file_of(e.obj) if e.obj is not None else None) or store.location or "input"
            raise SnapshotError(where, str(e)) from e


def _extract(store: ObjectStore, kind: str) -> ClusterFacts:
    cni = detect_cni(store)
    pod_stats = PodStats.of(store)
    nodes = node_facts(store, pod_stats)
    source = SourceInfo(
        kind="live" if kind == "live" else "snapshot",
        location=store.location,
        objects=len(store),
        ignored_kinds=dict(store.ignored),
        missing_kinds=[str(r) for r in REQUIRED_KINDS if not store.has_listed(r)]
        + ([str(CALICO_IPPOOL)] if cni.calico is not None and not store.has_listed(*calico("IPPool")) else []),
    )
    return ClusterFacts(
        source=source,
        kubernetes_version=kubernetes_version(store),
        nodes=nodes,
        nodes_known=Fact.of(True, "Node objects")
        if store.has_listed(NODE)
        else Fact.missing("the input has no Node objects"),
        cni=cni,
        kube_proxy=kube_proxy_facts(store),
        network=network_facts(store, cni),
        pdbs=pdb_facts(store),
        workloads=workload_facts(store, pod_stats),
        policies=policy_facts(store),
        istio=istio_facts(store),
        cilium_helm_releases=cilium_helm_releases(store),
        kube_system_uid=_kube_system_uid(store),
    )


def _kube_system_uid(store: ObjectStore) -> Fact[str]:
    ns = store.get(NAMESPACE, None, "kube-system")
    uid = (ns.get("metadata") or {}).get("uid") if ns is not None else None
    if isinstance(uid, str) and uid:
        return Fact.of(uid, "Namespace kube-system metadata.uid")
    if ns is None:
        return Fact.missing("the input has no kube-system Namespace object")
    return Fact.missing("the kube-system Namespace in the input has no metadata.uid")


def facts_from_snapshot(path: str) -> ClusterFacts:
    return extract_facts(load_snapshot(path))
