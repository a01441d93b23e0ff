"""Short-lived privileged pods pinned to a node, for the ``pod`` node transport: create, wait for the end, read
the logs and the exit code, delete. The pod is what ``kubectl debug node/...`` makes, plus ``nsenter -t 1 -m -n``
so the script sees the host's mounts and network namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lightkube import ApiError
from lightkube.models.core_v1 import Container, PodSpec, SecurityContext, Toleration
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod

from cni_migrate.kube.client import Cluster
from cni_migrate.kube.errors import KubeError

LABEL = "cni-migrate.io/node-step"


@dataclass(frozen=True)
class PodRun:
    name: str
    phase: str
    exit_code: int | None
    logs: str
    reason: str


def node_pod(name: str, namespace: str, node: str, image: str, script: str, service_account: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, labels={LABEL: "true"}),
        spec=PodSpec(
            nodeName=node,  # pinned: no scheduler involved
            hostNetwork=True,
            hostPID=True,
            restartPolicy="Never",
            serviceAccountName=service_account,
            automountServiceAccountToken=False,
            tolerations=[Toleration(operator="Exists")],
            containers=[
                Container(
                    name="node-step",
                    image=image,
                    command=["nsenter", "-t", "1", "-m", "-n", "--", "sh", "-c", script],
                    securityContext=SecurityContext(privileged=True, runAsUser=0),
                )
            ],
        ),
    )


def run_node_pod(
    cluster: Cluster,
    *,
    name: str,
    namespace: str,
    node: str,
    image: str,
    script: str,
    service_account: str = "default",
    timeout: float = 300.0,
    poll: float = 1.0,
) -> PodRun:
    """Create the pod, wait until it has ended (or ``timeout``), collect logs and exit code, delete it."""
    client = cluster.raw()
    try:
        client.create(node_pod(name, namespace, node, image, script, service_account))
    except ApiError as e:
        raise KubeError(f"node {node}: cannot create pod {namespace}/{name}: {e.status.message}") from e
    try:
        deadline = time.monotonic() + timeout
        while True:
            pod = client.get(Pod, name, namespace=namespace)
            phase = pod.status.phase if pod.status and pod.status.phase else "Pending"
            if phase in ("Succeeded", "Failed"):
                break
            if time.monotonic() > deadline:
                return PodRun(name, phase, None, "", f"not finished after {timeout:.0f} s")
            time.sleep(poll)
        code: int | None = None
        reason = ""
        for cs in (pod.status.containerStatuses if pod.status else None) or []:
            term = cs.state.terminated if cs.state else None
            if term is not None:
                code = term.exitCode
                reason = term.reason or ""
        try:
            logs = "".join(line for line in client.log(name, namespace=namespace))
        except ApiError:
            logs = ""
        return PodRun(name, phase, code, logs, reason)
    except ApiError as e:
        raise KubeError(f"node {node}: pod {namespace}/{name}: {e.status.message}") from e
    finally:
        try:
            client.delete(Pod, name, namespace=namespace, grace_period=0)
        except ApiError as e:
            if e.status.code != 404:
                raise KubeError(f"node {node}: cannot delete pod {namespace}/{name}: {e.status.message}") from e
