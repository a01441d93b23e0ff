"""The plan as a Markdown runbook: the same steps, as commands a person could run (pure string rendering).

Every action becomes kubectl/helm commands or a root shell snippet for the nodes; every check becomes the
command that shows it. The runbook is documentation of the plan, generated from it; the executor runs the plan.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Iterable

from cni_migrate.analysis.plan.model import (
    SWEEP_SKIPPED_PATTERN,
    Action,
    AnnotateNodes,
    ApplyObjects,
    Backup,
    Check,
    CommandCheck,
    CordonNodes,
    DeleteObjects,
    EvictPods,
    FactCheck,
    HelmRelease,
    HelmUninstall,
    LabelNodes,
    ManualGate,
    NameMatch,
    NodeCommands,
    NodePortCheck,
    ObjectCheck,
    ObjectRef,
    ObjectSelector,
    PatchObject,
    Plan,
    RemoveFinalizers,
    RestartPods,
    RestoreBackup,
    RolloutRestart,
    Step,
    UncordonNodes,
    Verify,
    WaitFor,
)

MAX_NODES_SHOWN = 12


def resource(ref: ObjectRef) -> str:
    """kubectl's fully qualified TYPE/NAME (``daemonset.v1.apps/kube-proxy``, ``configmap/kube-proxy``)."""
    kind = ref.kind.lower()
    if "/" in ref.api_version:
        group, version = ref.api_version.rsplit("/", 1)
        return f"{kind}.{version}.{group}/{ref.name}"
    return f"{kind}/{ref.name}"


def _ns(ref: ObjectRef | None) -> list[str]:
    return ["-n", ref.namespace] if ref is not None and ref.namespace else []


@functools.lru_cache(maxsize=65536)
def _quote(arg: str) -> str:
    # The same few hundred words (kubectl, -n, kube-system, label keys...) recur in every step of a 5,000-node plan.
    return shlex.quote(arg)


def _q(argv: list[str]) -> str:
    return " ".join(map(_quote, argv))


def remote(script: str, *, stdin: bool = False) -> str:
    """``ssh "$NODE" ...`` running ``script`` (or a script on stdin) as root on the node.

    ssh joins its arguments with spaces and hands the string to the remote login shell, so the remote command is
    quoted once, as a whole: the remote shell then sees ``sudo sh -c '<script>'`` with the script intact (passed
    as separate words, ``sh -c test -s f`` would run a bare ``test``)."""
    command = "sudo sh -s" if stdin else "sudo sh -c " + shlex.quote(script)
    return 'ssh "$NODE" ' + shlex.quote(command)


_ERE = (("\\d", "[0-9]"), ("\\S", "[^[:space:]]"), ("\\s", "[[:space:]]"))


def _ere(regex: str) -> tuple[str, bool]:
    """A check's Python regex as POSIX ERE for ``grep -E`` (and whether it is case-insensitive)."""
    icase = regex.startswith("(?i)")
    out = regex.removeprefix("(?i)")
    for py, posix in _ERE:
        out = out.replace(py, posix)
    return out, icase


_ON_NODE = '"(node $NODE)"'


def _fail(description: str, where: str = "") -> str:
    return "{ echo " + shlex.quote(f"FAILED: {description}") + (f" {where}" if where else "") + " >&2; false; }"


def _judge(description: str, expect: str | None, reject: str | None, where: str = "") -> list[str]:
    """Lines judging ``$OUT`` (already captured): the check fails the block when the output does not match."""
    show = "printf '%s\\n' \"$OUT\""
    lines = [show]
    if expect:
        ere, icase = _ere(expect)
        grep = f"grep -q{'i' if icase else ''}E {shlex.quote(ere)}"
        lines.append(f"{show} | {grep} || {_fail(description, where)}")
    if reject:
        ere, icase = _ere(reject)
        grep = f"grep -q{'i' if icase else ''}E {shlex.quote(ere)}"
        lines.append(f"if {show} | {grep}; then {_fail(description, where)}; fi")
    return lines


