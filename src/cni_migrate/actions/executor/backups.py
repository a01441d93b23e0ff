"""Object backups: one YAML file per object, written once, checksummed, and restored in dependency order.

A backup file is written atomically (temporary file, fsync, rename) and never overwritten: the first saved state
of an object is the one a rollback needs, so a resumed or repeated backup action keeps the existing file (and
says so). Restores strip what the server sets (resourceVersion, uid, creationTimestamp, managedFields,
generation, status, ownerReferences to objects that no longer exist) and re-create objects in the order their
dependencies need: CRDs, namespaces, RBAC, configuration, workloads, then custom resources; finalizers are put
back last, once everything exists, so a restored object is never stuck terminating half-way.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

# Fields the API server owns: a restored object must not carry them.
SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")
SERVER_METADATA_DELETION = ("deletionTimestamp", "deletionGracePeriodSeconds")

# Restore order by kind: what others depend on first (unknown kinds, i.e. custom resources, after workloads).
_ORDER = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "PriorityClass": 2,
    "ServiceAccount": 3,
    "ClusterRole": 4,
    "Role": 4,
    "ClusterRoleBinding": 5,
    "RoleBinding": 5,
    "ConfigMap": 6,
    "Secret": 6,
    "Service": 7,
    "PodDisruptionBudget": 8,
    "DaemonSet": 9,
    "Deployment": 9,
    "StatefulSet": 9,
    "ValidatingWebhookConfiguration": 11,
    "MutatingWebhookConfiguration": 11,
    "APIService": 11,
}
_CUSTOM = 10


def restore_rank(obj: Obj) -> tuple[int, str, str, str]:
    meta = obj.get("metadata") or {}
    return (_ORDER.get(str(obj.get("kind")), _CUSTOM), str(obj.get("kind")), meta.get("namespace") or "", meta["name"])


def object_key(obj: Obj) -> str:
    api = str(obj.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    return f"{group}/{obj.get('kind')}/{meta.get('namespace') or ''}/{meta.get('name')}"


def file_name(obj: Obj) -> str:
    api = str(obj.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0] if "/" in api else "core"
    meta = obj.get("metadata") or {}
    parts = [group, str(obj.get("kind")), meta.get("namespace") or "_cluster", str(meta.get("name"))]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "__".join(parts)) + ".yaml"


def is_controlled(obj: Obj) -> bool:
    """Owned by a controller (a DaemonSet's pods, a Deployment's ReplicaSets): re-created by its owner, so it is
    neither restored nor swept by name on its own."""
    return any(o.get("controller") for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


@dataclass(frozen=True)
class SavedBackup:
    key: str
    path: Path
    sha256: str
    created: bool  # False: the file already existed (kept, never overwritten)


def save(directory: Path, obj: Obj) -> SavedBackup:
    """Write ``obj`` (as read from the server, finalizers included) unless its backup already exists."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(obj)
    if path.exists():
        return SavedBackup(object_key(obj), path, sha256_of(path), created=False)
    text = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)
    return SavedBackup(object_key(obj), path, hashlib.sha256(text.encode()).hexdigest(), created=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path) -> Obj:
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
        raise ValueError(f"{path}: not a Kubernetes object")
    return doc


def for_restore(obj: Obj) -> tuple[Obj, list[str]]:
    """The object as it can be created again, and the finalizers to put back once everything exists."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for k in (*SERVER_METADATA, *SERVER_METADATA_DELETION):
        meta.pop(k, None)
    meta.pop("ownerReferences", None)
    finalizers = list(meta.pop("finalizers", None) or [])
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    if out.get("kind") == "Service":
        spec = out.get("spec") or {}
        # the cluster IP is kept (clients may have it cached); allocated node ports are kept too
        spec.pop("clusterIPs", None) if spec.get("clusterIP") in (None, "None") else None
    return out, finalizers


def ordered(objs: Iterable[Obj]) -> list[Obj]:
    return sorted(objs, key=restore_rank)
