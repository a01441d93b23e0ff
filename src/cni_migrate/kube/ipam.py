"""Asynchronous Kubernetes access for the IPAM operator (``cni_migrate.actions.ipam_operator``).

The operator needs what :class:`cni_migrate.kube.client.Cluster` (synchronous, one request at a time) cannot give:
many concurrent requests under one client-side QPS budget (client-go's token bucket: ``qps`` tokens per second,
``burst`` at most), long-running watches, and conditional writes. Everything here returns plain dicts and raises
the errors of :mod:`cni_migrate.kube.client` (plus :class:`Invalid` and :class:`Gone`), like the rest of the package.

The connection (server, CA, client certificate, token, exec plugin) comes from lightkube's kubeconfig handling,
so kubectl's rules apply; inside a pod the ServiceAccount token is used and re-read when it rotates.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from lightkube import ConfigError, KubeConfig
from lightkube.config.client_adapter import ExecAuth, verify_cluster

from cni_migrate.kube.client import load_kubeconfig
from cni_migrate.kube.errors import (
    ApiStatusError,
    ClusterUnreachable,
    Conflict,
    Forbidden,
    KubeConfigurationError,
    KubeError,
    NotFound,
)
from cni_migrate.kube.http1 import ConnectFailed, HTTP1Pool, TransportFailed

Obj = dict[str, Any]
# The object's metadata only, in JSON (falls back to the full object on servers that cannot transform).
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"
JsonPatch = list[dict[str, Any]]
#: Called right before a request is sent: raises to cancel it, or returns the seconds it may take at most.
Guard = Callable[[], float]

POOL_GROUP = "ipam.cni-migrate.io"
POOL_VERSION = "v1alpha1"
POOL_PLURAL = "podcidrpools"
POOLS_PATH = f"/apis/{POOL_GROUP}/{POOL_VERSION}/{POOL_PLURAL}"
NODES_PATH = "/api/v1/nodes"

#: Retried with backoff by :meth:`AsyncKube.request` (never for non-idempotent POSTs that may have landed).
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class Invalid(ApiStatusError):
    """422: the request was refused: a validation error, or a JSON-patch ``test`` operation that did not hold."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message)


class Gone(KubeError):
    """410: the resourceVersion a watch resumed from is too old; list again."""


class RequestUncertain(ClusterUnreachable):
    """The request may or may not have been applied (timeout, connection dropped after sending)."""


def micro_time(t: float | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC) for wall-clock time ``t`` (default now)."""
    t = time.time() if t is None else t
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1e6):06d}Z"


def parse_micro_time(text: str | None) -> float | None:
    """Seconds since the epoch of a MicroTime or Time string; None when absent or unparsable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------------
# Client-side rate limiting


class RateLimiter:
    """client-go's token bucket (``qps`` tokens per second, at most ``burst`` stored), with two priorities.

    High-priority callers reserve tokens in FIFO order, possibly in the future (they then sleep until their
    token exists), exactly like ``golang.org/x/time/rate``. Low-priority callers (events, housekeeping) only take a
    token that exists now and is not promised to a waiting high-priority caller, so they can never delay a
    high-priority request by more than one token. ``qps <= 0`` disables limiting.
    """

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self.waited_seconds = 0.0

    def _advance(self, now: float) -> None:
        if self.qps > 0:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now

    async def acquire(self, *, low_priority: bool = False) -> None:
        if self.qps <= 0:
            return
        if low_priority:
            while True:
                now = time.monotonic()
                self._advance(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep(max(2.0 / self.qps, 0.005))
        now = time.monotonic()
        self._advance(now)
        self._tokens -= 1.0
        if self._tokens < 0:
            delay = -self._tokens / self.qps
            self.waited_seconds += delay
            await asyncio.sleep(delay)


# --------------------------------------------------------------------------------------------------------------
# Connection


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )


def _load_config(kubeconfig: str | None, context: str | None) -> Any:
    """A lightkube SingleConfig: the explicit/KUBECONFIG/~/.kube/config file, else the in-cluster ServiceAccount."""
    if kubeconfig is None and not os.environ.get("KUBECONFIG") and _in_cluster():
        try:
            return KubeConfig.from_service_account().get()
        except ConfigError as e:
            raise KubeConfigurationError(f"in-cluster configuration: {e}") from e
    cfg = load_kubeconfig(kubeconfig, context)
    try:
        return cfg.get(context_name=context)
    except (ConfigError, ValueError) as e:
        raise KubeConfigurationError(f"kubeconfig: {e}") from e


