"""Generic object reads and writes by ``apiVersion``/``kind`` with an explicit retry policy per request.

The executor writes any kind a plan names (built-in or custom), so this layer maps ``(apiVersion, kind)`` to a
REST path through discovery (cached per group version) and speaks JSON to the API server through the client
library's connection (same TLS, auth and proxy settings as every other request).

Retries are decided per request, because a blind retry of a write is only safe when the write is idempotent:

* ``idempotent=True`` (GET, server-side apply, merge patches that set values, DELETE): retried on 429 (honouring
  Retry-After), 5xx and any transport error.
* ``idempotent=False`` (create, PUT with resourceVersion, JSON patches that remove, evictions): retried only when
  the request provably did not reach the server (connection refused, 429/503 answered before processing); a
  connection reset or a timeout after sending raises :class:`AmbiguousWrite`, and the caller re-reads to find
  out whether the write landed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx2 as httpx

from cni_migrate.kube.errors import (
    AmbiguousWrite,
    ApiStatusError,
    ClusterUnreachable,
    Conflict,
    EvictionRefused,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
)
from cni_migrate.kube.types import ResourceType

Obj = dict[str, Any]

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Answered before the request was processed: safe to retry even a non-idempotent write.
NOT_PROCESSED_STATUS = frozenset({429, 503})

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

FIELD_MANAGER = "cni-migrate"


@dataclass
class RequestStats:
    """Counts per verb, for the benchmark's requests-per-node figure and the journal-overhead measurement."""

    by_verb: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, verb: str, seconds: float) -> None:
        with self.lock:
            self.by_verb[verb] = self.by_verb.get(verb, 0) + 1
            self.seconds += seconds

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())


def _status_message(resp: httpx.Response) -> tuple[str, dict[str, Any]]:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase, {}
    if isinstance(body, dict):
        return str(body.get("message") or resp.reason_phrase), body
    return resp.reason_phrase, {}


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("Retry-After")
    if value is None:
        return default
    try:
        return min(max(float(value), 0.05), 30.0)
    except ValueError:
        return default


def error_for(code: int, what: str, message: str, body: dict[str, Any]) -> KubeError:
    if code == 404:
        return NotFound(f"{what}: not found ({message})")
    if code == 409:
        return Conflict(f"{what}: conflict ({message})")
    if code in (401, 403):
        return Forbidden(f"{what}: forbidden ({message})")
    if code == 422:
        return Invalid(f"{what}: invalid ({message})")
    if code == 429:
        causes = ((body.get("details") or {}).get("causes")) or []
        budgets = [str(c.get("message", "")) for c in causes if c.get("type") == "DisruptionBudget"]
        if budgets or "disruption budget" in message.lower():
            return EvictionRefused(f"{what}: {message}", budgets or [message])
    return ApiStatusError(code, f"{what}: {message}")


