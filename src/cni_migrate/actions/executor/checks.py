"""The plan's checks (``command``, ``object``, ``nodeport``, ``fact``), evaluated against the live cluster.

A check either passes, fails with the evidence, or is *skipped* because the user asked for a class of checks not
to run (``--skip-checks exec,node,nodeport``, e.g. on a simulated cluster whose pods run no containers). Skipped
checks are journaled and reported as not run, never as passed.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cni_migrate.actions.executor.tools import Tools
from cni_migrate.actions.nodes.transport import NodeTransport, TransportError
from cni_migrate.analysis.plan.model import CommandCheck, FactCheck, NodePortCheck, ObjectCheck
from cni_migrate.kube import KubeError
from cni_migrate.kube.rest import Rest

AnyCheck = CommandCheck | ObjectCheck | NodePortCheck | FactCheck
# exec: runs in a container (kubectl exec/logs, agent pods); node: a root shell on a node; nodeport: HTTP to a node
# port; cni: pod addresses the CNI hands out. On a simulated cluster (kwok) none of these has a real answer.
SKIPPABLE = ("exec", "node", "nodeport", "cni")
_IP = re.compile(r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]*:[0-9a-fA-F:]+:[0-9a-fA-F]*)(?![\w.:])")


@dataclass(frozen=True)
class CheckResult:
    description: str
    state: Literal["pass", "fail", "skipped", "warn"]
    detail: str = ""


def check_class(check: AnyCheck) -> str | None:
    """Which ``--skip-checks`` class a check belongs to, if any."""
    if isinstance(check, NodePortCheck):
        return "nodeport"
    if isinstance(check, CommandCheck):
        if check.nodes:
            return "node"
        if check.cilium_pod_on or (check.argv[:1] == ["kubectl"] and ({"exec", "logs"} & set(check.argv))):
            return "exec"
        if check.expect_in_cidr:
            return "cni"
    return None


@dataclass
class CheckRunner:
    rest: Rest
    tools: Tools
    transport: NodeTransport | None
    skip: frozenset[str]
    cwd: Path | None = None  # the plan's directory: relative paths in checks (backups) are relative to it
    cilium_namespace: str = "kube-system"

    def run(self, check: AnyCheck) -> list[CheckResult]:
        cls = check_class(check)
        if cls is not None and cls in self.skip:
            return [CheckResult(check.description, "skipped", f"not run: --skip-checks {cls}")]
        if isinstance(check, FactCheck):
            state: Literal["pass", "warn"] = check.result
            return [CheckResult(check.description, state, f"planner: {check.detail}")]
        if isinstance(check, ObjectCheck):
            return [self._object(check)]
        if isinstance(check, NodePortCheck):
            return self._nodeport(check)
        return self._command(check)

    # --- object ------------------------------------------------------------------------------------------

    def _object(self, c: ObjectCheck) -> CheckResult:
        t = c.target
        try:
            obj = self.rest.get(t.api_version, t.kind, t.name, t.namespace)
        except KubeError as e:
            if c.state == "absent" and "does not serve" in str(e):
                return CheckResult(c.description, "pass", f"{t.kind} is not even served any more")
            return CheckResult(c.description, "fail", str(e))
        if c.state == "absent":
            if obj is None:
                return CheckResult(c.description, "pass", f"{t.text()} is absent")
            return CheckResult(c.description, "fail", f"{t.text()} still exists")
        if obj is None:
            return CheckResult(c.description, "fail", f"{t.text()} does not exist")
        if c.jsonpath:
            value = jsonpath(obj, c.jsonpath)
            text = "" if value is None else (value if isinstance(value, str) else str(value).lower())
            if c.equals is not None and text != c.equals:
                return CheckResult(c.description, "fail", f"{t.text()} {c.jsonpath} is {text!r}, not {c.equals!r}")
            return CheckResult(c.description, "pass", f"{c.jsonpath} = {text!r}")
        return CheckResult(c.description, "pass", f"{t.text()} exists")

    # --- nodeport ----------------------------------------------------------------------------------------

    def _nodeport(self, c: NodePortCheck) -> list[CheckResult]:
        svc = self.rest.get("v1", "Service", c.service.name, c.service.namespace)
        ports = [p.get("nodePort") for p in ((svc or {}).get("spec") or {}).get("ports") or [] if p.get("nodePort")]
        if not ports:
            return [CheckResult(c.description, "fail", f"{c.service.text()} has no node port")]
        out = []
        for node, address in sorted(c.addresses.items()):
            url = f"http://{address}:{ports[0]}{c.path}"
            try:
                with urllib.request.urlopen(url, timeout=c.timeout_seconds) as resp:
                    out.append(CheckResult(f"{c.description} ({node})", "pass", f"{url}: HTTP {resp.status}"))
            except (urllib.error.URLError, OSError) as e:
                out.append(CheckResult(f"{c.description} ({node})", "fail", f"{url}: {e}"))
        return out

    # --- command -----------------------------------------------------------------------------------------

    def _command(self, c: CommandCheck) -> list[CheckResult]:
        if c.nodes:
            if self.transport is None:
                return [CheckResult(c.description, "fail", "a node check needs --node-transport")]
            out = []
            script = c.shell if c.shell is not None else " ".join(c.argv)
            for node in c.nodes:
                try:
                    r = self.transport.run(node, script, timeout=120)
                except TransportError as e:
                    out.append(CheckResult(f"{c.description} ({node})", "fail", str(e)))
                    continue
                out.append(self._judge(f"{c.description} ({node})", c, r.exit_code, r.stdout, r.stderr))
            return out
        argv = list(c.argv)
        if c.cilium_pod_on:
            pod = self._cilium_pod(c.cilium_pod_on)
            if pod is None:
                return [CheckResult(c.description, "fail", f"no Cilium agent pod on node {c.cilium_pod_on}")]
            argv = ["kubectl", "-n", self.cilium_namespace, "exec", pod, "-c", "cilium-agent", "--", *argv]
        t = self.tools.run_shell(c.shell, cwd=self.cwd) if c.shell is not None else self.tools.run(argv, cwd=self.cwd)
        return [self._judge(c.description, c, t.exit_code, t.stdout, t.stderr)]

    def _cilium_pod(self, node: str) -> str | None:
        pods = self.rest.list(
            "v1",
            "Pod",
            namespace=self.cilium_namespace,
            label_selector="k8s-app=cilium",
            field_selector=f"spec.nodeName={node}",
        )
        return str(pods[0]["metadata"]["name"]) if pods else None

    @staticmethod
    def _judge(description: str, c: CommandCheck, code: int, stdout: str, stderr: str) -> CheckResult:
        if code != 0:
            last = (stderr.strip() or stdout.strip()).splitlines()
            return CheckResult(description, "fail", f"exit code {code}: {last[-1][:300] if last else ''}")
        if c.expect and not re.search(c.expect, stdout, re.MULTILINE):
            return CheckResult(description, "fail", f"output does not match {c.expect!r}: {stdout.strip()[:300]!r}")
        if c.reject and re.search(c.reject, stdout, re.MULTILINE):
            return CheckResult(description, "fail", f"output matches {c.reject!r}: {stdout.strip()[:300]!r}")
        if c.expect_in_cidr:
            nets = [ipaddress.ip_network(n, strict=False) for n in c.expect_in_cidr]
            for line in stdout.splitlines():
                if c.ignore_lines and re.search(c.ignore_lines, line):
                    continue
                for m in _IP.finditer(line):
                    try:
                        ip = ipaddress.ip_address(m.group(1))
                    except ValueError:
                        continue
                    if not any(ip in n for n in nets):
                        return CheckResult(description, "fail", f"{ip} is outside {', '.join(c.expect_in_cidr)}")
        return CheckResult(description, "pass", stdout.strip().splitlines()[0][:200] if stdout.strip() else "ok")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of kubectl's JSONPath the plans use: ``{.a.b[0].c}`` or ``.a.b``; keys with dots quoted
    with backslashes (``.metadata.labels.kubernetes\\.io/os``)."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1]
    p = p.lstrip("$")
    tokens = re.findall(r"\.((?:\\\.|[^.\[])+)|\[(\d+)\]", p)
    cur = obj
    for key, index in tokens:
        if cur is None:
            return None
        if index:
            cur = cur[int(index)] if isinstance(cur, list) and int(index) < len(cur) else None
        else:
            cur = cur.get(key.replace("\\.", ".")) if isinstance(cur, dict) else None
    return cur
