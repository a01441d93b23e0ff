"""An in-memory index of raw Kubernetes objects, however they were obtained (snapshot files or a live API).

Facts are extracted from an :class:`ObjectStore` only, so a live cluster and a snapshot captured from it yield
the same facts by construction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


def group_of(api_version: str) -> str:
    """The API group of an apiVersion (``apps/v1`` -> ``apps``; ``v1`` -> core, the empty string)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True, order=True)
class KindRef:
    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


# The kinds whose absence changes what can be known. Calico's resources are accepted from both the CRD group
# (``crd.projectcalico.org``, what kubectl shows) and the aggregated API (``projectcalico.org``, calicoctl).
CALICO_GROUPS = ("crd.projectcalico.org", "projectcalico.org")

NODE = KindRef("", "Node")
POD = KindRef("", "Pod")
NAMESPACE = KindRef("", "Namespace")
CONFIGMAP = KindRef("", "ConfigMap")
SECRET = KindRef("", "Secret")
SERVICE = KindRef("", "Service")
DAEMONSET = KindRef("apps", "DaemonSet")
DEPLOYMENT = KindRef("apps", "Deployment")
PDB = KindRef("policy", "PodDisruptionBudget")
NETWORK_POLICY = KindRef("networking.k8s.io", "NetworkPolicy")
CRD = KindRef("apiextensions.k8s.io", "CustomResourceDefinition")
TIGERA_INSTALLATION = KindRef("operator.tigera.io", "Installation")
MUTATING_WEBHOOK = KindRef("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
CILIUM_NETWORK_POLICY = KindRef("cilium.io", "CiliumNetworkPolicy")
CILIUM_CLUSTERWIDE_NETWORK_POLICY = KindRef("cilium.io", "CiliumClusterwideNetworkPolicy")
POD_CIDR_POOL = KindRef("ipam.cni-migrate.io", "PodCIDRPool")
SERVICE_ACCOUNT = KindRef("", "ServiceAccount")
CLUSTER_ROLE = KindRef("rbac.authorization.k8s.io", "ClusterRole")
CLUSTER_ROLE_BINDING = KindRef("rbac.authorization.k8s.io", "ClusterRoleBinding")


# Groups whose every kind the tool reads (CNI custom resources); other kinds are used only if listed in USED.
USED_GROUPS = frozenset((*CALICO_GROUPS, "operator.tigera.io", "cilium.io", "ipam.cni-migrate.io"))
USED = frozenset(
    (
        NODE,
        POD,
        NAMESPACE,
        CONFIGMAP,
        SECRET,
        SERVICE,
        DAEMONSET,
        DEPLOYMENT,
        PDB,
        NETWORK_POLICY,
        CRD,
        MUTATING_WEBHOOK,
        SERVICE_ACCOUNT,  # these three: finalizers tigera-operator puts on Calico's identity (tigera.io/cni-protector)
        CLUSTER_ROLE,
        CLUSTER_ROLE_BINDING,
    )
)


def is_used(ref: KindRef) -> bool:
    return ref in USED or ref.group in USED_GROUPS


def calico(kind: str) -> list[KindRef]:
    return [KindRef(g, kind) for g in CALICO_GROUPS]


@dataclass
class ObjectStore:
    """Objects by (group, kind); also records which kinds were listed, so "none found" differs from "not
    looked at"."""

    _by_kind: dict[KindRef, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    listed: set[KindRef] = field(default_factory=set)
    ignored: dict[str, int] = field(default_factory=dict)
    server_version: str | None = None
    location: str = ""
    # (apiVersion, kind) -> KindRef, or None for kinds the tool does not use: snapshots repeat a few kinds
    # 100,000s of times, so each is classified once.
    _refs: dict[tuple[Any, Any], KindRef | None] = field(default_factory=dict)
    _ns_index: dict[tuple[KindRef, str], list[Obj]] = field(default_factory=dict)
    # (file, the objects read from it): looked through only to name the file of a bad object in an error.
    origins: list[tuple[str, list[Obj]]] = field(default_factory=list)

    def add(self, obj: Obj) -> None:
        self.add_all((obj,))

    def add_all(self, objs: Iterable[Obj]) -> None:
        """Add objects; the hot path for snapshots of 100,000s of objects.

        Raises :class:`InvalidObject` for an item that is not an object with string apiVersion and kind.
        """
        items = objs if isinstance(objs, list) else list(objs)
        try:
            keys = {(o.get("apiVersion"), o.get("kind")) for o in items}
        except AttributeError as e:
            raise InvalidObject("expected every item to be an object with apiVersion and kind") from e
        except TypeError as e:  # a list or mapping where apiVersion or kind should be a string
            raise InvalidObject("expected apiVersion and kind of every item to be strings") from e
        for key in keys:
            if key not in self._refs:
                if not isinstance(key[0], str) or not isinstance(key[1], str) or not key[1]:
                    bad = next(o for o in items if (o.get("apiVersion"), o.get("kind")) == key)
                    md = bad.get("metadata")
                    name = md.get("name", "?") if isinstance(md, dict) else "?"
                    raise InvalidObject(f"object {name!r} lacks apiVersion or kind (expected kubectl output)")
                candidate = KindRef(group_of(key[0]), key[1])
                self._refs[key] = candidate if is_used(candidate) else None
        if not items:
            return
        self._ns_index.clear()
        if len(keys) == 1:  # a kubectl List of one kind: no per-item work
            ref = self._refs[next(iter(keys))]
            if ref is None:
                only = next(iter(keys))
                self._ignore((str(only[0]), str(only[1])), len(items))
            elif ref == SECRET:
                self._by_kind[ref].extend(strip_secret(o) for o in items)
                self.listed.add(ref)
            else:
                self._by_kind[ref].extend(items)
                self.listed.add(ref)
            return
        for obj in items:
            key = (obj["apiVersion"], obj["kind"])
            maybe = self._refs[key]
            if maybe is None:
                self._ignore(key, 1)
                continue
            self._by_kind[maybe].append(strip_secret(obj) if maybe == SECRET else obj)
            self.listed.add(maybe)

    def _ignore(self, key: tuple[str, str], count: int) -> None:
        label = str(KindRef(group_of(key[0]), key[1]))
        self.ignored[label] = self.ignored.get(label, 0) + count

    def mark_listed(self, ref: KindRef) -> None:
        self.listed.add(ref)

    def of(self, *refs: KindRef) -> list[Obj]:
        out: list[Obj] = []
        for r in refs:
            out.extend(self._by_kind.get(r, ()))
        return out

    def in_namespace(self, ref: KindRef, namespace: str) -> list[Obj]:
        """Objects of one kind in one namespace (memoized until the next add)."""
        key = (ref, namespace)
        if key not in self._ns_index:
            self._ns_index[key] = [
                o for o in self._by_kind.get(ref, ()) if (o.get("metadata") or {}).get("namespace") == namespace
            ]
        return self._ns_index[key]

    def has_listed(self, *refs: KindRef) -> bool:
        return any(r in self.listed for r in refs)

    def get(self, ref: KindRef, namespace: str | None, name: str) -> Obj | None:
        for o in self._by_kind.get(ref, ()):
            md = o.get("metadata") or {}
            if md.get("name") == name and (namespace is None or md.get("namespace") == namespace):
                return o
        return None

    def file_of(self, obj: Obj) -> str | None:
        for name, objs in self.origins:
            if any(o is obj for o in objs):
                return name
        return None

    def kinds(self) -> Iterator[tuple[KindRef, int]]:
        for ref, objs in sorted(self._by_kind.items()):
            yield ref, len(objs)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kind.values())


class InvalidObject(ValueError):
    """An input item that is not a Kubernetes object."""


def strip_secret(obj: Obj) -> Obj:
    """Keep only a Secret's identity: the tool never holds Secret contents, even if a snapshot has them."""
    md = obj.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": obj.get("type"),
        "metadata": {k: md[k] for k in ("name", "namespace", "labels") if k in md},
    }


def meta(obj: Obj) -> dict[str, Any]:
    md = obj.get("metadata")
    return md if isinstance(md, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace", ""))


def ref_text(obj: Obj) -> str:
    """How a source is named in facts: ``ConfigMap kube-system/kubeadm-config``."""
    ns = namespace_of(obj)
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{name_of(obj)}"


def dig(obj: Any, *path: str | int) -> Any:
    """Follow a path of keys/indexes; None where anything is missing or of the wrong shape."""
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or p >= len(cur):
                return None
            cur = cur[p]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        if cur is None:
            return None
    return cur
