"""Reading a kubeconfig file as user input: every defect is a one-line :class:`KubeConfigurationError` naming the
file, the entry and what was expected, found before lightkube would crash on it (or fail at the first request).

Checked: the file is a YAML mapping (duplicate keys and alias bombs refused by the same loader as snapshots);
``clusters``/``contexts``/``users`` are lists of named entries; the context to use exists and names a cluster (and
user) that exist; files it refers to (certificate-authority, client-certificate, client-key, tokenFile) exist.
Exec credential plugins of ``client.authentication.k8s.io/v1`` are accepted: the protocol is v1beta1's, with
``interactiveMode`` required; lightkube knows only v1beta1, so the entry is handed over as v1beta1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cni_migrate.kube.errors import KubeConfigurationError
from cni_migrate.yamlsafe import YamlInputError, load_one

EXEC_V1 = "client.authentication.k8s.io/v1"
EXEC_V1BETA1 = "client.authentication.k8s.io/v1beta1"
_FILE_FIELDS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}


def read_kubeconfig(path: Path) -> dict[str, Any]:
    """The file's content as a dict lightkube can load, after the checks above (``context`` checked later)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise KubeConfigurationError(f"{path}: cannot read the kubeconfig: {e.strerror}") from e
    try:
        doc = load_one(raw)
    except YamlInputError as e:
        where = f"{path}:{e.line}" if e.line is not None else str(path)
        raise KubeConfigurationError(f"{where}: not a valid kubeconfig: {e.message}") from e
    if doc is None:
        raise KubeConfigurationError(f"{path}: the kubeconfig is empty (expected clusters, contexts and users)")
    if not isinstance(doc, dict):
        raise KubeConfigurationError(f"{path}: a kubeconfig must be a YAML mapping, found a {type(doc).__name__}")
    for key in ("clusters", "contexts", "users"):
        entries = doc.get(key)
        if entries is None:
            doc[key] = []
            continue
        if not isinstance(entries, list):
            raise KubeConfigurationError(f"{path}: field {key}: expected a list of named entries")
        inner = key[:-1]
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise KubeConfigurationError(f"{path}: {key}[{i}]: expected an entry with a name and a {inner}")
            body = entry.get(inner)
            if body is None:
                entry[inner] = {}
            elif not isinstance(body, dict):
                raise KubeConfigurationError(f"{path}: {key}[{i}] ({entry['name']}): field {inner}: expected a mapping")
    cur = doc.get("current-context")
    if cur is not None and not isinstance(cur, str):
        raise KubeConfigurationError(f"{path}: field current-context: expected a context name")
    for u in doc["users"]:
        ex = u["user"].get("exec")
        if isinstance(ex, dict) and ex.get("apiVersion") == EXEC_V1:
            ex["apiVersion"] = EXEC_V1BETA1
    return doc


def check_context(path: Path, doc: dict[str, Any], context: str | None) -> None:
    """The context that will be used exists and everything it refers to does too."""
    name = context or doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc["contexts"]}
    if not name:
        raise KubeConfigurationError(
            f"{path}: no current-context is set and no --context was given"
            + (f" (contexts: {', '.join(sorted(contexts))})" if contexts else " (the file defines no contexts)")
        )
    if name not in contexts:
        raise KubeConfigurationError(
            f"{path}: context {name!r} is not defined"
            + (f" (contexts: {', '.join(sorted(contexts))})" if contexts else " (the file defines no contexts)")
        )
    ctx = contexts[name]
    entries = {"cluster": {c["name"]: c["cluster"] for c in doc["clusters"]}}
    entries["user"] = {u["name"]: u["user"] for u in doc["users"]}
    for kind in ("cluster", "user"):
        ref = ctx.get(kind)
        if ref is None and kind == "user":
            continue
        if not isinstance(ref, str) or ref not in entries[kind]:
            raise KubeConfigurationError(
                f"{path}: context {name!r}: field {kind}: {ref!r} is not among the file's {kind}s"
                if ref is not None
                else f"{path}: context {name!r}: field {kind}: expected the name of a {kind}"
            )
        body = entries[kind][ref]
        if kind == "cluster" and not isinstance(body.get("server"), str):
            raise KubeConfigurationError(f"{path}: cluster {ref!r}: field server: expected the API server URL")
        for field in _FILE_FIELDS[kind]:
            value = body.get(field)
            if value is None:
                continue
            file = Path(str(value)).expanduser()
            if not file.is_absolute():
                file = path.parent / file
            if not file.is_file():
                raise KubeConfigurationError(f"{path}: {kind} {ref!r}: field {field}: no such file {file}")
        ex = body.get("exec") if kind == "user" else None
        if ex is not None and (not isinstance(ex, dict) or not isinstance(ex.get("command"), str)):
            raise KubeConfigurationError(f"{path}: user {ref!r}: field exec: expected a mapping with a command")
