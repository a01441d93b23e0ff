"""Fixtures of the IPAM operator's integration tests.

The chart (charts/cni-migrate-ipam) is installed with ``helm install`` into the test control plane: CRD,
ServiceAccount, RBAC, webhook configuration and certificate. Its Deployment has 0 replicas (there are no images
here); instead the operator runs as local processes authenticated as the chart's ServiceAccount, so the API
server enforces the chart's RBAC on every request. The webhook configuration points at a local HTTPS port
(``webhook.url``) served by the operator with the chart-generated certificate.

The release lives as long as this package's tests (its webhook must not outlive them: other tests create
PodCIDRPools with no operator running). ``CNI_MIGRATE_IPAM_KEEP_LOGS=DIR`` keeps the operators' logs and audit files.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Secret

from cni_migrate_testbed import ControlPlane

from .ipam_helpers import CHART, RELEASE, IpamRelease, Operators, Pools, free_port, helm


@pytest.fixture(scope="package")
def ipam_release(control_plane: ControlPlane) -> Iterator[IpamRelease]:
    namespace = f"ipam-op-{os.urandom(3).hex()}"
    port = free_port()
    workdir = control_plane.workdir / namespace
    workdir.mkdir()
    helm(
        control_plane,
        "install", RELEASE, str(CHART),
        "--namespace", namespace, "--create-namespace",
        "--set", "replicaCount=0",
        "--set", "operator.mode=annotation",  # the superset of RBAC: also get on kube-system/cilium-config
        "--set", f"webhook.url=https://127.0.0.1:{port}/validate-podcidrpool",
        "--set", "webhook.extraIPs[0]=127.0.0.1",
        "--wait", "--timeout", "60s",
    )  # fmt: skip
    try:
        secret = control_plane.client.get(Secret, f"{RELEASE}-webhook-tls", namespace=namespace)
        data = secret.data or {}
        cert, key = workdir / "tls.crt", workdir / "tls.key"
        cert.write_bytes(base64.b64decode(data["tls.crt"]))
        (workdir / "ca.crt").write_bytes(base64.b64decode(data["ca.crt"]))
        key.write_bytes(base64.b64decode(data["tls.key"]))
        key.chmod(0o600)
        kubeconfig = control_plane.kubeconfig_for_service_account(namespace, RELEASE)
        yield IpamRelease(control_plane, namespace, RELEASE, kubeconfig, port, cert, key, workdir)
    finally:
        keep = os.environ.get("CNI_MIGRATE_IPAM_KEEP_LOGS")
        if keep:  # the control plane's workdir is removed at the end of the session
            shutil.copytree(workdir, Path(keep) / namespace, dirs_exist_ok=True)
        helm(control_plane, "uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def operators(ipam_release: IpamRelease) -> Iterator[Operators]:
    ops = Operators(ipam_release)
    try:
        yield ops
    finally:
        ops.cleanup()


@pytest.fixture
def pools(ipam_release: IpamRelease) -> Iterator[Pools]:
    p = Pools(ipam_release.cp)
    try:
        yield p
    finally:
        p.cleanup()
