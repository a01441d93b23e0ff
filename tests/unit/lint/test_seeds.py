"""The seeds' configurations, linted as a user would paste them.

* Seed 000 (lossy Calico -> Cilium): the ``helm install ... --version 1.12.6`` command of section 3.2 is fine for
  1.12 and gets the removed/renamed-value errors when linted for 1.16.
* Seed 001 (kube-proxy free): the configuration that crash-looped gets the native-routing-CIDR error with the
  agent's exact message; the first ``helm install`` over the existing release gets "cannot re-use a name".
* Seed 003 (Flannel -> Cilium, graceful): its values with a VXLAN tunnel on the Flannel example cluster get the
  port-clash error, with geneve they do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cni_migrate.analysis.lint import LintContext, LintReport, apply_set, lint, merge_values, parse_helm_command
from cni_migrate.facts import ClusterFacts, facts_from_snapshot

from .helpers import make_facts
from .test_helm_command import LOSSY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

# Seed 001 links its commands as literalinclude files that the article does not reproduce. Reconstructed: the
# install is the Cilium 1.11 kube-proxy-free quick start the article follows; the crashing update is what the
# agent log shows (tunnel disabled, auto-direct-node-routes, IPAM cluster-pool, IPv4 masquerading on, no
# native-routing CIDR), made with the article's socketLB.hostNamespaceOnly change.
KPF_INSTALL = r"""helm install cilium cilium/cilium --version 1.11.7 \
    --namespace kube-system \
    --set kubeProxyReplacement=strict \
    --set k8sServiceHost=192.168.6.101 \
    --set k8sServicePort=6443
"""
KPF_CRASHING_UPDATE = r"""helm upgrade cilium cilium/cilium --version 1.11.7 \
    --namespace kube-system \
    --reuse-values \
    --set socketLB.hostNamespaceOnly=true \
    --set tunnel=disabled \
    --set autoDirectNodeRoutes=true
