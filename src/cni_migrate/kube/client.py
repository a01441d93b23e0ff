"""The one place that talks to the Kubernetes API (lightkube): connection, retries, conflicts, raw objects.

Everything above this layer sees plain dicts (``kubectl -o json`` shapes) and the errors defined here, never
lightkube's types, so the rest of the code can be tested on snapshots and swapped clients alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
from lightkube import ApiError, Client, ConfigError, KubeConfig

from cni_migrate.kube.errors import (
    ApiStatusError,
    ClusterUnreachable,
    Conflict,
    Forbidden,
    KubeConfigurationError,
    KubeError,
    NotFound,
)
from cni_migrate.kube.kubeconfig import check_context, read_kubeconfig
from cni_migrate.kube.rest import Rest
from cni_migrate.kube.types import ResourceType

__all__ = ["Cluster", "load_kubeconfig"]

Obj = dict[str, Any]
T = TypeVar("T")

# Status codes worth retrying: throttling and transient server trouble.
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def _translate(e: Exception, what: str) -> KubeError:
    if isinstance(e, ApiError):
        code = int(e.status.code or 0)
        msg = str(e.status.message or e)
        if code == 404:
            return NotFound(f"{what}: not found ({msg})")
        if code == 409:
            return Conflict(f"{what}: conflict ({msg})")
        if code in (401, 403):
            return Forbidden(f"{what}: forbidden ({msg})")
        return ApiStatusError(code, f"{what}: {msg}")
    if isinstance(e, httpx.HTTPError):
        return ClusterUnreachable(f"{what}: cannot reach the API server ({type(e).__name__}: {e})")
    return KubeError(f"{what}: {e}")


def _kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(kubeconfig: str | None, context: str | None) -> KubeConfig:
    """kubectl's rules: --kubeconfig, else every file in $KUBECONFIG (first one holding the context wins),
    else ~/.kube/config; --context, else the file's current-context."""
    paths = _kubeconfig_paths(kubeconfig)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        raise KubeConfigurationError(
            f"no kubeconfig found (looked at {', '.join(str(p) for p in paths)}); "
            "pass --kubeconfig, set KUBECONFIG, or use --snapshot"
        )
    errors = []
    for p in existing:
        try:
            doc = read_kubeconfig(p)
            if context is None or context in {c["name"] for c in doc["contexts"]}:
                check_context(p, doc, context)
                return KubeConfig.from_dict(doc, fname=p)
        except KubeConfigurationError as e:
            if kubeconfig is not None or len(existing) == 1:
                raise
            errors.append(str(e))
            continue
        except (ConfigError, OSError, ValueError, TypeError, KeyError) as e:
            raise KubeConfigurationError(f"{p}: not a valid kubeconfig: {e}") from e
    if context is not None:
        raise KubeConfigurationError(
            f"context {context!r} not found in {', '.join(str(p) for p in existing)}"
            + (f" ({'; '.join(errors)})" if errors else "")
        )
    raise KubeConfigurationError("; ".join(errors))


class Cluster:
    """A connection to one cluster. Reads return plain dicts; writes retry transient errors."""

    def __init__(self, client: Client, *, name: str = "", retries: int = 4, backoff: float = 0.5) -> None:
        self._client = client
        self.name = name
        self._retries = retries
        self._backoff = backoff
        self._rest: Rest | None = None

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None, *, timeout: float = 15.0) -> Cluster:
        cfg = load_kubeconfig(kubeconfig, context)
        try:
            single = cfg.get(context_name=context)
            client = Client(config=single, timeout=httpx.Timeout(timeout), field_manager="cni-migrate")
        except (ConfigError, ValueError) as e:
            raise KubeConfigurationError(f"kubeconfig: {e}") from e
        return cls(client, name=context or cfg.current_context or "")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return fn()
            except ApiError as e:
                if int(e.status.code or 0) not in RETRYABLE or attempt == self._retries:
                    raise _translate(e, what) from e
            except httpx.TransportError as e:
                if attempt == self._retries:
                    raise _translate(e, what) from e
            time.sleep(delay)
            delay *= 2
        raise KubeError(f"{what}: retries exhausted")  # pragma: no cover - loop always returns or raises

    # --- reads ---------------------------------------------------------------------------------------------

    def server_version(self) -> str:
        doc = self.rest().request("GET", "/version", what="GET /version", idempotent=True)
        return str(doc.get("gitVersion", ""))

    def list_objects(
        self, rt: ResourceType, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        # Plain JSON through the generic REST layer: lightkube's generic resource classes can be registered only
        # once per kind and process, so a second read of the cluster (the executor re-reads facts) would fail.
        return list(self.rest().iter_list(rt, namespace=namespace, label_selector=label_selector))

    def list_names(
        self, rt: ResourceType, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        """Only name, namespace and labels of each object: how Secrets are listed, never their data."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        path = f"{prefix}/namespaces/{namespace}/{rt.plural}" if namespace else f"{prefix}/{rt.plural}"

        doc = self.rest().request(
            "GET",
            path,
            params=params,
            what=f"list names of {rt.plural}",
            idempotent=True,
            accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        return [
            {
                "apiVersion": rt.api_version,
                "kind": rt.kind,
                "metadata": {
                    k: i["metadata"][k] for k in ("name", "namespace", "labels") if k in i.get("metadata", {})
                },
            }
            for i in doc.get("items") or []
        ]

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        what = f"get {rt.kind} {namespace + '/' if namespace else ''}{name}"
        return self.rest().request("GET", Rest.path(rt, namespace, name), what=what, idempotent=True)

    def api_resources(self) -> Iterator[ResourceType]:
        """Every listable resource type the server serves (discovery), preferred versions only."""

        def fetch(path: str) -> Obj:  # retried on throttling, 5xx and resets by the REST layer
            return self.rest().request("GET", path, what=f"GET {path}", idempotent=True)

        core = self._call("discovery /api/v1", lambda: fetch("/api/v1"))
        for r in core.get("resources") or []:
            if "/" not in r["name"] and "list" in r.get("verbs", []):
                yield ResourceType("", "v1", r["kind"], r["name"], bool(r.get("namespaced")))
        groups = self._call("discovery /apis", lambda: fetch("/apis"))
        for g in groups.get("groups") or []:
            pv = g.get("preferredVersion") or {}
            gv = pv.get("groupVersion")
            if not gv:
                continue
            try:
                doc = self._call(f"discovery /apis/{gv}", partial(fetch, f"/apis/{gv}"))
            except KubeError:
                continue  # an unavailable aggregated API must not stop discovery
            group, version = gv.split("/", 1)
            for r in doc.get("resources") or []:
                if "/" not in r["name"] and "list" in r.get("verbs", []):
                    yield ResourceType(group, version, r["kind"], r["name"], bool(r.get("namespaced")))

    # --- writes -------------------------------------------------------------------------------------------

    def rest(self) -> Rest:
        """Generic reads and writes by apiVersion/kind with per-request retry policy (see :mod:`.rest`)."""
        if self._rest is None:
            self._rest = Rest(self._client._client._client)
        return self._rest

    def raw(self) -> Client:
        """The underlying client, for code inside this package only."""
        return self._client

    def close(self) -> None:
        self._client.close()