class Rest:
    """JSON requests over an ``httpx.Client`` whose base URL is the API server (the client library's)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        retries: int = 6,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._discovery: dict[str, dict[str, ResourceType]] = {}
        self._discovery_lock = threading.Lock()
        self.stats = RequestStats()

    # --- the request loop --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> Obj:
        delay = self._backoff
        content = None if body is None else json.dumps(body).encode()
        headers = {"Accept": accept}
        if content is not None:
            headers["Content-Type"] = content_type
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            t0 = time.perf_counter()
            try:
                resp = self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.ConnectError as e:  # never reached the server: always safe to retry
                self.stats.add(method, time.perf_counter() - t0)
                if last:
                    raise ClusterUnreachable(f"{what}: cannot reach the API server ({e})") from e
            except httpx.TransportError as e:
                self.stats.add(method, time.perf_counter() - t0)
                if not idempotent:
                    raise AmbiguousWrite(f"{what}: the connection failed after the request was sent ({e!r})") from e
                if last:
                    raise ClusterUnreachable(f"{what}: cannot reach the API server ({e!r})") from e
            else:
                self.stats.add(method, time.perf_counter() - t0)
                if resp.status_code < 400:
                    if not resp.content:
                        return {}
                    try:
                        out: Obj = resp.json()
                    except ValueError as e:
                        if idempotent and not last:
                            delay = self._pause(delay)
                            continue
                        raise ApiStatusError(resp.status_code, f"{what}: the answer is not JSON") from e
                    return out
                message, status = _status_message(resp)
                err = error_for(resp.status_code, what, message, status)
                if isinstance(err, EvictionRefused):
                    raise err  # a PodDisruptionBudget said no: the caller decides when to ask again
                retryable = resp.status_code in (RETRYABLE_STATUS if idempotent else NOT_PROCESSED_STATUS)
                if not retryable or last:
                    if not idempotent and resp.status_code in RETRYABLE_STATUS - NOT_PROCESSED_STATUS:
                        raise AmbiguousWrite(f"{what}: HTTP {resp.status_code} ({message}); it may have landed")
                    raise err
                delay = self._pause(_retry_after(resp, delay), grow=False) if resp.status_code == 429 else delay
                if resp.status_code != 429:
                    delay = self._pause(delay)
                continue
            delay = self._pause(delay)
        raise KubeError(f"{what}: retries exhausted")  # pragma: no cover - the loop returns or raises

    def _pause(self, delay: float, *, grow: bool = True) -> float:
        with self.stats.lock:
            self.stats.retries += 1
        self._sleep(delay)
        return min(delay * 2, 5.0) if grow else self._backoff

    # --- discovery -----------------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceType:
        """The REST resource of a kind; raises :class:`NotFound` when the server does not serve it."""
        kinds = self._kinds(api_version)
        rt = kinds.get(kind)
        if rt is None:
            self.forget(api_version)  # a CRD may have been created since the last look
            rt = self._kinds(api_version).get(kind)
        if rt is None:
            raise NotFound(f"the API server does not serve {kind} in {api_version}")
        return rt

    def served(self, api_version: str) -> dict[str, ResourceType]:
        return dict(self._kinds(api_version))

    def forget(self, api_version: str | None = None) -> None:
        with self._discovery_lock:
            if api_version is None:
                self._discovery.clear()
            else:
                self._discovery.pop(api_version, None)

    def _kinds(self, api_version: str) -> dict[str, ResourceType]:
        with self._discovery_lock:
            cached = self._discovery.get(api_version)
        if cached is not None:
            return cached
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        group, _, version = api_version.rpartition("/")
        try:
            doc = self.request("GET", path, what=f"discovery {api_version}", idempotent=True)
        except NotFound:
            doc = {}
        kinds: dict[str, ResourceType] = {}
        for r in doc.get("resources") or []:
            if "/" in r.get("name", ""):
                continue
            kinds[r["kind"]] = ResourceType(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
        with self._discovery_lock:
            self._discovery[api_version] = kinds
        return kinds

    def groups(self) -> list[str]:
        """Every served group version (preferred versions only), core first."""
        doc = self.request("GET", "/apis", what="discovery /apis", idempotent=True)
        out = ["v1"]
        for g in doc.get("groups") or []:
            gv = (g.get("preferredVersion") or {}).get("groupVersion")
            if gv:
                out.append(str(gv))
        return out

    # --- paths ---------------------------------------------------------------------------------------------

    @staticmethod
    def path(rt: ResourceType, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
        if rt.namespaced and namespace:
            prefix += f"/namespaces/{quote(namespace, safe='')}"
        p = f"{prefix}/{rt.plural}"
        if name is not None:
            p += f"/{quote(name, safe='')}"
        if sub:
            p += f"/{sub}"
        return p

    # --- typed operations ----------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        rt = self.resource(api_version, kind)
        try:
            return self.request(
                "GET", self.path(rt, namespace, name), what=_what("get", kind, namespace, name), idempotent=True
            )
        except NotFound:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        rt = self.resource(api_version, kind)
        return list(
            self.iter_list(rt, namespace=namespace, label_selector=label_selector, field_selector=field_selector)
        )

    def iter_list(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[Obj]:
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        while True:
            doc = self.request(
                "GET", self.path(rt, namespace), params=params, what=f"list {rt.plural}", idempotent=True
            )
            for item in doc.get("items") or []:
                item.setdefault("apiVersion", rt.api_version)
                item.setdefault("kind", rt.kind)
                yield item
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token

    def apply(self, obj: Obj, *, force: bool = True, dry_run: bool = False) -> Obj:
        """Server-side apply (idempotent: the same object applied twice is one change)."""
        meta = obj.get("metadata") or {}
        rt = self.resource(str(obj["apiVersion"]), str(obj["kind"]))
        params = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request(
            "PATCH",
            self.path(rt, meta.get("namespace"), meta["name"]),
            params=params,
            body=obj,
            content_type=PATCH_TYPES["apply"],
            what=_what("apply", rt.kind, meta.get("namespace"), meta["name"]),
            idempotent=True,
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Any,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str = "",
        idempotent: bool = True,
    ) -> Obj:
        rt = self.resource(api_version, kind)
        params = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            params["dryRun"] = "All"
        return self.request(
            "PATCH",
            self.path(rt, namespace, name, subresource),
            params=params,
            body=patch,
            content_type=PATCH_TYPES[patch_type],
            what=_what("patch", kind, namespace, name),
            idempotent=idempotent and patch_type != "json",
        )

    def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Create (not idempotent: an :class:`AmbiguousWrite` means "re-read to find out")."""
        meta = obj.get("metadata") or {}
        rt = self.resource(str(obj["apiVersion"]), str(obj["kind"]))
        params = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            params["dryRun"] = "All"
        return self.request(
            "POST",
            self.path(rt, meta.get("namespace")),
            params=params,
            body=obj,
            what=_what("create", rt.kind, meta.get("namespace"), meta.get("name", "")),
            idempotent=False,
        )

    def replace(self, obj: Obj, *, subresource: str = "") -> Obj:
        """PUT guarded by ``metadata.resourceVersion``: a stale version is a :class:`Conflict`."""
        meta = obj["metadata"]
        rt = self.resource(str(obj["apiVersion"]), str(obj["kind"]))
        return self.request(
            "PUT",
            self.path(rt, meta.get("namespace"), meta["name"], subresource),
            params={"fieldManager": FIELD_MANAGER},
            body=obj,
            what=_what("update", rt.kind, meta.get("namespace"), meta["name"]),
            idempotent=False,
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
        dry_run: bool = False,
        uid: str | None = None,
    ) -> bool:
        """Delete; False when it was already gone. ``uid`` makes the delete apply to that object only (not to a
        re-created namesake)."""
        rt = self.resource(api_version, kind)
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        params = {"dryRun": "All"} if dry_run else None
        try:
            self.request(
                "DELETE",
                self.path(rt, namespace, name),
                params=params,
                body=body,
                what=_what("delete", kind, namespace, name),
                idempotent=True,
            )
        except NotFound:
            return False
        return True

    def evict(self, name: str, namespace: str, *, dry_run: bool = False) -> None:
        """The Eviction API (PodDisruptionBudgets respected): :class:`EvictionRefused` when a budget says no."""
        rt = self.resource("v1", "Pod")
        body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if dry_run:
            body["deleteOptions"] = {"dryRun": ["All"]}
        self.request(
            "POST",
            self.path(rt, namespace, name, "eviction"),
            body=body,
            what=f"evict pod {namespace}/{name}",
            idempotent=True,  # evicting an evicted pod is a 404, which the caller treats as done
        )


def _what(verb: str, kind: str, namespace: str | None, name: str) -> str:
    return f"{verb} {kind} {namespace + '/' if namespace else ''}{name}"
