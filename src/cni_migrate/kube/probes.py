"""API calls of ``cni-migrate verify``/``monitor``: the probe Namespace, DaemonSets and Service, their pods, and
the pod proxy through which the controller talks to the probers.

Everything takes a :class:`cni_migrate.kube.client.Cluster`, returns plain dicts and raises the errors of
:mod:`cni_migrate.kube.errors`. The permissions these calls need are :data:`VERIFY_CLUSTER_RULES` (cluster-wide
reads) and :data:`VERIFY_NAMESPACE_RULES` (in the probe namespace); docs/verify.md shows them as RBAC objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx2 as httpx
import orjson
from lightkube import ApiError, codecs
from lightkube.resources.apps_v1 import DaemonSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod, Service
from lightkube.types import CascadeType

from cni_migrate.kube.client import Cluster, _translate
from cni_migrate.kube.errors import ApiStatusError, ClusterUnreachable, KubeError, NotFound

Obj = dict[str, Any]
T = TypeVar("T")

#: Cluster-wide: the nodes to probe, pods for migration progress, the ``kubernetes`` Service, Cilium's pod CIDR
#: (``kube-system/cilium-config``), and the probe namespace when the tool creates it.
VERIFY_CLUSTER_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
]
#: Only when the tool creates (and afterwards deletes) the probe namespace itself.
VERIFY_NAMESPACE_CREATE_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "delete"]},
]
#: In the probe namespace: the probe DaemonSets and Service, a server-side dry run of the probe pod (PodSecurity),
#: and the pod proxy to the probers' control port.
VERIFY_NAMESPACE_RULES: list[Obj] = [
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "create", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get", "create"]},
]


def _do(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (ApiError, httpx.HTTPError) as e:
        raise _translate(e, what) from e


def _plain(o: Any) -> Obj:
    d: Obj = o.to_dict() if hasattr(o, "to_dict") else dict(o)
    return d


def get_namespace(cluster: Cluster, name: str) -> Obj | None:
    try:
        return _do(f"get namespace {name}", lambda: _plain(cluster.raw().get(Namespace, name)))
    except NotFound:
        return None


def create_object(cluster: Cluster, obj: Obj, *, dry_run: bool = False) -> Obj:
    """Create ``obj`` (a manifest dict); ``dry_run`` asks the server to run admission without storing it."""
    meta = obj.get("metadata") or {}
    what = (
        f"create {obj.get('kind')} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta.get('name')}"
    )
    res = codecs.from_dict(obj)
    return _do(what, lambda: _plain(cluster.raw().create(res, dry_run=dry_run)))


_KINDS: dict[str, Any] = {"DaemonSet": DaemonSet, "Service": Service, "Namespace": Namespace, "Pod": Pod}


def get_object(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> Obj | None:
    try:
        return _do(
            f"get {kind} {name}", lambda: _plain(cluster.raw().get(_KINDS[kind], name=name, namespace=namespace))
        )
    except NotFound:
        return None


def delete_object(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete (dependents in the background, like kubectl); False when it was already gone."""
    try:
        _do(
            f"delete {kind} {name}",
            lambda: cluster.raw().delete(_KINDS[kind], name, namespace=namespace, cascade=CascadeType.BACKGROUND),
        )
    except NotFound:
        return False
    return True


def list_nodes(cluster: Cluster) -> list[Obj]:
    return _do("list nodes", lambda: [_plain(n) for n in cluster.raw().list(Node, chunk_size=500)])


def list_pods(cluster: Cluster, *, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
    ns = namespace if namespace is not None else "*"
    selector: dict[str, Any] | None = dict(labels) if labels else None
    return _do(
        f"list pods{' in ' + namespace if namespace else ''}",
        lambda: [_plain(p) for p in cluster.raw().list(Pod, namespace=ns, labels=selector, chunk_size=500)],
    )


def kubernetes_service(cluster: Cluster) -> tuple[str, int] | None:
    """ClusterIP and port of ``default/kubernetes`` (how pods reach the API server)."""
    svc = get_object(cluster, "Service", "kubernetes", "default")
    if svc is None:
        return None
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    ip = spec.get("clusterIP")
    if not ip or not ports:
        return None
    return str(ip), int(ports[0].get("port") or 443)


def cilium_pod_cidrs(cluster: Cluster) -> list[str]:
    """Cilium's cluster-pool pod CIDRs from ``kube-system/cilium-config`` (empty when absent or not cluster-pool)."""
    try:
        cm = _do(
            "get configmap kube-system/cilium-config",
            lambda: cluster.raw().get(ConfigMap, "cilium-config", namespace="kube-system"),
        )
    except NotFound:
        return []
    data = cm.data or {}
    raw = data.get("cluster-pool-ipv4-cidr") or ""
    return [c for c in raw.replace(",", " ").split() if c]


def pod_proxy(
    cluster: Cluster,
    namespace: str,
    pod: str,
    port: int,
    method: str,
    path: str,
    body: Obj | None,
    timeout: float,
) -> Obj:
    """One HTTP request to ``pod:port`` through the API server's pod proxy; the JSON answer.

    Raises :class:`ClusterUnreachable` when the API server cannot be reached, :class:`ApiStatusError` for any
    other non-200 answer (the API server's own text when it could not reach the pod)."""
    http: httpx.Client = cluster.raw()._client._client
    url = f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}"
    content = orjson.dumps(body) if body is not None else None
    try:
        resp = http.request(
            method,
            url,
            content=content,
            headers={"Content-Type": "application/json"} if content is not None else None,
            timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise ClusterUnreachable(f"{method} {url}: {type(e).__name__}: {e}") from e
    if resp.status_code != 200:
        text = resp.text.strip().replace("\n", " ")[:300]
        try:
            msg = resp.json().get("message") or resp.json().get("error") or text
        except ValueError:
            msg = text
        raise ApiStatusError(resp.status_code, f"{method} pod {namespace}/{pod}:{port}{path}: {msg}")
    try:
        answer = resp.json()
    except ValueError as e:
        raise KubeError(f"{method} pod {namespace}/{pod}:{port}{path}: answer is not JSON") from e
    if not isinstance(answer, dict):
        raise KubeError(f"{method} pod {namespace}/{pod}:{port}{path}: answer is not a JSON object")
    return answer