def confirm(prompt: str) -> str:
    """A real prompt: the block stops unless the answer is y (read from the terminal, not from pasted text)."""
    return (
        f"read -r -p {shlex.quote(prompt + ' [y/N] ')} REPLY </dev/tty; "
        f'[ "$REPLY" = y ] || {{ echo {shlex.quote("stopped: " + prompt)} >&2; false; }}'
    )


# Saved objects are stripped of what the API server owns, so a rollback can apply them as they are.
STRIP_JQ = (
    "def strip: del(.metadata.resourceVersion, .metadata.uid, .metadata.creationTimestamp, .metadata.generation, "
    ".metadata.managedFields, .metadata.selfLink, .metadata.deletionTimestamp, .metadata.deletionGracePeriodSeconds, "
    '.status); if .kind == "List" then .items |= map(strip) else strip end'
)
_STRIP = "jq " + shlex.quote(STRIP_JQ)


def _nodes_text(nodes: list[str]) -> str:
    shown = ", ".join(nodes[:MAX_NODES_SHOWN])
    return shown + (f" and {len(nodes) - MAX_NODES_SHOWN} more" if len(nodes) > MAX_NODES_SHOWN else "")


def _node_loop(nodes: list[str]) -> str:
    """A ``for`` header over the nodes (shown in full: the runbook must be complete)."""
    return "for NODE in " + " ".join(shlex.quote(n) for n in nodes) + "; do"


def _file_name(ref: ObjectRef) -> str:
    group = ref.group or "core"
    ns = ref.namespace or "_cluster"
    return f"{group}_{ref.kind}_{ns}_{ref.name}.json"


def _selector_get(sel: ObjectSelector, dest: str) -> list[str]:
    if sel.kind is None:
        return [
            f"for R in $(kubectl api-resources --api-group={shlex.quote(sel.group)} --verbs=list -o name); do",
            f'  kubectl get "$R" -A -o json | {_STRIP} > {dest}/"$R".json',
            "done",
        ]
    res = f"{sel.kind.lower()}" + (f".{sel.group}" if sel.group else "")
    argv = ["kubectl", "get", res]
    argv += ["-n", sel.namespace] if sel.namespace else ["-A"]
    if sel.name:
        argv.insert(3, sel.name)
    if sel.label_selector:
        argv += ["-l", sel.label_selector]
    argv += ["-o", "json"]
    suffix = f"{sel.group or 'core'}_{sel.kind}_{sel.namespace or 'all'}"
    return [f"{_q(argv)} | {_STRIP} > {dest}/{suffix}.json"]


def _name_match_lines(m: NameMatch, verb: str, dest: str | None) -> list[str]:
    pattern = shlex.quote(m.pattern)
    excl = "|".join(m.exclude_groups)
    skipped = shlex.quote(SWEEP_SKIPPED_PATTERN)
    lines = [
        "kubectl api-resources --verbs=list -o name"
        + f" | grep -vE {skipped}"
        + (f" | grep -vE {shlex.quote('(' + excl + ')$')}" if excl else "")
        + " | while read -r R; do",
        f'  kubectl get "$R" -A -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name --no-headers '
        f"2>/dev/null | grep -iE {pattern} | while read -r NS NAME; do",
    ]
    ns = '$([ "$NS" = "<none>" ] || echo "-n $NS")'
    if verb == "backup":
        lines.append(f'    kubectl get "$R" "$NAME" {ns} -o json | {_STRIP} > {dest}/"$R"_"$NS"_"$NAME".json')
    elif verb == "list":
        lines.append('    echo "  $R $NS/$NAME"')
    else:
        lines.append(f'    kubectl delete "$R" "$NAME" {ns} --ignore-not-found --wait=true')
    lines += ["  done", "done"]
    return lines


