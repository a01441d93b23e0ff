"""Facts as rules see them: kernels (with RHEL backports), the CNI left installed, context overrides."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.lint import LintContext
from cni_migrate.analysis.lint.factview import FactView, Unknown, effective_kernel, socket_lb_udp_ok

from .helpers import UNKNOWN, make_facts


@pytest.mark.parametrize(
    ("kernel", "key"),
    [("5.15.0-91-generic", (5, 15, 0)), ("6.1.4-1.el7.elrepo.x86_64", (6, 1, 4)), ("4.19", (4, 19, 0)),
     ("4.18.0-372.9.1.el8.x86_64", (5, 10, 0)), ("4.18.0-305.el8.x86_64", (4, 19, 57)), ("garbage", None)],
)  # fmt: skip
def test_effective_kernel(kernel: str, key: tuple[int, int, int] | None) -> None:
    assert effective_kernel(kernel)[0] == key


@pytest.mark.parametrize(
    ("k", "ok"),
    [((4, 19, 56), False), ((4, 19, 57), True), ((5, 0, 21), False), ((5, 1, 15), False), ((5, 1, 16), True),
     ((5, 2, 0), True), ((4, 17, 0), False)],
)  # fmt: skip
def test_socket_lb_udp(k: tuple[int, int, int], ok: bool) -> None:
    assert socket_lb_udp_ok(k) is ok


def test_lowest_kernel_and_nodes_below() -> None:
    fv = FactView(make_facts(kernels={"a": "5.4.0", "b": "4.19.0", "c": "6.1.0"}), LintContext())
    assert fv.lowest_kernel().node == "b"
    assert [k.node for k in fv.nodes_below((5, 10, 0))] == ["b", "a"]


def test_missing_facts_name_themselves() -> None:
    fv = FactView(None, LintContext())
    with pytest.raises(Unknown) as e:
        fv.kernels()
    assert e.value.missing == ["node kernel versions"] and "without --snapshot" in str(e.value.detail)
    with pytest.raises(Unknown, match="kube-proxy presence"):
        FactView(make_facts(kube_proxy=UNKNOWN), LintContext()).kube_proxy_present()
    with pytest.raises(Unknown):
        FactView(make_facts(kernels=("x",)), LintContext()).kernels()


def test_context_overrides_facts() -> None:
    facts = make_facts(cni="flannel", kube_proxy=True)
    assert FactView(facts, LintContext(kube_proxy_present=False)).kube_proxy_present() is False
    assert FactView(None, LintContext(kube_proxy_present=False)).kube_proxy_present() is False
    assert FactView(facts, LintContext(old_cni_present=False)).old_cni() is None
    assert FactView(None, LintContext(old_cni_present=False)).old_cni() is None
    with pytest.raises(Unknown):
        FactView(None, LintContext(migration="rolling")).old_cni()
    with pytest.raises(Unknown):
        FactView(make_facts(cni="none"), LintContext(old_cni_present=True)).old_cni()


def test_old_cni_details() -> None:
    flannel = FactView(make_facts(cni="flannel"), LintContext()).old_cni()
    assert flannel is not None
    assert (flannel.name, flannel.ipam, flannel.vxlan_port, flannel.vxlan_device) == (
        "flannel", "kubernetes", 8472, "flannel.1",
    )  # fmt: skip
    calico = FactView(make_facts(cni="calico", calico_vxlan=True), LintContext()).old_cni()
    assert calico is not None and (calico.name, calico.vxlan_port, calico.ipam) == ("calico", 4789, "calico-ipam")
    canal = FactView(make_facts(cni="canal"), LintContext()).old_cni()
    assert canal is not None and canal.name == "canal" and canal.vxlan_port == 8472
    assert FactView(make_facts(cni="none"), LintContext()).old_cni() is None
    assert FactView(make_facts(cni="cilium"), LintContext()).old_cni() is None
