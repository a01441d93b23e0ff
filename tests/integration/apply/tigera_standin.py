"""A stand-in for tigera-operator's uninstall path, for the operator example's end-to-end test.

The real operator cannot run here (it renders and supervises all of Calico). What the executor depends on is only
what it does once the ``default`` Installation is being deleted (tigera/operator, pkg/controller/installation
core_controller.go and pkg/render/node.go): it tears down the components it rendered into calico-system, keeps the
``tigera.io/cni-protector`` finalizer on calico-node's and calico-cni-plugin's ServiceAccounts and RBAC until the
calico-node pods are gone (the CNI plugin needs that RBAC to tear pods down), then drops those finalizers and
finally its own ``tigera.io/operator-cleanup`` finalizer on the Installation.

``stuck=True`` reproduces the failure SREs meet (tigera/operator#2031, #3413, projectcalico/calico#6629): the
operator removes the workloads and then stops working, leaving every finalizer in place. The stand-in also stops
for good as soon as its own Deployment is deleted, as the operator's pod would.
"""

from __future__ import annotations

import threading
from typing import Any

from cni_migrate.kube.errors import KubeError
from cni_migrate.kube.rest import Rest

CNI_PROTECTOR = "tigera.io/cni-protector"
OPERATOR_CLEANUP = "tigera.io/operator-cleanup"
RENDERED_WORKLOADS = (
    ("apps/v1", "DaemonSet", "calico-node", "calico-system"),
    ("apps/v1", "DaemonSet", "csi-node-driver", "calico-system"),
    ("apps/v1", "Deployment", "calico-kube-controllers", "calico-system"),
    ("apps/v1", "Deployment", "calico-typha", "calico-system"),
    ("apps/v1", "Deployment", "calico-apiserver", "calico-apiserver"),
)
PROTECTED = (
    ("v1", "ServiceAccount", "calico-node", "calico-system"),
    ("v1", "ServiceAccount", "calico-cni-plugin", "calico-system"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "calico-node", None),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "calico-node", None),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "calico-cni-plugin", None),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "calico-cni-plugin", None),
)


class TigeraOperatorStandIn:
    def __init__(self, rest: Rest, *, stuck: bool) -> None:
        self.rest = rest
        self.stuck = stuck
        self.actions: list[str] = []  # what it did, for the test's assertions
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tigera-operator-stand-in", daemon=True)

    def __enter__(self) -> TigeraOperatorStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        done = False  # the uninstall is over (or stuck); the pod keeps running until its Deployment is deleted
        while not self._stop.wait(0.2):
            try:
                if not self._alive():
                    self.actions.append("operator pod gone: stopped")
                    return
                if done:
                    continue
                inst = self.rest.get("operator.tigera.io/v1", "Installation", "default")
                if inst is not None and inst["metadata"].get("deletionTimestamp"):
                    done = self._uninstall(inst)
            except KubeError as e:  # the API server is real and may answer 409 on a race: retry next tick
                self.errors.append(str(e))

    def _alive(self) -> bool:
        dep = self.rest.get("apps/v1", "Deployment", "tigera-operator", "tigera-operator")
        return dep is not None and not dep["metadata"].get("deletionTimestamp")

    def _uninstall(self, inst: dict[str, Any]) -> bool:
        """One reconcile of a terminating Installation; True when there is nothing left for it to do."""
        for api, kind, name, ns in RENDERED_WORKLOADS:
            if self.rest.get(api, kind, name, ns) is not None and self.rest.delete(api, kind, name, ns):
                self.actions.append(f"deleted {kind} {ns}/{name}")
        if self.stuck:
            self.actions.append("stuck: finalizers left in place")
            return True
        if self.rest.list("v1", "Pod", namespace="calico-system", label_selector="k8s-app=calico-node"):
            return False  # calico-node pods still tearing down: keep the CNI plugin's RBAC
        for api, kind, name, ns in PROTECTED:
            self._drop_finalizer(api, kind, name, ns, CNI_PROTECTOR)
        self._drop_finalizer("operator.tigera.io/v1", "Installation", "default", None, OPERATOR_CLEANUP)
        return True

    def _drop_finalizer(self, api: str, kind: str, name: str, ns: str | None, finalizer: str) -> None:
        obj = self.rest.get(api, kind, name, ns)
        if obj is None or finalizer not in (obj["metadata"].get("finalizers") or []):
            return
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
        self.rest.replace(obj)  # resourceVersion-guarded, as controller-runtime's Update is
        self.actions.append(f"removed {finalizer} from {kind} {name}")