"""
KPF_SEED_ERROR = (
    "invalid daemon configuration: native routing cidr must be configured with option --ipv4-native-routing-cidr "
    "in combination with --enable-ipv4-masquerade --tunnel=disabled --ipam=cluster-pool --enable-ipv4=true"
)
KPF_SEED_WARNING = (
    "If auto-direct-node-routes is enabled, then you are recommended to also configure ipv4-native-routing-cidr. "
    "If ipv4-native-routing-cidr is not configured, this may lead to pod to pod traffic being masqueraded, which "
    "can cause problems with performance, observability and policy"
)
# Seed 003's values.yaml.
FLANNEL_SEED_VALUES = {
    "tunnel": "geneve",
    "ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": ["172.20.0.0/16"]}},
    "hubble": {"enabled": False},
}


def values_of(command_text: str, base: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    cmd = parse_helm_command(command_text)
    values = merge_values(base or {})
    for expr in cmd.sets:
        apply_set(values, expr)
    return values, cmd


def errors(report: LintReport) -> list[str]:
    return sorted(report.ids("error"))


@pytest.fixture(scope="module")
def lossy_cluster() -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / "calico-bgp-lossy"))


@pytest.fixture(scope="module")
def flannel_cluster() -> ClusterFacts:
    return facts_from_snapshot(str(EXAMPLES / "flannel-graceful"))


class TestLossySeed:
    def test_command_as_pasted_has_no_error_for_its_version(self) -> None:
        values, cmd = values_of(LOSSY)
        report = lint(values, cmd.version, context=LintContext(helm_action="install"))
        assert report.cilium_version == "1.12.6"
        assert errors(report) == []
        # $SEED is a shell variable: the hash-seed rule says it could not judge it rather than passing it.
        assert any(n.id == "CIL038" and n.missing == ["value of maglev.hashSeed"] for n in report.not_checked)

    def test_on_the_example_cluster_after_calico_and_kube_proxy_are_removed(self, lossy_cluster: ClusterFacts) -> None:
        values, cmd = values_of(LOSSY)
        ctx = LintContext(helm_action="install", old_cni_present=False, kube_proxy_present=False)
        report = lint(values, cmd.version, lossy_cluster, context=ctx)
        assert errors(report) == [], [f.message for f in report.errors]
        assert report.derived["routing"] == "native" and report.derived["kpr_full"] is True
        # kernel 6.1 on every node, so the rules needing kernels were checked, not skipped
        checked = {n.id for n in report.not_checked}
        assert not checked & {"CIL024", "CIL025", "CIL026", "CIL051", "CIL088"}

    def test_with_calico_still_installed_the_old_cni_is_an_error(self, lossy_cluster: ClusterFacts) -> None:
        values, cmd = values_of(LOSSY)
        report = lint(values, cmd.version, lossy_cluster, context=LintContext(helm_action="install"))
        assert "CIL077" in errors(report)

    def test_linted_for_1_16_gets_the_right_errors(self) -> None:
        values, _ = values_of(LOSSY)
        report = lint(values, "1.16.5", context=LintContext(helm_action="install"))
        assert errors(report) == ["CIL012", "CIL017", "CIL031"]
        by_id = {f.id: f for f in report.errors}
        assert "tunnel was deprecated in v1.14 and has been removed in v1.15" in by_id["CIL012"].message
        assert "routingMode: native" in by_id["CIL012"].fix
        assert "valid value (true or false)" in by_id["CIL017"].message
        # the removed `tunnel: disabled` leaves 1.16 on VXLAN, where hybrid DSR cannot run
        assert "vxlan tunneling" in by_id["CIL031"].message
        assert report.derived["routing"] == "tunnel"


class TestKubeProxyFreeSeed:
    def test_crashing_update_as_pasted_leaves_the_native_routing_cidr_rule_not_checked(self) -> None:
        # --reuse-values keeps the release's earlier values, which lint cannot see: whether masquerading, IPAM and
        # ipv4NativeRoutingCIDR make the update crash depends on them, so CIL001 is "not checked", not an error.
        # Linting the merged values (next test, and CNM009's advice) finds the seed's crash.
        values, cmd = values_of(KPF_CRASHING_UPDATE)
        ctx = LintContext(helm_action="upgrade", reuse_values=cmd.reuse_values)
        report = lint(values, cmd.version, context=ctx)
        assert errors(report) == []
        cil001 = next(n for n in report.not_checked if n.id == "CIL001")
        assert cil001.detail is not None and "--reuse-values" in cil001.detail
        assert "CNM009" in report.ids("info")
        merged = lint(values, cmd.version, context=LintContext(helm_action="upgrade"))
        assert errors(merged) == ["CIL001"]
        assert KPF_SEED_ERROR in merged.errors[0].message
        assert merged.errors[0].path == "ipv4NativeRoutingCIDR"
        warnings = [f for f in merged.findings if f.id == "CIL006"]
        assert warnings and warnings[0].message.startswith(KPF_SEED_WARNING)

    def test_install_plus_update_on_the_seed_cluster(self) -> None:
        installed, _ = values_of(KPF_INSTALL)
        values, cmd = values_of(KPF_CRASHING_UPDATE, installed)
        cluster = make_facts(
            kernels=("5.15.0-46-generic",) * 8, kube_proxy=False, releases=[("kube-system", "cilium", 2)]
        )
        report = lint(values, cmd.version, cluster, context=LintContext(helm_action="upgrade"))
        # CIL073 is a real latent problem of the seed's cluster: pods come from the default 10.0.0.0/8 pool
        # (10.0.6.22) which contains kubeadm's service CIDR 10.96.0.0/12 (ClusterIP 10.101.117.255).
        assert errors(report) == ["CIL001", "CIL073"]
        overlap = next(f for f in report.errors if f.id == "CIL073")
        assert "10.0.0.0/8 overlaps service CIDR 10.96.0.0/12" in overlap.message

    def test_the_seeds_fixes_pass(self) -> None:
        installed, _ = values_of(KPF_INSTALL)
        fixed, cmd = values_of(
            KPF_CRASHING_UPDATE.rstrip() + " \\\n    --set ipv4NativeRoutingCIDR=10.0.0.0/8", installed
        )
        assert errors(lint(fixed, cmd.version)) == []
        simple, cmd = values_of(KPF_INSTALL.rstrip() + " --set socketLB.hostNamespaceOnly=true")
        assert errors(lint(simple, cmd.version)) == []

    def test_install_over_the_existing_release(self) -> None:
        values, cmd = values_of(KPF_INSTALL)
        cluster = make_facts(kube_proxy=False, releases=[("kube-system", "cilium", 2)])
        report = lint(values, cmd.version, cluster, context=LintContext(helm_action="install"))
        assert "CNM001" in errors(report)
        cnm001 = next(f for f in report.errors if f.id == "CNM001")
        assert "cannot re-use a name that is still in use" in cnm001.message


class TestFlannelSeed:
    def test_vxlan_clashes_with_flannel(self, flannel_cluster: ClusterFacts) -> None:
        values = merge_values(FLANNEL_SEED_VALUES, {"tunnel": "vxlan"})
        report = lint(values, "1.12.2", flannel_cluster)
        clash = [f for f in report.errors if f.id == "CIL015"]
        assert clash and "UDP port 8472" in clash[0].message and "flannel.1" in clash[0].message

    def test_geneve_does_not(self, flannel_cluster: ClusterFacts) -> None:
        report = lint(FLANNEL_SEED_VALUES, "1.12.2", flannel_cluster)
        assert "CIL015" not in report.ids()
        assert not any(n.id == "CIL015" for n in report.not_checked)

    def test_graceful_migration_meets_the_four_conditions(self, flannel_cluster: ClusterFacts) -> None:
        report = lint(FLANNEL_SEED_VALUES, "1.12.2", flannel_cluster, context=LintContext(migration="rolling"))
        assert errors(report) == []
        assert not {"CNM004", "CNM005", "CNM006", "CNM007"} & set(report.ids())
        vxlan = lint(merge_values(FLANNEL_SEED_VALUES, {"tunnel": "vxlan"}), "1.12.2", flannel_cluster,
                     context=LintContext(migration="rolling"))  # fmt: skip
        assert errors(vxlan) == ["CIL015"]

    def test_the_same_values_on_1_16(self, flannel_cluster: ClusterFacts) -> None:
        report = lint(FLANNEL_SEED_VALUES, "1.16.5", flannel_cluster, context=LintContext(migration="rolling"))
        # `tunnel` is removed: 1.16 falls back to VXLAN on Flannel's port
        assert errors(report) == ["CIL012", "CIL015"]
