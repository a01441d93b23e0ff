"""Read snapshots: whatever ``kubectl get ... -o yaml|json`` prints, a file or a directory of them.

Accepted per file: a ``List`` (``kind: List`` or ``*List``), multi-document YAML, a single object, JSON.
A directory is read recursively (``*.yaml``, ``*.yml``, ``*.json``), in sorted order. A directory captured by
``cni-migrate snapshot`` also has a manifest (:data:`MANIFEST_NAME`) saying which kinds were listed, so an
empty list there means "none" rather than "not captured".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cni_migrate.facts.gcpause import gc_paused
from cni_migrate.facts.objects import InvalidObject, KindRef, Obj, ObjectStore
from cni_migrate.yamlsafe import YamlInputError, load_all, load_one

MANIFEST_NAME = "cni-migrate-snapshot.yaml"
MANIFEST_KIND = "CniMigrateSnapshot"
MANIFEST_API_VERSION = "cni-migrate.io/v1"

_SUFFIXES = {".yaml", ".yml", ".json"}


class SnapshotError(Exception):
    """Bad snapshot input: names the file (and line where known) and what was expected."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def load_snapshot(path: Path | str) -> ObjectStore:
    p = Path(path)
    if not p.exists():
        raise SnapshotError(p, "no such file or directory (expected a kubectl -o yaml/json file or a directory)")
    store = ObjectStore(location=str(p))
    files = [p] if p.is_file() else _snapshot_files(p)
    if not files:
        raise SnapshotError(p, "directory holds no .yaml, .yml or .json files")
    with gc_paused(freeze=True):  # the objects stay alive for the whole command
        for f in files:
            if f.name == MANIFEST_NAME:
                _read_manifest(f, store)
                continue
            for batch in _batches_in_file(f):
                try:
                    store.add_all(batch)
                except InvalidObject as e:
                    raise SnapshotError(f, str(e)) from e
                store.origins.append((str(f), batch))
    return store


def _snapshot_files(directory: Path) -> list[Path]:
    try:
        return sorted(f for f in directory.rglob("*") if f.is_file() and f.suffix in _SUFFIXES)
    except OSError as e:
        raise SnapshotError(directory, f"cannot read directory: {e.strerror}") from e


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SnapshotError(path, f"cannot read file: {e.strerror}") from e


def _batches_in_file(path: Path) -> Iterator[list[Any]]:
    """The objects of each document in a file, a list per document (a List's items, or one object)."""
    data = _read_bytes(path)
    stripped = data.lstrip()
    if path.suffix == ".json" or stripped[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise SnapshotError(path, f"malformed JSON: {e.msg}", line=e.lineno) from e
        except RecursionError as e:  # pragma: no cover - orjson stops at 1024 levels itself
            raise SnapshotError(path, "JSON nested too deep to read") from e
        yield _flatten(doc, path)
        return
    try:
        for doc in load_all(data):
            if doc is not None:
                yield _flatten(doc, path)
    except YamlInputError as e:
        raise SnapshotError(path, e.message, line=e.line) from e


def _flatten(doc: Any, path: Path) -> list[Any]:
    if isinstance(doc, list):  # a bare JSON array of objects
        return [o for item in doc for o in _flatten(item, path)]
    if not isinstance(doc, dict):
        raise SnapshotError(path, f"expected a Kubernetes object or List, found a {type(doc).__name__}")
    kind = doc.get("kind")
    items = doc.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        if any(isinstance(i, dict) and str(i.get("kind", "")).endswith("List") for i in items[:1]):
            return [o for item in items for o in _flatten(item, path)]
        return items
    return [doc]


def _read_manifest(path: Path, store: ObjectStore) -> None:
    try:
        doc = load_one(_read_bytes(path))
    except YamlInputError as e:
        raise SnapshotError(path, f"malformed snapshot manifest: {e.message}", line=e.line) from e
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        raise SnapshotError(path, f"expected kind {MANIFEST_KIND}")
    listed = doc.get("listed") or []
    if not isinstance(listed, list):
        raise SnapshotError(path, "field 'listed' must be a list of {group, kind}")
    for entry in listed:
        if not isinstance(entry, dict) or "kind" not in entry:
            raise SnapshotError(path, "each entry of 'listed' needs 'kind' (and 'group')")
        store.mark_listed(KindRef(str(entry.get("group", "")), str(entry["kind"])))
    version = doc.get("serverVersion")
    if isinstance(version, str):
        store.server_version = version


def manifest_document(store_listed: list[KindRef], server_version: str | None, captured_at: str) -> Obj:
    return {
        "apiVersion": MANIFEST_API_VERSION,
        "kind": MANIFEST_KIND,
        "capturedAt": captured_at,
        "serverVersion": server_version,
        "listed": [{"group": r.group, "kind": r.kind} for r in sorted(store_listed)],
    }
