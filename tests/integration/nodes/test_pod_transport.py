"""The pod node transport against the real API server. There are no kubelets here (kwok's nodes): the test plays
the kubelet's part by writing the pod's terminated status, which is what the transport waits for; the script
itself is not executed (the netns tests run the agent for real through the local transport)."""

from __future__ import annotations

import threading
import time

import pytest
from lightkube.models.core_v1 import ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from cni_migrate.actions.nodes.transport import PodTransport, TransportError
from cni_migrate.kube.client import Cluster
from cni_migrate.kube.nodepods import LABEL
from cni_migrate_testbed import ControlPlane, FakeNodes


def step_pods(cp: ControlPlane, ns: str) -> list[Pod]:
    return list(cp.client.list(Pod, namespace=ns, labels={LABEL: "true"}))


def test_pod_transport_pins_a_privileged_host_pod_and_returns_its_exit_code(
    control_plane: ControlPlane, admin_kubeconfig: object, test_namespace: str, fake_nodes: FakeNodes
) -> None:
    node = fake_nodes.create("n1").metadata.name
    cluster = Cluster.connect(str(control_plane.admin_kubeconfig))
    seen: list[Pod] = []

    def kubelet() -> None:  # finish the pod as a kubelet would, with exit code 3
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            pods = step_pods(control_plane, test_namespace)
            if pods:
                seen.append(pods[0])
                status = PodStatus(
                    phase="Failed",
                    containerStatuses=[
                        ContainerStatus(
                            name="node-step",
                            image="x",
                            imageID="",
                            ready=False,
                            restartCount=0,
                            state=ContainerState(terminated=ContainerStateTerminated(exitCode=3, reason="Error")),
                        )
                    ],
                )
                control_plane.client.patch(
                    Pod.Status,
                    pods[0].metadata.name,
                    {"status": status.to_dict()},
                    namespace=test_namespace,
                    patch_type=PatchType.MERGE,
                )
            time.sleep(0.2)

    t = threading.Thread(target=kubelet)
    t.start()
    transport = PodTransport(cluster, namespace=test_namespace, image="cni-migrate:0.1.0")
    result = transport.run(node, "cni-migrate node inspect", timeout=30)
    t.join()
    assert result.exit_code == 3
    [pod] = seen
    spec = pod.spec
    assert spec.nodeName == node and spec.hostNetwork and spec.hostPID and spec.restartPolicy == "Never"
    c = spec.containers[0]
    assert c.securityContext.privileged and c.image == "cni-migrate:0.1.0"
    assert c.command == ["sh", "-c", "cni-migrate node inspect"]
    assert [(e.name, e.value) for e in c.env] == [("CNI_MIGRATE_NODE_ROOT", "/host")]
    assert c.volumeMounts[0].mountPath == "/host" and spec.volumes[0].hostPath.path == "/"
    assert spec.automountServiceAccountToken is False
    assert step_pods(control_plane, test_namespace) == [] or all(
        p.metadata.deletionTimestamp for p in step_pods(control_plane, test_namespace)
    )


def test_pod_transport_timeout_is_a_transport_error_and_the_pod_is_deleted(
    control_plane: ControlPlane, admin_kubeconfig: object, test_namespace: str, fake_nodes: FakeNodes
) -> None:
    node = fake_nodes.create("n2").metadata.name
    transport = PodTransport(Cluster.connect(str(control_plane.admin_kubeconfig)), namespace=test_namespace, image="x")
    with pytest.raises(TransportError, match="not finished after 2 s"):
        transport.run(node, "true", timeout=2)
    assert all(p.metadata.deletionTimestamp for p in step_pods(control_plane, test_namespace))


def test_pod_transport_refused_pod_is_a_transport_error(control_plane: ControlPlane, admin_kubeconfig: object) -> None:
    transport = PodTransport(Cluster.connect(str(control_plane.admin_kubeconfig)), namespace="no-such-ns-12", image="x")
    with pytest.raises(TransportError, match="cannot create pod no-such-ns-12/"):
        transport.run("n", "true", timeout=5)
