"""Every ``cni-migrate`` command line in README.md and docs/*.md that uses a bundled example runs, so the docs cannot
drift from the CLI.

Command lines are taken from fenced ``bash``/``sh``/``shell``/``console`` blocks (also inside block quotes; in
``console`` blocks only ``$ `` lines). A line runs when it uses ``examples/`` and names no cluster; it must exit 0
or 1 (findings are fine, a usage error or a traceback is not). The lines of one document run in order in one
scratch directory holding a link to ``examples/``, so a later line may read what an earlier one wrote
(``... > pools.yaml``, then ``--pools pools.yaml``). Every other ``cni-migrate`` line is reported as skipped, with
the reason (a live cluster, files of the reader's own, a placeholder, a program that is not installed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console", "shell-session", "zsh"}
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
COMMAND = re.compile(r"^(?:\S*/)?(?:kubectl[ -])?cni-migrate(?:\s|$)")
BIN = Path(sys.executable).parent

# Lines that use a bundled example but cannot run here: (substring of the line, reason). Keep the reason concrete.
SKIP: list[tuple[str, str]] = []


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` outside quotes."""
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def extract(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for every shell command line in the fenced shell blocks of ``path``."""
    out: list[tuple[int, str]] = []
    lang: str | None = None
    fence = ""
    pending: tuple[int, str] | None = None
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.sub(r"^\s*(>\s?)+", "", raw)  # block quotes
        m = FENCE.match(line.strip())
        if lang is None:
            if m:
                fence, lang = m.group(1), (m.group(2) or "").lower()
            continue
        if m and line.strip().startswith(fence) and not m.group(2):
            lang = None
            continue
        if lang not in SHELL_LANGS:
            continue
        text = line.strip()
        if pending is None:
            if lang in ("console", "shell-session"):
                if not text.startswith("$ "):
                    continue
                text = text[2:]
            if not text or text.startswith("#"):
                continue
            pending = (no, "")
        start, acc = pending
        acc += text
        if acc.endswith("\\"):
            pending = (start, acc[:-1].rstrip() + " ")
            continue
        pending = None
        out.append((start, _strip_comment(acc)))
    return out


def _programs(command: str) -> list[str]:
    """The program of each stage of a pipeline (``a | b && c``)."""
    stages = re.split(r"\|\|?|&&|;", command)
    names = []
    for stage in stages:
        try:
            words = shlex.split(stage)
        except ValueError:
            continue
        words = [w for w in words if "=" not in w.split("/")[0]]  # VAR=value prefixes
        if words:
            names.append(words[0])
    return names


def classify(command: str) -> str | None:
    """None when the line runs here, else why it is skipped."""
    for needle, reason in SKIP:
        if needle in command:
            return reason
    if re.search(r"--context|--kubeconfig", command):
        return "needs a live cluster (--context/--kubeconfig)"
    if not re.search(r"(?<![\w./-])examples/", command):
        return "uses no bundled example (a live cluster or the reader's own files)"
    if re.search(r"<[\w-]+>|\s\.\.\.(\s|$)", command):
        return "holds a placeholder"
    if "$(" in command or "`" in command:
        return "expands a command of the reader's own"
    missing = [p for p in _programs(command)[1:] if shutil.which(p) is None and not p.startswith("cni-migrate")]
    if missing:
        return f"needs {', '.join(missing)}, not installed here"
    return None


def collect() -> list[DocCommand]:
    out: list[DocCommand] = []
    for path in DOCS:
        for no, text in extract(path):
            if COMMAND.match(text):
                out.append(DocCommand(str(path.relative_to(ROOT)), no, text, classify(text)))
    return out


ALL = collect()
RUNNABLE = [c for c in ALL if c.skip is None]
SKIPPED = [c for c in ALL if c.skip is not None]


def test_the_extractor_finds_the_documented_commands() -> None:
    docs_with_runs = {c.doc for c in RUNNABLE}
    assert {"README.md", "docs/lint.md", "docs/facts.md", "docs/plan.md"} <= docs_with_runs, docs_with_runs
    assert len(RUNNABLE) >= 12, [c.id for c in RUNNABLE]
    # The extractor itself: continuation lines, console prompts, comments, block quotes.
    sample = ROOT / "README.md"
    assert any(t.startswith("cni-migrate --snapshot examples/calico-bgp-lossy plan") for _, t in extract(sample))
    lint_doc = extract(ROOT / "docs" / "lint.md")
    assert any(t.startswith("cni-migrate lint --helm-command @examples/values/helm-install.sh") for _, t in lint_doc)


def test_extract_handles_continuations_prompts_and_comments(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(
        "text\n```bash\n# a comment\ncni-migrate --snapshot examples/a \\\n  discover   # trailing\n```\n"
        "```console\n$ cni-migrate lint x.yaml --set 'a=#b'\noutput line\n```\n"
        "> ```sh\n> cni-migrate plan\n> ```\n```python\ncni-migrate ignored\n```\n"
    )
    assert extract(md) == [
        (4, "cni-migrate --snapshot examples/a discover"),
        (8, "cni-migrate lint x.yaml --set 'a=#b'"),
        (12, "cni-migrate plan"),
    ]


def _run_doc(doc: str, tmp_path: Path) -> list[str]:
    work = tmp_path / doc.replace("/", "_")
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(work / "no-kubeconfig"),  # never the machine's own cluster
        "HOME": str(work),
        "COLUMNS": "160",
    }
    failures = []
    for c in (c for c in RUNNABLE if c.doc == doc):
        command = re.sub(r"^(?:\S*/)?kubectl[ -]cni-migrate", "cni-migrate", c.text)
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        produced = proc.stdout.strip() or any(
            (work / w).is_file() and (work / w).stat().st_size for w in re.findall(r">\s*(\S+)", command)
        )
        if proc.returncode not in (0, 1) or "Traceback" in proc.stderr or not produced:
            failures.append(f"{c.id}: exit {proc.returncode}: {c.text}\n{proc.stderr.strip()[-800:]}")
    return failures


@pytest.mark.parametrize("doc", sorted({c.doc for c in RUNNABLE}))
def test_documented_commands_run(doc: str, tmp_path: Path) -> None:
    failures = _run_doc(doc, tmp_path)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("command", SKIPPED, ids=[c.id for c in SKIPPED])
def test_documented_commands_not_run_here(command: DocCommand) -> None:
    assert command.skip
    pytest.skip(f"{command.skip}: {command.text}")
