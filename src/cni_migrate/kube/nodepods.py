"""Short-lived privileged pods pinned to a node, for the ``pod`` node transport: create, wait for the end, read
the logs and the exit code, delete.

Two shapes. For the node agent (default): the container keeps its own file system (the image has the agent and
the iptables/ipset/nft tools), shares the host's network and PID namespaces, and sees the host's root at
``/host`` (``CNI_MIGRATE_NODE_ROOT=/host``, so CNI files and backups are the host's). For plain shell on the
host (``host_mounts``): ``nsenter -t 1 -m -n``, as ``kubectl debug node/...`` is used, so the script runs
with the host's own binaries and paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lightkube import ApiError
from lightkube.models.core_v1 import (
    Container,
    EnvVar,
    HostPathVolumeSource,
    PodSpec,
    SecurityContext,
    Toleration,
    Volume,
    VolumeMount,
)
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


def node_pod(
    name: str, namespace: str, node: str, image: str, script: str, service_account: str, *, host_mounts: bool = False
) -> Pod:
    if host_mounts:
        command = ["nsenter", "-t", "1", "-m", "-n", "--", "sh", "-c", script]
        env: list[EnvVar] = []
        mounts: list[VolumeMount] = []
        volumes: list[Volume] = []
    else:
        command = ["sh", "-c", script]
        env = [EnvVar(name="CNI_MIGRATE_NODE_ROOT", value="/host")]
        mounts = [VolumeMount(name="host", mountPath="/host")]
        volumes = [Volume(name="host", hostPath=HostPathVolumeSource(path="/", type="Directory"))]
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
            volumes=volumes,
            containers=[
                Container(
                    name="node-step",
                    image=image,
                    command=command,
                    env=env,
                    volumeMounts=mounts,
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
    host_mounts: bool = False,
) -> PodRun:
    """Create the pod, wait until it has ended (or ``timeout``), collect logs and exit code, delete it."""
    client = cluster.raw()
    try:
        client.create(node_pod(name, namespace, node, image, script, service_account, host_mounts=host_mounts))
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
