"""The operator's API client against the real API server: the conditional node write and what it returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cni_migrate.kube.ipam import NODES_PATH, AsyncKube, Invalid, node_cidr_patch

pytestmark = pytest.mark.integration


def test_node_write_returns_metadata_only_and_refuses_a_second_cidr(admin_kubeconfig: Path, name_prefix: str) -> None:
    async def go() -> None:
        kube = AsyncKube.connect(str(admin_kubeconfig), qps=0, burst=1)
        name = f"{name_prefix}-n"
        try:
            node = await kube.request("POST", NODES_PATH, what="create", body={"metadata": {"name": name}})
            uid = node["metadata"]["uid"]
            written = await kube.patch_node(name, node_cidr_patch(uid, ["10.200.0.0/24"], mode="spec"))
            # The API server transformed the answer: the node's metadata, not the whole node.
            assert written["kind"] == "PartialObjectMetadata" and written["metadata"]["uid"] == uid
            assert "spec" not in written and "status" not in written
            stored = await kube.get_node(name)
            assert stored["spec"]["podCIDRs"] == ["10.200.0.0/24"]
            with pytest.raises(Invalid):  # the test operation (no CIDR yet) fails: nothing is overwritten
                await kube.patch_node(name, node_cidr_patch(uid, ["10.200.1.0/24"], mode="spec"))
            with pytest.raises(Invalid):  # another node object under the same name
                await kube.patch_node(name, node_cidr_patch("another-uid", ["10.200.1.0/24"], mode="spec"))
            assert (await kube.get_node(name))["spec"]["podCIDRs"] == ["10.200.0.0/24"]
        finally:
            await kube.request("DELETE", f"{NODES_PATH}/{name}", what="delete")
            await kube.close()

    asyncio.run(go())
