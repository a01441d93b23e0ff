"""The tigera-operator that installed Calico, and the finalizers of the old CNI that block deletion without it.

tigera-operator puts finalizers on the objects it manages (``tigera.io/cni-protector`` on calico-node's and
calico-cni-plugin's ServiceAccounts, ClusterRoles and ClusterRoleBindings; ``tigera.io/operator-cleanup`` on the
Installation) and removes them itself while it runs. Once it is gone, deleting such an object hangs until the
finalizers are cleared by hand: that is what an SRE looks for before removing Calico.
"""

from __future__ import annotations

from cni_migrate.facts.model import BlockingFinalizerFacts, Fact, TigeraOperatorFacts
from cni_migrate.facts.objects import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    DEPLOYMENT,
    POD,
    SERVICE_ACCOUNT,
    TIGERA_INSTALLATION,
    KindRef,
    ObjectStore,
    dig,
    meta,
    name_of,
    namespace_of,
    ref_text,
)
from cni_migrate.facts.podspec import container, containers, image_tag

OPERATOR_NAME = "tigera-operator"
# Finalizer name prefixes only the old CNI's own controllers remove.
OLD_CNI_FINALIZER_PREFIXES = ("tigera.io/", "operator.tigera.io/", "projectcalico.org/", "calico.")
# Where tigera-operator puts tigera.io/cni-protector; without these kinds in the input the list may be incomplete.
FINALIZER_KINDS: tuple[KindRef, ...] = (SERVICE_ACCOUNT, CLUSTER_ROLE, CLUSTER_ROLE_BINDING)


def tigera_operator(store: ObjectStore) -> Fact[TigeraOperatorFacts]:
    """The tigera-operator Deployment (any namespace), its image and version."""
    deps = sorted(
        (d for d in store.of(DEPLOYMENT) if name_of(d) == OPERATOR_NAME),
        key=lambda d: (namespace_of(d) != OPERATOR_NAME, namespace_of(d)),  # the usual namespace first
    )
    if not deps:
        if not store.has_listed(DEPLOYMENT):
            return Fact.missing("the input has no Deployment objects")
        return Fact.missing("no tigera-operator Deployment in the input (removed, or installed under another name)")
    d = deps[0]
    c = container(d, OPERATOR_NAME) or next(containers(d), None)
    image = str(c.get("image")) if c and c.get("image") else None
    tag = image_tag(image)
    where = f"image of {ref_text(d)}"
    version: Fact[str] = (
        Fact.of(tag, where)
        if tag
        else Fact.missing(f"{ref_text(d)} image {image!r} has no tag" if image else f"{ref_text(d)} has no image")
    )
    replicas = dig(d, "spec", "replicas")
    ready = dig(d, "status", "readyReplicas")
    return Fact.of(
        TigeraOperatorFacts(
            namespace=namespace_of(d),
            deployment=name_of(d),
            image=image,
            version=version,
            replicas=int(replicas) if isinstance(replicas, int) else None,
            ready_replicas=int(ready) if isinstance(ready, int) else (0 if "status" in d else None),
            source=ref_text(d),
        ),
        ref_text(d),
    )


def _is_old_cni_finalizer(name: str) -> bool:
    return name.startswith(OLD_CNI_FINALIZER_PREFIXES)


def blocking_finalizers(store: ObjectStore, *, calico_present: bool) -> Fact[list[BlockingFinalizerFacts]]:
    """Every object in the input (pods aside) with a finalizer of the old CNI, sorted by namespace, kind, name.

    Known when the kinds tigera-operator protects were in the input; otherwise the objects found so far are
    still reported, and the source says which kinds were not looked at.
    """
    found: list[BlockingFinalizerFacts] = []
    for ref, _count in store.kinds():
        if ref == POD:  # 100,000s of objects, and tigera-operator puts no finalizer on workload pods
            continue
        for o in store.of(ref):
            md = meta(o)
            fins = [str(f) for f in md.get("finalizers") or [] if _is_old_cni_finalizer(str(f))]
            if fins:
                found.append(
                    BlockingFinalizerFacts(
                        namespace=md.get("namespace") or None,
                        kind=ref.kind,
                        api_version=str(o.get("apiVersion") or ""),
                        name=name_of(o),
                        finalizers=fins,
                        deleting=bool(md.get("deletionTimestamp")),
                    )
                )
    found.sort(key=lambda f: (f.namespace or "", f.kind, f.name))
    prefixes = ", ".join(p.rstrip("/.") for p in OLD_CNI_FINALIZER_PREFIXES)
    source = f"metadata.finalizers of the input's objects ({prefixes})"
    if not calico_present:
        return Fact.of(found, source)
    relevant = [*FINALIZER_KINDS, *([TIGERA_INSTALLATION] if store.of(TIGERA_INSTALLATION) else [])]
    unlisted = [str(r) for r in relevant if not store.has_listed(r)]
    if not unlisted:
        return Fact.of(found, source)
    if found:
        return Fact.of(found, f"{source}; not in the input, so not checked: {', '.join(unlisted)}")
    return Fact.missing(
        f"the input has no {', '.join(unlisted)} objects, where tigera-operator puts tigera.io/cni-protector"
    )