class _Auth:
    """The kubeconfig user's credentials as an Authorization header: a token, a token file (re-read: in-cluster
    tokens rotate), an exec plugin (re-run when refused), or basic auth; client certificates live in the TLS context."""

    def __init__(self, user: Any) -> None:
        self._user = user
        self._header: str | None = None
        self._read_at = 0.0
        if user is not None and getattr(user, "auth_provider", None):
            raise KubeConfigurationError("kubeconfig: auth-provider is not supported (use an exec plugin)")

    async def header(self, *, refresh: bool = False) -> str | None:
        user = self._user
        if user is None:
            return None
        if user.token_file:
            if refresh or self._header is None or time.monotonic() - self._read_at > 60.0:
                try:
                    with open(user.token_file) as f:
                        self._header = f"Bearer {f.read().strip()}"
                except OSError as e:
                    raise KubeConfigurationError(f"token file {user.token_file}: {e}") from e
                self._read_at = time.monotonic()
            return self._header
        if user.token:
            return f"Bearer {user.token}"
        if user.exec:
            if refresh or self._header is None:
                command, env = ExecAuth(user.exec)._prepare()
                proc = await asyncio.create_subprocess_exec(
                    *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
                )
                out, err = await proc.communicate()
                if proc.returncode != 0:
                    raise KubeConfigurationError(f"exec plugin {command[0]} failed: {err.decode()[:500]}")
                self._header = f"Bearer {orjson.loads(out)['status']['token']}"
            return self._header
        if user.username and user.password:
            token = base64.b64encode(f"{user.username}:{user.password}".encode()).decode("ascii")
            return f"Basic {token}"
        return None


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Obj


@dataclass
class RequestStats:
    """Counts of requests by verb and outcome, for metrics (read by the operator, reset never)."""

    by_key: dict[tuple[str, str], int]

    def add(self, verb: str, outcome: str) -> None:
        self.by_key[(verb, outcome)] = self.by_key.get((verb, outcome), 0) + 1


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    body: bytes
    retry_after: str | None


