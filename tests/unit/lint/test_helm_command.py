"""Pasted helm command lines: continuations, prompts, opaque shell expressions, flag forms."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.lint import LintInputError, parse_helm_command
from cni_migrate.analysis.lint.helm_command import tokenize

# Seed 000 (lossy Calico -> Cilium), section 3.2, as the article shows it.
LOSSY = r"""SEED=$(head -c12 /dev/urandom | base64 -w0)

helm install cilium cilium/cilium --version 1.12.6 \
--namespace kube-system \
--set k8sServiceHost=10.31.90.0 \
--set k8sServicePort=8443 \
--set kubeProxyReplacement=strict \
--set tunnel=disabled \
--set ipam.mode=kubernetes \
--set ipv4NativeRoutingCIDR=10.33.0.0/17 \
--set lbExternalClusterIP=true \
--set enableIPv4Masquerade=false \
--set enableIPv6Masquerade=false \
--set ipam.operator.clusterPoolIPv4PodCIDRList=10.33.0.0/17 \
--set ipam.operator.clusterPoolIPv4MaskSize=24 \
--set hubble.relay.enabled=true \
--set hubble.ui.enabled=true \
--set loadBalancer.algorithm=maglev \
--set maglev.tableSize=65521 \
--set maglev.hashSeed=$SEED \
--set loadBalancer.mode=hybrid \
--set socketLB.hostNamespaceOnly=true \
--set loadBalancer.acceleration=native
"""


def test_lossy_seed_command() -> None:
    cmd = parse_helm_command(LOSSY)
    assert (cmd.action, cmd.release, cmd.chart, cmd.version, cmd.namespace) == (
        "install", "cilium", "cilium/cilium", "1.12.6", "kube-system",
    )  # fmt: skip
    assert len(cmd.sets) == 19
    assert cmd.sets[0] == "k8sServiceHost=10.31.90.0"
    assert "maglev.hashSeed=$SEED" in cmd.sets
    assert cmd.effective_action == "install"


def test_prompts_pipes_template_and_values_files() -> None:
    text = "$ helm template --namespace kube-system cilium cilium/cilium --version 1.12.2 -f values.yaml | k apply -f -"
    cmd = parse_helm_command(text)
    assert (cmd.action, cmd.release, cmd.version, cmd.values_files) == ("template", "cilium", "1.12.2", ["values.yaml"])
    assert cmd.effective_action is None
    root = parse_helm_command("[root@k8s-master ~]# helm upgrade -i cilium ./cilium -n kube-system --reuse-values")
    assert (root.action, root.install, root.reuse_values, root.namespace) == ("upgrade", True, True, "kube-system")


def test_flag_forms() -> None:
    cmd = parse_helm_command(
        "helm --kube-context prod upgrade --install cilium cilium/cilium --version=1.16.5 --namespace=cilium "
        "-f a.yaml,b.yaml --values c.yaml --set-string k=true --set-json 'j={\"x\": 1}' --set-file f=cfg.txt "
        "--set \"x=a b\" --set 'y=$NOT_EXPANDED' --wait --timeout 10m -- "
    )
    assert cmd.action == "upgrade" and cmd.install
    assert cmd.version == "1.16.5" and cmd.namespace == "cilium"
    assert cmd.values_files == ["a.yaml", "b.yaml", "c.yaml"]
    assert cmd.set_strings == ["k=true"] and cmd.set_json == ['j={"x": 1}'] and cmd.set_files == ["f=cfg.txt"]
    assert cmd.sets == ["x=a b", "y=$NOT_EXPANDED"]


def test_shell_expressions_stay_opaque() -> None:
    words = tokenize('helm install c ch --set a=$(echo "x y" | tr x z) --set b=${B:-1} --set c=`date +%s` # note')[0]
    assert words[4:] == ["--set", 'a=$(echo "x y" | tr x z)', "--set", "b=${B:-1}", "--set", "c=`date +%s`"]


def test_generate_name_and_first_helm_command_wins() -> None:
    cmd = parse_helm_command("helm repo add cilium https://helm.cilium.io/\nhelm install --generate-name cilium/cilium")
    assert cmd.release is None and cmd.chart == "cilium/cilium"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("kubectl apply -f x.yaml", "no helm command"),
        ("helm repo add cilium https://helm.cilium.io/", "not install, upgrade or template"),
        ("helm install cilium", "needs a release name and a chart"),
        ("helm upgrade", "needs a release name and a chart"),
        ("helm install cilium cilium/cilium --set 'a=b", "unterminated single quote"),
        ('helm install cilium cilium/cilium --set "a=b', "unterminated double quote"),
        ("helm install cilium cilium/cilium --version", "needs a value"),
    ],
)
def test_errors(text: str, why: str) -> None:
    with pytest.raises(LintInputError, match=why):
        parse_helm_command(text)
