"""The validating webhook's checks: messages name the field; updates never strand allocated blocks."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_migrate.analysis.ipam.allocation import IPAMState, NodeInfo
from cni_migrate.analysis.ipam.pools import API_VERSION, make_pool
from cni_migrate.analysis.ipam.validation import admission_response, validate_pool, validate_pool_delete


def cr(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "PodCIDRPool", "metadata": {"name": name}, "spec": spec}


class TestCreate:
    def test_valid(self) -> None:
        assert validate_pool(cr(cidrs=["10.0.0.0/16", "fd00::/48"], blockSize={"ipv4": 24, "ipv6": 64})) == []

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ({"cidrs": ["10.0.0.0/16", "10.0.0.0/33"]}, ["spec.cidrs[1]: 10.0.0.0/33 is not a valid CIDR"]),
            (
                {"cidrs": ["10.0.0.0/16"], "blockSize": {"ipv4": 16}},
                [
                    "spec.blockSize.ipv4: /16 is not longer than the /16 of spec.cidrs[0] (10.0.0.0/16); a node's "
                    "block must be smaller than the CIDR it is cut from"
                ],
            ),
            (
                {"cidrs": ["10.0.0.0/16"], "blockSize": {"ipv4": 8}},
                ["spec.blockSize.ipv4: 8 is out of range (/16 to /30 for IPv4)"],
            ),
            (
                {"cidrs": ["fd00::/48"], "blockSize": {"ipv6": 127}},
                ["spec.blockSize.ipv6: 127 is out of range (/48 to /126 for IPv6)"],
            ),
            ({"cidrs": ["fd00::1/64"]}, ["spec.cidrs[0]: fd00::1/64 has host bits set (did you mean fd00::/64?)"]),
        ],
    )
    def test_messages(self, spec: dict[str, Any], expected: list[str]) -> None:
        assert validate_pool(cr(**spec)) == expected

    def test_overlap_with_other_pools(self) -> None:
        others = [make_pool("rack1", ["10.1.0.0/16"]), make_pool("rack2", ["10.2.0.0/16", "fd02::/48"])]
        assert validate_pool(cr("new", cidrs=["10.1.128.0/17", "10.3.0.0/16", "fd02::/56"]), others=others) == [
            "spec.cidrs[0]: 10.1.128.0/17 overlaps 10.1.0.0/16 of PodCIDRPool rack1",
            "spec.cidrs[2]: fd02::/56 overlaps fd02::/48 of PodCIDRPool rack2",
        ]

    def test_own_name_is_not_an_other(self) -> None:
        assert validate_pool(cr("rack1", cidrs=["10.1.0.0/16"]), others=[make_pool("rack1", ["10.1.0.0/16"])]) == []


class TestUpdate:
    def held(self) -> dict[str, list[Any]]:
        pool = make_pool("p", ["10.0.0.0/16", "10.1.0.0/16"])
        s = IPAMState([pool], [NodeInfo("a", spec_cidrs=("10.1.0.0/24",)), NodeInfo("b")])
        s.plan()
        return s.held_in_pool("p")

    def test_growing_is_allowed(self) -> None:
        old = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"])
        new = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"])
        assert validate_pool(new, old=old, held=self.held()) == []

    def test_removing_a_cidr_in_use_is_refused(self) -> None:
        old = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"])
        assert validate_pool(cr(cidrs=["10.0.0.0/16"]), old=old, held=self.held()) == [
            "spec.cidrs: 10.1.0.0/24, held by node a, would no longer lie inside the pool; a CIDR in use cannot be "
            "removed or shrunk (set spec.disabled and retire the nodes first)"
        ]

    def test_shrinking_around_a_block_is_refused(self) -> None:
        old = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"])
        errs = validate_pool(cr(cidrs=["10.0.0.0/16", "10.1.128.0/17"]), old=old, held=self.held())
        assert len(errs) == 1 and "10.1.0.0/24, held by node a" in errs[0]

    def test_removing_an_unused_cidr_is_allowed(self) -> None:
        old = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16", "10.9.0.0/16"])
        assert validate_pool(cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"]), old=old, held=self.held()) == []

    def test_block_size_change_while_allocated(self) -> None:
        old = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"])
        new = cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"], blockSize={"ipv4": 26})
        assert validate_pool(new, old=old, held=self.held()) == [
            "spec.blockSize.ipv4: cannot change from 24 to 26 while 2 ipv4 block(s) are allocated"
        ]
        assert validate_pool(new, old=old, held={}) == []  # nothing allocated: allowed
        # the other family may change freely
        assert (
            validate_pool(cr(cidrs=["10.0.0.0/16", "10.1.0.0/16"], blockSize={"ipv6": 64}), old=old, held=self.held())
            == []
        )

    def test_held_as_strings_and_invalid_old(self) -> None:
        held = {"a": ["10.1.0.0/24", "junk"]}
        assert validate_pool(cr(cidrs=["10.0.0.0/16"]), old={"spec": "broken"}, held=held)[0].startswith(
            "spec.cidrs: 10.1.0.0/24, held by node a"
        )

    def test_invalid_new_spec_short_circuits(self) -> None:
        assert validate_pool(cr(cidrs=[]), old=cr(cidrs=["10.0.0.0/16"])) == [
            "spec.cidrs: at least one CIDR is required"
        ]


class TestDeleteAndResponse:
    def test_delete_in_use(self) -> None:
        net = ipaddress.ip_network("10.0.0.0/24")
        assert validate_pool_delete("p", {}) == []
        assert validate_pool_delete("p", {"a": []}) == []
        (msg,) = validate_pool_delete("p", {f"n{i:02d}": [net] for i in range(12)})
        assert msg.startswith("PodCIDRPool p is in use by 12 node(s) (n00, n01,") and "..." in msg

    def test_admission_response(self) -> None:
        ok = admission_response("uid-1", [])
        assert ok == {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "uid-1", "allowed": True},
        }
        denied = admission_response("uid-2", ["a", "b"], warnings=["w"])["response"]
        assert denied["allowed"] is False and denied["status"]["message"] == "a; b" and denied["warnings"] == ["w"]
        assert denied["status"]["code"] == 422
