"""The runbook: every step as commands a person could run; every kubectl and helm command parses."""

from __future__ import annotations

import shlex

import pytest
from plan_helpers import load, make_plan

from cni_migrate.analysis.lint import parse_helm_command
from cni_migrate.analysis.plan import Plan, render_runbook
from cni_migrate.analysis.plan.runbook import commands_in

KUBECTL_SUBCOMMANDS = {
    "get",
    "apply",
    "delete",
    "patch",
    "wait",
    "rollout",
    "cordon",
    "uncordon",
    "drain",
    "label",
    "annotate",
    "exec",
    "logs",
    "api-resources",
}
HELM_SUBCOMMANDS = {("repo", "add"), ("repo", "update"), ("upgrade",), ("uninstall",), ("list",), ("version",)}
NS_FLAGS = {"-n", "--namespace", "--context", "--kubeconfig", "--kube-context"}


@pytest.fixture(
    scope="module",
    params=[
        ("calico-bgp-lossy", "offline", {"bgp": "kube-router", "maglev": True}),
        ("calico-bgp-lossy", "offline", {}),
        ("flannel-graceful", "rolling", {"kube_proxy_replacement": "true"}),
        ("calico-operator-multipool", "rolling", {}),
        ("calico-operator-multipool", "offline", {"node_cleanup": "reboot"}),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}-{len(p[2])}",
)
def plan(request: pytest.FixtureRequest) -> Plan:
    example, strategy, extra = request.param
    return make_plan(load(example), strategy, **extra)


def kubectl_subcommand(argv: list[str]) -> str:
    rest = argv[1:]
    i = 0
    while i < len(rest):
        if rest[i] in NS_FLAGS:
            i += 2
        elif rest[i].startswith("-"):
            i += 1
        else:
            return rest[i]
    raise AssertionError(f"no subcommand in {argv}")


def test_every_step_is_in_the_runbook(plan: Plan) -> None:
    md = render_runbook(plan)
    for s in plan.steps():
        assert f"`{s.id}`" in md
    for d in plan.decisions:
        assert f"**{d.option}**" in md


def test_kubectl_commands_parse(plan: Plan) -> None:
    cmds = [c for c in commands_in(render_runbook(plan)) if c[0] == "kubectl"]
    assert len(cmds) > 20
    for argv in cmds:
        assert kubectl_subcommand(argv) in KUBECTL_SUBCOMMANDS, argv
        assert shlex.split(shlex.join(argv)) == argv


def _unpinned(argv: list[str]) -> list[str]:
    assert argv[1] in ("--context", "--kube-context"), argv
    return [argv[0], *argv[3:]]


def test_helm_commands_parse(plan: Plan) -> None:
    cmds = [_unpinned(c) for c in commands_in(render_runbook(plan)) if c[0] == "helm"]
    assert cmds
    for argv in cmds:
        assert tuple(argv[1:3]) in HELM_SUBCOMMANDS or tuple(argv[1:2]) in HELM_SUBCOMMANDS, argv
        if argv[1] == "upgrade":
            parsed = parse_helm_command(shlex.join(argv))
            assert parsed.release == plan.inputs.options["release_name"]
            assert "--install" in argv and "--version" in argv


def test_helm_install_uses_the_planned_values_file(plan: Plan) -> None:
    md = render_runbook(plan)
    for a in plan.artifacts:
        if a.kind == "values":
            assert f"-f {a.path}" in md


def test_node_commands_are_shown_for_every_node(plan: Plan) -> None:
    md = render_runbook(plan)
    for node in load(plan.inputs.facts_source.split("/")[-1]).nodes:
        assert 'ssh "$NODE"' in md and node.name in md
