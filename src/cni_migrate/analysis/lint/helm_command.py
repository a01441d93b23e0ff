"""A pasted ``helm install|upgrade|template`` command line, as blogs and runbooks show it.

The text may hold several shell lines (``SEED=$(...)`` before the command, ``$ `` prompts, comments, line
continuations, a pipe into ``kubectl apply``). The first ``helm install``, ``helm upgrade`` or ``helm template``
command is taken. Shell expressions are never expanded: ``$SEED``, ``${X}``, ``$(cmd ...)`` and backquotes stay
in the value as written, so rules that would need their value report them as not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from cni_migrate.analysis.lint.errors import LintInputError

HelmAction = Literal["install", "upgrade", "template"]

# Flags (of helm and its install/upgrade/template sub-commands) that take a value; every other flag is boolean.
_VALUE_FLAGS = {
    "-f",
    "--values",
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--version",
    "-n",
    "--namespace",
    "--timeout",
    "--description",
    "--post-renderer",
    "--post-renderer-args",
    "--repo",
    "--username",
    "--password",
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--keyring",
    "-o",
    "--output",
    "--name-template",
    "--history-max",
    "--kube-version",
    "-a",
    "--api-versions",
    "-s",
    "--show-only",
    "--output-dir",
    "--labels",
    "-l",
    "--kube-context",
    "--kubeconfig",
    "--kube-apiserver",
    "--kube-token",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-ca-file",
    "--kube-tls-server-name",
    "--registry-config",
    "--repository-config",
    "--repository-cache",
    "--burst-limit",
    "--qps",
    "--cascade",
    "--max-history",
}

_ACTIONS: tuple[HelmAction, ...] = ("install", "upgrade", "template")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PROMPT = re.compile(r"^(?:[$#%>]|\[.*|.*[$#%>])$")


@dataclass
class HelmCommand:
    action: HelmAction
    release: str | None = None
    chart: str | None = None
    version: str | None = None
    namespace: str | None = None
    values_files: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    set_strings: list[str] = field(default_factory=list)
    set_files: list[str] = field(default_factory=list)
    set_json: list[str] = field(default_factory=list)
    set_literals: list[str] = field(default_factory=list)
    reuse_values: bool = False
    reset_values: bool = False
    install: bool = False  # helm upgrade --install
    generate_name: bool = False
    words: list[str] = field(default_factory=list)  # the command's words, for messages

    @property
    def effective_action(self) -> Literal["install", "upgrade"] | None:
        """What Helm will do to the release; ``None`` for ``helm template`` (no release is touched)."""
        if self.action == "template":
            return None
        return self.action


# --- tokenizer ----------------------------------------------------------------------------------------------


def _opaque_end(s: str, i: int) -> int:
    """End index (exclusive) of the shell expression starting at ``s[i]`` (``$(...)``, ``${...}``, backquotes)."""
    if s[i] == "`":
        j = s.find("`", i + 1)
        return len(s) if j < 0 else j + 1
    opener = s[i + 1]
    closer = ")" if opener == "(" else "}"
    depth = 0
    j = i + 1
    quote: str | None = None
    while j < len(s):
        ch = s[j]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                j += 1
        elif ch in "'\"":
            quote = ch
        elif ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return len(s)


def tokenize(text: str) -> list[list[str]]:
    """Split shell text into commands (lists of words): quotes, escapes and ``$(...)`` are kept as the shell would
    group them, without expanding anything. Commands end at newlines, ``;``, ``&&``, ``||`` and ``|``."""
    s = re.sub(r"\\\r?\n", " ", text)
    commands: list[list[str]] = []
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    i = 0

    def end_word() -> None:
        nonlocal in_word
        if in_word:
            words.append("".join(buf))
            buf.clear()
            in_word = False

    def end_command() -> None:
        end_word()
        if words:
            commands.append(list(words))
            words.clear()

    while i < len(s):
        ch = s[i]
        if ch in " \t":
            end_word()
            i += 1
        elif ch in "\r\n;":
            end_command()
            i += 1
        elif ch in "|&":
            end_command()
            i += 2 if s[i : i + 2] in ("||", "&&") else 1
        elif ch == "#" and not in_word:
            j = s.find("\n", i)
            i = len(s) if j < 0 else j
        elif ch == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise LintInputError("helm command: unterminated single quote")
            buf.append(s[i + 1 : j])
            in_word = True
            i = j + 1
        elif ch == '"':
            i += 1
            in_word = True
            while True:
                if i >= len(s):
                    raise LintInputError("helm command: unterminated double quote")
                c = s[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < len(s) and s[i + 1] in '"\\$`':
                    buf.append(s[i + 1])
                    i += 2
                elif c == "`" or (c == "$" and i + 1 < len(s) and s[i + 1] in "({"):
                    j = _opaque_end(s, i)
                    buf.append(s[i:j])
                    i = j
                else:
                    buf.append(c)
                    i += 1
        elif ch == "\\" and i + 1 < len(s):
            buf.append(s[i + 1])
            in_word = True
            i += 2
        elif ch == "`" or (ch == "$" and i + 1 < len(s) and s[i + 1] in "({"):
            j = _opaque_end(s, i)
            buf.append(s[i:j])
            in_word = True
            i = j
        else:
            buf.append(ch)
            in_word = True
            i += 1
    end_command()
    return commands


# --- command parsing ----------------------------------------------------------------------------------------


def _helm_words(command: list[str]) -> list[str] | None:
    """The words from ``helm`` on, skipping prompts (``$``, ``[root@host ~]#``), env assignments and sudo."""
    for i, w in enumerate(command):
        if w.rsplit("/", 1)[-1] in ("helm", "helm3"):
            return command[i:]
        if not (w in ("sudo", "env", "exec", "time") or _ENV_ASSIGNMENT.match(w) or _PROMPT.match(w)):
            return None
    return None


def _split_flag(word: str) -> tuple[str, str | None]:
    if word.startswith("--") and "=" in word:
        name, _, value = word.partition("=")
        return name, value
    return word, None


def parse_helm_command(text: str) -> HelmCommand:
    """Find the ``helm install|upgrade|template`` command in ``text`` and extract what lint needs from it."""
    candidates = [w for c in tokenize(text) if (w := _helm_words(c)) is not None]
    if not candidates:
        raise LintInputError("no helm command found in the --helm-command text (expected 'helm install ...')")
    for words in candidates:
        cmd = _parse_words(words)
        if cmd is not None:
            return cmd
    subs = ", ".join(sorted({next((w for w in c[1:] if not w.startswith("-")), "?") for c in candidates}))
    raise LintInputError(f"the helm command is not install, upgrade or template (found: helm {subs})")


def _parse_words(words: list[str]) -> HelmCommand | None:
    positionals: list[str] = []
    flags: list[tuple[str, str | None]] = []
    i = 1
    while i < len(words):
        w = words[i]
        if w == "--":
            positionals.extend(words[i + 1 :])
            break
        if w.startswith("-") and len(w) > 1:
            name, value = _split_flag(w)
            if value is None and name in _VALUE_FLAGS:
                if i + 1 >= len(words):
                    raise LintInputError(f"helm command: flag {name} needs a value")
                value = words[i + 1]
                i += 1
            flags.append((name, value))
        else:
            positionals.append(w)
        i += 1
    if not positionals or positionals[0] not in _ACTIONS:
        return None
    action: HelmAction = (
        "install" if positionals[0] == "install" else ("upgrade" if positionals[0] == "upgrade" else "template")
    )
    cmd = HelmCommand(action=action, words=list(words))
    for name, value in flags:
        v = value or ""
        if name in ("-f", "--values"):
            cmd.values_files.extend(p for p in v.split(",") if p)
        elif name == "--set":
            cmd.sets.append(v)
        elif name == "--set-string":
            cmd.set_strings.append(v)
        elif name == "--set-file":
            cmd.set_files.append(v)
        elif name == "--set-json":
            cmd.set_json.append(v)
        elif name == "--set-literal":
            cmd.set_literals.append(v)
        elif name == "--version":
            cmd.version = v
        elif name in ("-n", "--namespace"):
            cmd.namespace = v
        elif name == "--reuse-values":
            cmd.reuse_values = value is None or value.lower() == "true"
        elif name == "--reset-values":
            cmd.reset_values = value is None or value.lower() == "true"
        elif name in ("-i", "--install"):
            cmd.install = value is None or value.lower() == "true"
        elif name in ("-g", "--generate-name"):
            cmd.generate_name = True
    args = positionals[1:]
    if action == "install" and cmd.generate_name:
        cmd.chart = args[0] if args else None
    elif len(args) >= 2:
        cmd.release, cmd.chart = args[0], args[1]
    elif len(args) == 1:
        if action == "template":
            cmd.chart = args[0]
        else:
            raise LintInputError(f"helm {action} needs a release name and a chart, got only {args[0]!r}")
    elif action != "template":
        raise LintInputError(f"helm {action} needs a release name and a chart")
    return cmd
