"""kubectl and helm as subprocesses, pinned to the cluster the executor talks to.

Every argv gets ``--kubeconfig``/``--context`` (helm: ``--kube-context``) of the run, and shell checks get
``kubectl``/``helm`` shell functions that add them, so a check can never look at another cluster than the one
being changed. Credentials are never copied: the user's kubeconfig is referenced where it is.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cni_migrate.actions.executor.errors import PlanInputError


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def brief(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1][:300] if text else f"exit code {self.exit_code}"


@dataclass
class Tools:
    kubeconfig: str | None
    context: str | None
    kubectl: str = "kubectl"
    helm: str = "helm"
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls, kubeconfig: str | None, context: str | None, kubectl: str | None, helm: str | None) -> Tools:
        def locate(name: str, given: str | None) -> str:
            path = given or os.environ.get(f"CNI_MIGRATE_{name.upper()}") or shutil.which(name)
            return str(path or name)

        return cls(kubeconfig, context, kubectl=locate("kubectl", kubectl), helm=locate("helm", helm))

    def require(self, name: str) -> str:
        binary = self.kubectl if name == "kubectl" else self.helm
        if shutil.which(binary) is None and not Path(binary).is_file():
            raise PlanInputError(f"the plan runs {name}, but {binary!r} is not installed or not on PATH")
        return binary

    def kubectl_flags(self) -> list[str]:
        out = []
        if self.kubeconfig:
            out.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            out.append(f"--context={self.context}")
        return out

    def helm_flags(self) -> list[str]:
        out = []
        if self.kubeconfig:
            out.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            out.append(f"--kube-context={self.context}")
        return out

    def pinned(self, argv: list[str]) -> list[str]:
        """argv with the binary resolved and the cluster pinned (``kubectl ...`` / ``helm ...`` only)."""
        if not argv:
            raise ValueError("empty command")
        if argv[0] == "kubectl":
            return [self.kubectl, *self.kubectl_flags(), *argv[1:]]
        if argv[0] == "helm":
            return [self.helm, *argv[1:], *self.helm_flags()]
        return list(argv)

    def shell_prelude(self) -> str:
        k = " ".join(shlex.quote(a) for a in [self.kubectl, *self.kubectl_flags()])
        h = " ".join(shlex.quote(a) for a in self.helm_flags())
        return f'kubectl() {{ {k} "$@"; }}\nhelm() {{ {shlex.quote(self.helm)} "$@" {h}; }}\n'

    def run(self, argv: list[str], *, timeout: float = 120.0, cwd: Path | None = None) -> ToolResult:
        full = self.pinned(argv)
        return self._exec(full, timeout=timeout, cwd=cwd)

    def run_shell(self, script: str, *, timeout: float = 120.0, cwd: Path | None = None) -> ToolResult:
        full = ["sh", "-c", "set -e\n" + self.shell_prelude() + script]
        return self._exec(full, timeout=timeout, cwd=cwd, shown=["sh", "-c", script])

    def _exec(self, argv: list[str], *, timeout: float, cwd: Path | None, shown: list[str] | None = None) -> ToolResult:
        env = {**os.environ, **self.env}
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False)
        except FileNotFoundError as e:
            return ToolResult(shown or argv, 127, "", f"{argv[0]}: not found ({e.strerror})")
        except subprocess.TimeoutExpired:
            return ToolResult(shown or argv, 124, "", f"timed out after {timeout:.0f} s")
        return ToolResult(shown or argv, p.returncode, p.stdout, p.stderr)