def action_lines(a: Action, plan: Plan) -> list[str]:
    if isinstance(a, Backup):
        lines = [f"mkdir -p {a.destination}"]
        for o in a.objects:
            argv = ["kubectl", "get", resource(o), *_ns(o), "-o", "json", "--ignore-not-found"]
            out = f"{a.destination}/{_file_name(o)}"
            lines.append(f'OBJ=$({_q(argv)}); [ -z "$OBJ" ] || printf \'%s\\n\' "$OBJ" | {_STRIP} > {out}')
        for s in a.selectors:
            lines += _selector_get(s, a.destination)
        if a.name_match is not None:
            lines += _name_match_lines(a.name_match, "backup", a.destination)
        return lines
    if isinstance(a, RestoreBackup):
        lines = ["# the saved files were stripped of resourceVersion, uid, managedFields and status when saved"]
        for o in a.objects:
            f = f"{a.source}/{_file_name(o)}"
            apply = _q(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", f])
            lines.append(f"if [ -s {shlex.quote(f)} ]; then {apply}; fi")
        if a.selectors or not a.objects:
            lines.append(_q(["kubectl", "apply", "--server-side", "--force-conflicts", "-R", "-f", a.source]))
        return lines
    if isinstance(a, ApplyObjects):
        if a.artifact:
            return [_q(["kubectl", "apply", "--server-side", "--field-manager=cni-migrate", "-f", a.artifact])]
        body = [json.dumps(o, separators=(",", ":")) for o in a.objects]  # JSON is YAML: one document per line
        lines = ["kubectl apply --server-side --field-manager=cni-migrate -f - <<'EOF'"]
        for doc in body:
            lines += ["---", doc]
        return [*lines, "EOF"]
    if isinstance(a, PatchObject):
        return [
            _q(
                [
                    "kubectl",
                    "patch",
                    resource(a.target),
                    *_ns(a.target),
                    "--type",
                    a.patch_type,
                    "-p",
                    json.dumps(a.patch, sort_keys=True, separators=(",", ":")),
                ]
            )
        ]
    if isinstance(a, DeleteObjects):
        lines = ["echo 'These objects will be deleted:'"]
        for o in a.objects:
            lines.append(_q(["kubectl", "get", resource(o), *_ns(o), "-o", "name", "--ignore-not-found"]))
        for s in a.selectors:
            res = (s.kind or "").lower() + (f".{s.group}" if s.group else "")
            lines.append(_q(["kubectl", "get", res, *(["-n", s.namespace] if s.namespace else ["-A"]), "-o", "name"]))
        if a.name_match is not None:
            lines += _name_match_lines(a.name_match, "list", None)
        lines.append(confirm("Delete them?"))
        opts = [f"--wait={str(a.wait).lower()}", f"--cascade={a.cascade}", f"--timeout={a.timeout_seconds}s"]
        if a.ignore_not_found:
            opts.insert(0, "--ignore-not-found")
        for o in a.objects:
            lines.append(_q(["kubectl", "delete", resource(o), *_ns(o), *opts]))
        for s in a.selectors:
            res = (s.kind or "").lower() + (f".{s.group}" if s.group else "")
            lines.append(_q(["kubectl", "delete", res, *(["-n", s.namespace] if s.namespace else []), "--all", *opts]))
        if a.name_match is not None:
            lines += _name_match_lines(a.name_match, "delete", None)
        return lines
    if isinstance(a, RemoveFinalizers):
        res = _q(["kubectl", "get", resource(a.target), *_ns(a.target), "-o", "jsonpath={.metadata.deletionTimestamp}"])
        patch = _q(
            [
                "kubectl",
                "patch",
                resource(a.target),
                *_ns(a.target),
                "--type",
                "merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
            ]
        )
        wait = _q(["kubectl", "wait", "--for=delete", resource(a.target), *_ns(a.target)])
        return [
            f"# only if still terminating {a.after_seconds}s after the step began "
            f"(finalizers {', '.join(a.finalizers)} are in the backup); one deadline for the whole step",
            ': "${STEP_START:=$SECONDS}"',
            f'LEFT=$(( STEP_START + {a.after_seconds} - SECONDS )); [ "$LEFT" -ge 1 ] || LEFT=1',
            f'{wait} --timeout="${{LEFT}}s" 2>/dev/null || true',
            f'if [ -n "$({res} --ignore-not-found 2>/dev/null)" ]; then',
            f"  {patch}",
            "fi",
        ]
    if isinstance(a, NodeCommands):
        lines = [f"# on each node ({len(a.nodes)}: {_nodes_text(a.nodes)}), as root:", _node_loop(a.nodes)]
        lines.append(f"  {remote('', stdin=True)} <<'NODE_EOF'")
        for c in a.commands:
            lines.append(f"# {c.description}")
            lines.append(c.run + (" || true" if c.ignore_errors else ""))
        lines += ["NODE_EOF", "done"]
        return lines
    if isinstance(a, HelmRelease):
        lines = []
        if a.repo_url:
            lines.append(_q(["helm", "repo", "add", a.repo_name, a.repo_url, "--force-update"]))
            lines.append(_q(["helm", "repo", "update", a.repo_name]))
        argv = ["helm", "upgrade", "--install", a.release, a.chart, "--version", a.version, "--namespace", a.namespace]
        if a.create_namespace:
            argv.append("--create-namespace")
        if a.values_file:
            argv += ["-f", a.values_file]
        if a.wait:
            argv += ["--wait", "--timeout", f"{a.timeout_seconds}s"]
        lines.append(_q(argv))
        return lines
    if isinstance(a, HelmUninstall):
        return [_q(["helm", "uninstall", a.release, "--namespace", a.namespace])]
    if isinstance(a, WaitFor):
        return _wait_lines(a)
    if isinstance(a, ManualGate):
        return ["# STOP: " + a.prompt, *(f"#   - {d}" for d in a.details), confirm("STOP: " + a.prompt + " Continue?")]
    if isinstance(a, CordonNodes):
        return [_q(["kubectl", "cordon", *a.nodes])]
    if isinstance(a, UncordonNodes):
        return [_q(["kubectl", "uncordon", *a.nodes])]
    if isinstance(a, EvictPods):
        argv = ["kubectl", "drain", *a.nodes]
        if a.ignore_daemonsets:
            argv.append("--ignore-daemonsets")
        if a.delete_emptydir_data:
            argv.append("--delete-emptydir-data")
        argv.append(f"--timeout={a.timeout_seconds}s")
        return [_q(argv)]
    if isinstance(a, LabelNodes):
        parts = [f"{k}={v}" if v is not None else f"{k}-" for k, v in sorted(a.labels.items())]
        if len(a.nodes) > MAX_NODES_SHOWN:
            return [_node_loop(a.nodes), f'  kubectl label node "$NODE" {" ".join(parts)} --overwrite', "done"]
        return [_q(["kubectl", "label", "node", *a.nodes, *parts, "--overwrite"])]
    if isinstance(a, AnnotateNodes):
        lines = []
        for node, ann in sorted(a.annotations.items()):
            parts = [f"{k}={v}" if v is not None else f"{k}-" for k, v in sorted(ann.items())]
            lines.append(_q(["kubectl", "annotate", "node", node, *parts, "--overwrite"]))
        return lines
    if isinstance(a, RestartPods):
        if a.unmanaged_only:
            return [
                "kubectl get ciliumendpoints.cilium.io -A -o "
                "jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}' | sort > managed.txt",
                "kubectl get pods -A --field-selector=status.phase!=Succeeded "
                "-o custom-columns=NS:.metadata.namespace,NAME:.metadata.name,HOSTNETWORK:.spec.hostNetwork "
                '--no-headers | awk \'$3 != "true" {print $1"/"$2}\' | sort > all.txt',
                'comm -23 all.txt managed.txt | while IFS=/ read -r NS NAME; do kubectl -n "$NS" delete pod "$NAME" '
                "--wait=false; done",
            ]
        base = ["kubectl", "delete", "pod", *(["-n", a.namespace] if a.namespace else ["-A"])]
        if a.selector:
            base += ["-l", a.selector]
        if a.nodes:
            return [_q([*base, f"--field-selector=spec.nodeName={n}"]) for n in a.nodes]
        return [_q(base)]
    if isinstance(a, RolloutRestart):
        return [_q(["kubectl", "rollout", "restart", resource(a.target), *_ns(a.target)])]
    if isinstance(a, Verify):
        return [line for check in a.checks for line in check_lines(check, plan)]
    raise TypeError(f"no runbook rendering for {type(a).__name__}")  # pragma: no cover


def _wait_lines(a: WaitFor) -> list[str]:
    t = f"--timeout={a.timeout_seconds}s"
    if a.condition == "rollout" and a.target is not None:
        return [_q(["kubectl", "rollout", "status", resource(a.target), *_ns(a.target), t])]
    if a.condition == "deleted" and a.target is not None:
        return [_q(["kubectl", "wait", "--for=delete", resource(a.target), *_ns(a.target), t])]
    if a.condition == "deleted" and a.selector:
        ns = ["-n", a.namespace] if a.namespace else []
        return [
            _q(
                [
                    "kubectl",
                    "wait",
                    "--for=delete",
                    "pod",
                    *ns,
                    "-l",
                    a.selector,
                    f"--field-selector=spec.nodeName={n}",
                    t,
                ]
            )
            for n in a.nodes
        ]
    if a.condition == "condition" and a.target is not None:
        return [_q(["kubectl", "wait", f"--for=condition={a.value}", resource(a.target), *_ns(a.target), t])]
    if a.condition == "pod-phase" and a.target is not None:
        return [
            _q(
                [
                    "kubectl",
                    "wait",
                    f"--for=jsonpath={{.status.phase}}={a.value}",
                    resource(a.target),
                    *_ns(a.target),
                    t,
                ]
            )
        ]
    if a.condition == "nodes-ready":
        return [_q(["kubectl", "wait", "--for=condition=Ready", *(f"node/{n}" for n in a.nodes), t])]
    if a.condition == "pods-ready":
        ns = ["-n", a.namespace] if a.namespace else ["-A"]
        return [_q(["kubectl", "wait", "--for=condition=Ready", "pod", *ns, "-l", a.selector or "", t])]
    return [f"# wait: {a.condition}"]  # pragma: no cover


def check_lines(c: Check, plan: Plan) -> list[str]:
    if isinstance(c, CommandCheck):
        expect = []
        if c.expect:
            expect.append(f"expect /{c.expect}/")
        if c.reject:
            expect.append(f"must not match /{c.reject}/")
        if c.expect_in_cidr:
            expect.append(f"addresses in {', '.join(c.expect_in_cidr)}")
        head = f"# check: {c.description}" + (f" ({'; '.join(expect)})" if expect else "")
        if c.cilium_pod_on:
            ns = "kube-system"
            pod = _q(
                [
                    "kubectl",
                    "-n",
                    ns,
                    "get",
                    "pod",
                    "-l",
                    "k8s-app=cilium",
                    f"--field-selector=spec.nodeName={c.cilium_pod_on}",
                    "-o",
                    "name",
                ]
            )
            cmd = f"kubectl -n {ns} exec $({pod}) -c cilium-agent -- {_q(c.argv)}"
        elif c.nodes:
            cmd = remote(c.shell or _q(c.argv))
            return [
                head,
                _node_loop(c.nodes),
                f"  OUT=$({cmd}) || {_fail(c.description, _ON_NODE)}",
                *(f"  {line}" for line in _judge(c.description, c.expect, c.reject, _ON_NODE)),
                "done",
            ]
        else:
            cmd = c.shell or _q(c.argv)
        if not c.expect and not c.reject:
            return [head, cmd]
        return [head, f"OUT=$({cmd}) || {_fail(c.description)}", *_judge(c.description, c.expect, c.reject)]
    if isinstance(c, ObjectCheck):
        argv = ["kubectl", "get", resource(c.target), *_ns(c.target)]
        if c.state == "absent":
            get = _q([*argv, "-o", "name", "--ignore-not-found"])
            return [f"# check: {c.description} (expect NotFound)", f'[ -z "$({get})" ] || {_fail(c.description)}']
        if c.jsonpath:
            get = _q([*argv, "-o", f"jsonpath={c.jsonpath}"])
            want = c.equals or ""
            return [
                f"# check: {c.description} (expect {want})",
                f'[ "$({get})" = {shlex.quote(want)} ] || {_fail(c.description)}',
            ]
        return [f"# check: {c.description}", _q([*argv, "-o", "name"])]
    if isinstance(c, NodePortCheck):
        np = _q(["kubectl", "get", resource(c.service), *_ns(c.service), "-o", "jsonpath={.spec.ports[0].nodePort}"])
        ips = " ".join(shlex.quote(ip) for _, ip in sorted(c.addresses.items()))
        return [
            f"# check: {c.description}",
            f"NODE_PORT=$({np})",
            f"for IP in {ips}; do",
            f'  curl -fsS -m {c.timeout_seconds} -o /dev/null "http://$IP:$NODE_PORT{c.path}" && echo "ok $IP" '
            '|| echo "FAILED $IP"',
            "done",
        ]
    assert isinstance(c, FactCheck)
    return [f"# fact ({c.result}): {c.description}: {c.detail} [{c.fact}]"]


CONTEXT_VARIABLE = "KUBE_CONTEXT"
_KUBECTL = re.compile(r"(?<![\w./-])kubectl(?= )")
_HELM = re.compile(r"(?<![\w./-])helm(?= )")


def pins(plan: Plan) -> tuple[str, str]:
    """The flags every kubectl and helm command carries: the context the plan was made for (and the kubeconfig
    when one was given). Planned from a snapshot without --context, the context comes from $KUBE_CONTEXT, which
    must be set (``set -u`` stops the block otherwise)."""
    opts = plan.inputs.options
    context = opts.get("kube_context")
    kubeconfig = opts.get("kubeconfig")
    ctx = (
        shlex.quote(str(context))
        if context
        else f'"${{{CONTEXT_VARIABLE}:?set {CONTEXT_VARIABLE} to the kubeconfig context of the planned cluster}}"'
    )
    kc = f" --kubeconfig {shlex.quote(str(kubeconfig))}" if kubeconfig else ""
    return f"kubectl --context {ctx}{kc}", f"helm --kube-context {ctx}{kc}"


def pin_lines(lines: list[str], pinned: tuple[str, str]) -> list[str]:
    """Every kubectl/helm invocation in shell lines (comments and heredoc bodies left alone) pinned."""
    kubectl, helm = pinned
    out: list[str] = []
    heredoc: str | None = None
    for line in lines:
        if heredoc is not None:
            out.append(line)
            if line.strip() == heredoc:
                heredoc = None
            continue
        if "<<'" in line:
            heredoc = line.split("<<'", 1)[1].split("'", 1)[0]
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        out.append(_HELM.sub(lambda _m: helm, _KUBECTL.sub(lambda _m: kubectl, line)))
    return out


def _block(lines: Iterable[str], plan: Plan) -> list[str]:
    """A bash block safe to paste: a subshell with ``set -euo pipefail`` (a failing command or check stops the
    block, not the SRE's shell), every kubectl/helm pinned to the planned cluster."""
    body = list(lines)
    if not body:
        return []
    return ["```bash", "(", "set -euo pipefail", *pin_lines(body, pins(plan)), ")", "```", ""]


def step_markdown(step: Step, plan: Plan, number: str) -> list[str]:
    out = [f"### {number} {step.title}", ""]
    meta = [f"`{step.id}`", f"scope: {step.scope}"]
    if step.nodes:
        meta.append(f"nodes: {_nodes_text(step.nodes)}")
    d = step.disruption
    if d.disruptive:
        meta.append(f"**disruptive** ({d.scope}, ~{d.estimate_seconds}s): {d.what}")
    out += [" · ".join(meta), ""]
    if step.description:
        out += [step.description, ""]
    if step.relies_on:
        facts = "; ".join(f"`{f.path}`" for f in step.relies_on)
        out += [f"Relies on: {facts}", ""]
    if step.preconditions:
        out += ["Before:", ""]
        out += _block((line for c in step.preconditions for line in check_lines(c, plan)), plan)
    actions = [line for a in step.actions for line in action_lines(a, plan)]
    if actions:
        out += ["Do:", "", *_block(actions, plan)]
    if step.success:
        out += ["Check:", ""]
        out += _block((line for c in step.success for line in check_lines(c, plan)), plan)
    rb = step.rollback
    out += [f"Rollback: {rb.description}" + ("" if rb.possible else " (not fully possible)"), ""]
    rb_lines = [line for a in rb.actions for line in action_lines(a, plan)]
    out += _block(rb_lines, plan)
    return out


def render_runbook(plan: Plan) -> str:
    i = plan.inputs
    out = [
        f"# Runbook: {i.old_cni} to Cilium {i.cilium_version} ({i.strategy})",
        "",
        f"Plan `{plan.id}` ({plan.schema_version}), generated by {plan.generated_by} from {i.facts_source} "
        f"({i.cluster_nodes} nodes, facts digest `{i.facts_digest[:16]}`).",
        "",
        "Run the commands from the directory holding this runbook (values/ and manifests/ are relative to it). "
        f"Backups go to `{plan.backup_dir}` here and `{plan.node_backup_dir}` on each node. Every block runs in a "
        "subshell with `set -euo pipefail`: a failing command or check stops the block and leaves your shell open; "
        "deletions list what they delete and ask first. Needs kubectl, helm, jq and ssh (with sudo) to the nodes.",
        "",
        "Every kubectl and helm command is pinned to "
        + (
            f"the context `{plan.inputs.options['kube_context']}`"
            if plan.inputs.options.get("kube_context")
            else f"the context in `${CONTEXT_VARIABLE}` (the plan was made offline): "
            f"`export {CONTEXT_VARIABLE}=<context of the planned cluster>` first"
        )
        + (
            f" and the kubeconfig `{plan.inputs.options['kubeconfig']}`"
            if plan.inputs.options.get("kubeconfig")
            else ""
        )
        + "; the preflight proves the cluster is the one planned.",
        "",
        "## Decisions",
        "",
    ]
    for d in plan.decisions:
        out.append(f"- **{d.option}** = `{json.dumps(d.value)}` ({d.origin}): {d.reason}")
    out.append("")
    if plan.generated:
        out += ["## Generated values", ""]
        out += [f"- `{g.name}` = `{g.value}` ({g.origin}) {g.note}".rstrip() for g in plan.generated]
        out.append("")
    if plan.warnings:
        out += ["## Warnings", ""]
        out += [f"- {w}" for w in plan.warnings]
        out.append("")
    if plan.blocking_pdbs:
        out += ["## PodDisruptionBudgets that block evictions now", ""]
        out += [f"- {p}" for p in plan.blocking_pdbs]
        out.append("")
    for pi, phase in enumerate(plan.phases, 1):
        out += [f"## {pi}. {phase.title}", ""]
        if phase.description:
            out += [phase.description, ""]
        for si, step in enumerate(phase.steps, 1):
            out += step_markdown(step, plan, f"{pi}.{si}")
    return "\n".join(out) + "\n"


_SHELL_WORDS = {"do", "then", "else", "if", "!", "time", "sudo", "done", "fi"}
_SEPARATORS = {"|", "||", "&&", ";", "(", ")", "&", ">", ">>", "<", "<<", "2>", "$"}


def commands_in(markdown: str, programs: tuple[str, ...] = ("kubectl", "helm")) -> list[list[str]]:
    """The argument vectors of the ``programs`` invocations in the runbook's bash blocks (heredoc bodies and
    text inside quotes skipped), for checking that they parse."""
    out: list[list[str]] = []
    in_block = False
    heredoc: str | None = None
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_block = line.startswith("```bash") and not in_block
            continue
        if not in_block or line.lstrip().startswith("#"):
            continue
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        command = line
        if "<<'" in line:
            heredoc = line.split("<<'", 1)[1].split("'", 1)[0]
            command = line.split("<<'", 1)[0]
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        try:
            tokens = list(lex)
        except ValueError as e:
            raise ValueError(f"runbook line does not parse as shell: {line!r} ({e})") from e
        segment: list[str] = []
        for tok in [*tokens, ";"]:
            # shlex joins adjacent operators (`);`, `)|`): any token made only of them ends a command
            if (
                tok in _SEPARATORS
                or (tok.endswith((">", "|")) and set(tok) <= set("<>|&2"))
                or (tok != "" and set(tok) <= set("();&|"))
            ):
                while segment and segment[0] in _SHELL_WORDS:
                    segment.pop(0)
                if segment and segment[0] in programs:
                    out.append(segment)
                segment = []
            else:
                segment.append(tok)
    return out