class AsyncKube:
    """Concurrent, rate-limited access to the few resources the IPAM operator uses.

    The transport is :class:`cni_migrate.kube.http1.HTTP1Pool` (HTTP/1.1 keep-alive, a bounded connection pool): per
    request it costs about a third of aiohttp's CPU, which matters for a controller that writes hundreds of nodes per
    second next to its API server.
    """

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | None,
        auth: _Auth,
        *,
        qps: float,
        burst: int,
        field_manager: str,
        max_connections: int = 16,
        request_timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.2,
        user_agent: str = "cni-migrate-ipam-operator",
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._auth = auth
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._pool: HTTP1Pool | None = None
        self.limiter = RateLimiter(qps, burst)
        self.field_manager = field_manager
        self.request_timeout = request_timeout
        self._retries = retries
        self._backoff = backoff
        self.stats = RequestStats({})

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        qps: float = 100.0,
        burst: int = 200,
        field_manager: str = "cni-migrate-ipam",
        max_connections: int = 16,
        request_timeout: float = 15.0,
        user_agent: str = "cni-migrate-ipam-operator",
    ) -> AsyncKube:
        config = _load_config(kubeconfig, context)
        server = str(config.cluster.server)
        ctx: ssl.SSLContext | None = None
        try:
            if server.startswith("https"):
                ctx = verify_cluster(config.cluster, config.user, config.abs_file, trust_env=False)
        except (ConfigError, ValueError, OSError, ssl.SSLError) as e:
            raise KubeConfigurationError(f"kubeconfig: {e}") from e
        return cls(
            server,
            ctx,
            _Auth(config.user),
            qps=qps,
            burst=burst,
            field_manager=field_manager,
            max_connections=max_connections,
            request_timeout=request_timeout,
            user_agent=user_agent,
        )

    def _http(self) -> HTTP1Pool:
        if self._pool is None:
            self._pool = HTTP1Pool(self.server, self._ssl, limit=self._max_connections, user_agent=self._user_agent)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # ---------------------------------------------------------------------------------------------- plumbing

    @staticmethod
    def _error(status: int, reason: str, body: bytes, what: str) -> KubeError:
        try:
            message = str(orjson.loads(body).get("message") or reason)
        except (orjson.JSONDecodeError, AttributeError):
            message = body[:500].decode("utf-8", "replace") or reason
        if status == 404:
            return NotFound(f"{what}: not found ({message})")
        if status == 409:
            return Conflict(f"{what}: conflict ({message})")
        if status in (401, 403):
            return Forbidden(f"{what}: forbidden ({message})")
        if status == 410:
            return Gone(f"{what}: {message}")
        if status == 422:
            return Invalid(f"{what}: {message}")
        return ApiStatusError(status, f"{what}: {message}")

    async def _headers(self, extra: Mapping[str, str] | None, *, refresh: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        auth = await self._auth.header(refresh=refresh)
        if auth:
            headers["Authorization"] = auth
        return headers

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        timeout: float,
    ) -> _Response:
        """One HTTP exchange; re-authenticates once on 401 (rotated token, expired exec credential)."""
        pool = self._http()
        target = pool.target(path, params)
        for attempt in range(2):
            hdrs = await self._headers(headers, refresh=attempt > 0)
            resp = await pool.request(method, target, headers=hdrs, body=content, timeout=timeout)
            if resp.status == 401 and attempt == 0:
                continue
            return _Response(resp.status, resp.reason, resp.body, resp.headers.get("retry-after"))
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str | None = None,
        low_priority: bool = False,
        timeout: float | None = None,
        retry: bool = True,
        guard: Guard | None = None,
    ) -> Obj:
        """One API call under the rate limiter; retries throttling and transient server errors.

        ``guard`` runs after the rate limiter let the request go and right before it is sent: it raises to stop
        the request (e.g. leadership lost) or returns the most seconds the request may take (the write fence).
        A transport error after the request may have reached the server raises :class:`RequestUncertain`
        (never retried here for writes: the caller decides, since the write may have landed).
        """
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if content is not None else {}
        if accept:
            headers["Accept"] = accept
        delay = self._backoff
        write = method != "GET"
        attempts = (self._retries + 1) if retry else 1
        verb = method.lower()
        for attempt in range(attempts):
            await self.limiter.acquire(low_priority=low_priority)
            limit = timeout if timeout is not None else self.request_timeout
            if guard is not None:
                limit = min(limit, guard())
            try:
                resp = await self._send(method, path, params, content, headers, limit)
            except ConnectFailed as e:
                self.stats.add(verb, "connect-error")
                if attempt == attempts - 1:
                    raise ClusterUnreachable(f"{what}: cannot reach the API server ({e})") from e
            except TransportFailed as e:
                self.stats.add(verb, "transport-error")
                if write or attempt == attempts - 1:
                    raise RequestUncertain(f"{what}: no answer from the API server ({e})") from e
            else:
                self.stats.add(verb, str(resp.status))
                if resp.status < 300:
                    if not resp.body:
                        return {}
                    result: Obj = orjson.loads(resp.body)
                    return result
                if resp.status not in RETRYABLE or attempt == attempts - 1:
                    raise self._error(resp.status, resp.reason, resp.body, what)
                if resp.retry_after and resp.retry_after.isdigit():
                    delay = max(delay, float(resp.retry_after))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise KubeError(f"{what}: retries exhausted")  # pragma: no cover - the loop returns or raises

    async def list_all(
        self, path: str, *, what: str, params: Mapping[str, str] | None = None, page_size: int = 500
    ) -> tuple[list[Obj], str]:
        """Every object of a collection (a consistent read, paginated) and the list's resourceVersion."""
        items: list[Obj] = []
        query = {**(params or {}), "limit": str(page_size)}
        while True:
            page = await self.request("GET", path, what=what, params=query)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, str(meta.get("resourceVersion") or "")
            query["continue"] = cont

    async def watch(
        self, path: str, resource_version: str, *, what: str, timeout_seconds: int = 300
    ) -> AsyncIterator[WatchEvent]:
        """Watch events after ``resource_version`` until the server ends the watch (every ~``timeout_seconds``).

        Raises :class:`Gone` when the version is too old (list again), other :class:`KubeError` on failure.
        BOOKMARK events carry only the new resourceVersion; callers resume from the last one seen.
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        await self.limiter.acquire()
        pool = self._http()
        try:
            async with pool.stream(
                "GET",
                pool.target(path, params),
                headers=await self._headers(None),
                connect_timeout=self.request_timeout,
                read_timeout=timeout_seconds + 30.0,
            ) as resp:
                self.stats.add("watch", str(resp.status))
                if resp.status >= 300:
                    raise self._error(resp.status, resp.reason, await resp.read(), what)
                buffer = b""
                async for chunk in resp.chunks():
                    if b"\n" not in chunk:  # part of a large object: collect until its line ends
                        buffer += chunk
                        continue
                    lines = (buffer + chunk).split(b"\n")
                    buffer = lines.pop()  # an incomplete last line, or b""
                    for line in lines:
                        if not line.strip():
                            continue
                        event = orjson.loads(line)
                        kind = event.get("type")
                        obj = event.get("object") or {}
                        if kind == "ERROR":
                            code = int(obj.get("code") or 0)
                            message = str(obj.get("message") or "")
                            if code == 410:
                                raise Gone(f"{what}: {message}")
                            raise ApiStatusError(code, f"{what}: {message}")
                        yield WatchEvent(kind, obj)
        except (ConnectFailed, TransportFailed) as e:
            raise ClusterUnreachable(f"{what}: watch interrupted ({e})") from e

    # ---------------------------------------------------------------------------------------------- nodes

    async def list_nodes(self) -> tuple[list[Obj], str]:
        return await self.list_all(NODES_PATH, what="list nodes")

    def watch_nodes(self, resource_version: str, *, timeout_seconds: int = 300) -> AsyncIterator[WatchEvent]:
        return self.watch(NODES_PATH, resource_version, what="watch nodes", timeout_seconds=timeout_seconds)

    async def get_node(self, name: str) -> Obj:
        return await self.request("GET", f"{NODES_PATH}/{name}", what=f"get node {name}")

    async def patch_node(
        self,
        name: str,
        ops: JsonPatch,
        *,
        field_manager: str | None = None,
        timeout: float | None = None,
        guard: Guard | None = None,
    ) -> Obj:
        """A JSON patch (RFC 6902) on a node; its ``test`` operations are the write's preconditions
        (a failed one raises :class:`Invalid`). Never retried after it may have been applied.

        Returns only the node's metadata (``PartialObjectMetadata``): the caller needs the outcome, not the node,
        and the API server then encodes ~250 bytes instead of the whole node for every write of a burst (errors
        still come back as a full ``Status``)."""
        return await self.request(
            "PATCH",
            f"{NODES_PATH}/{name}",
            what=f"patch node {name}",
            params={"fieldManager": field_manager or self.field_manager},
            body=ops,
            content_type="application/json-patch+json",
            accept=PARTIAL_METADATA,
            timeout=timeout,
            retry=False,
            guard=guard,
        )

    # ---------------------------------------------------------------------------------------------- pools

    async def list_pools(self) -> tuple[list[Obj], str]:
        return await self.list_all(POOLS_PATH, what=f"list {POOL_PLURAL}.{POOL_GROUP}")

    def watch_pools(self, resource_version: str, *, timeout_seconds: int = 300) -> AsyncIterator[WatchEvent]:
        return self.watch(
            POOLS_PATH, resource_version, what=f"watch {POOL_PLURAL}.{POOL_GROUP}", timeout_seconds=timeout_seconds
        )

    async def get_pool(self, name: str) -> Obj:
        return await self.request("GET", f"{POOLS_PATH}/{name}", what=f"get podcidrpool {name}")

    async def patch_pool(
        self, name: str, ops: JsonPatch, *, field_manager: str | None = None, guard: Guard | None = None
    ) -> Obj:
        """A JSON patch on a pool's main resource (metadata.finalizers), its ``test`` ops as preconditions."""
        return await self.request(
            "PATCH",
            f"{POOLS_PATH}/{name}",
            what=f"patch podcidrpool {name}",
            params={"fieldManager": field_manager or self.field_manager},
            body=ops,
            content_type="application/json-patch+json",
            guard=guard,
        )

    async def patch_pool_status(
        self,
        name: str,
        status: Obj,
        *,
        field_manager: str | None = None,
        low_priority: bool = False,
        guard: Guard | None = None,
    ) -> Obj:
        """Merge-patch the status subresource (replaces ``status.conditions`` and other lists whole)."""
        return await self.request(
            "PATCH",
            f"{POOLS_PATH}/{name}/status",
            what=f"patch podcidrpool {name} status",
            params={"fieldManager": field_manager or self.field_manager},
            body={"status": status},
            content_type="application/merge-patch+json",
            low_priority=low_priority,
            guard=guard,
        )

    # ---------------------------------------------------------------------------------------------- leases

    @staticmethod
    def _lease_path(namespace: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> Obj | None:
        try:
            return await self.request(
                "GET", self._lease_path(namespace, name), what=f"get lease {namespace}/{name}", timeout=timeout
            )
        except NotFound:
            return None

    async def create_lease(self, namespace: str, lease: Obj, *, timeout: float | None = None) -> Obj:
        """Create; :class:`Conflict` (409 AlreadyExists) when another replica was faster."""
        name = lease["metadata"]["name"]
        return await self.request(
            "POST",
            self._lease_path(namespace),
            what=f"create lease {namespace}/{name}",
            params={"fieldManager": self.field_manager},
            body=lease,
            timeout=timeout,
            retry=False,
        )

    async def replace_lease(self, namespace: str, lease: Obj, *, timeout: float | None = None) -> Obj:
        """PUT with ``metadata.resourceVersion`` set: optimistic concurrency, :class:`Conflict` if it moved."""
        name = lease["metadata"]["name"]
        return await self.request(
            "PUT",
            self._lease_path(namespace, name),
            what=f"update lease {namespace}/{name}",
            params={"fieldManager": self.field_manager},
            body=lease,
            timeout=timeout,
            retry=False,
        )

    # ---------------------------------------------------------------------------------------------- events

    async def create_event(
        self, namespace: str, event: Obj, *, low_priority: bool = True, guard: Guard | None = None
    ) -> Obj:
        """Create an ``events.k8s.io/v1`` Event (low priority by default: never delays allocations)."""
        return await self.request(
            "POST",
            f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
            what=f"create event in {namespace}",
            body=event,
            low_priority=low_priority,
            retry=False,
            guard=guard,
        )

    async def patch_event(self, namespace: str, name: str, patch: Obj, *, low_priority: bool = True) -> Obj:
        """Merge-patch an event (its ``series``), for repeated occurrences."""
        return await self.request(
            "PATCH",
            f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
            what=f"patch event {namespace}/{name}",
            body=patch,
            content_type="application/merge-patch+json",
            low_priority=low_priority,
            retry=False,
        )

    # ---------------------------------------------------------------------------------------------- configmaps

    async def get_configmap(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                what=f"get configmap {namespace}/{name}",
                low_priority=True,
            )
        except NotFound:
            return None


def node_cidr_patch(
    uid: str,
    cidrs: Sequence[str],
    *,
    mode: Literal["spec", "annotation"],
    annotations: Mapping[str, str] | None = None,
    has_annotations: bool = True,
) -> JsonPatch:
    """The conditional JSON patch that gives a node its pod CIDRs, and only if it has none yet.

    ``test`` operations make the write a no-op error (422) unless the node is still the same object (UID) and
    still has no CIDR where we write it (a ``test`` against ``null`` holds only for an absent field).
    ``mode="spec"`` sets ``spec.podCIDR`` and ``spec.podCIDRs`` (first entry = podCIDR, one per family);
    ``mode="annotation"`` adds the given ``annotations`` (key -> CIDR), each tested absent first.
    """
    ops: JsonPatch = [{"op": "test", "path": "/metadata/uid", "value": uid}]
    if mode == "spec":
        ops += [
            {"op": "test", "path": "/spec/podCIDR", "value": None},
            {"op": "test", "path": "/spec/podCIDRs", "value": None},
            {"op": "add", "path": "/spec/podCIDR", "value": cidrs[0]},
            {"op": "add", "path": "/spec/podCIDRs", "value": list(cidrs)},
        ]
        return ops
    items = dict(annotations or {})
    if not has_annotations:
        ops += [
            {"op": "test", "path": "/metadata/annotations", "value": None},
            {"op": "add", "path": "/metadata/annotations", "value": items},
        ]
        return ops
    for key in items:
        ops.append({"op": "test", "path": f"/metadata/annotations/{_pointer(key)}", "value": None})
    for key, value in items.items():
        ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value})
    return ops


def _pointer(key: str) -> str:
    """A JSON-pointer path segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
