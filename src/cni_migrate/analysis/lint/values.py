"""Helm values as Helm builds them: layers merged in order, and the ``--set`` family of expressions.

``merge_values`` follows Helm's coalescing: maps merge key by key (recursively), anything else in a later
layer replaces the earlier value, and ``null`` in a later layer removes the key (the chart default applies).

``apply_set`` is a port of Helm 3's ``pkg/strvals`` parser: ``a.b=c``, several assignments separated by
commas, lists as ``{x,y}``, indices as ``a[0]=x`` / ``a[0].b=x`` / ``a[0][1]=x``, ``\\`` escaping ``.``, ``,``,
``=``, ``[`` and itself; ``--set`` types ``true``/``false``/``null`` and integers (not with a leading zero),
``--set-string`` keeps every value a string.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from cni_migrate.analysis.lint.errors import LintInputError

MAX_INDEX = 65536
_MISSING = object()

# An unexpanded shell expression in a value pasted from a command line: $VAR, ${VAR}, $(cmd) or `cmd`.
_SHELL_RE = re.compile(r"\$(?:[A-Za-z_{(])|`")


def merge_values(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge values layers, later layers winning, the way Helm coalesces ``-f`` files and ``--set`` flags."""
    out: dict[str, Any] = {}
    for layer in layers:
        _merge_into(out, layer)
    return out


def _merge_into(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for key, value in src.items():
        k = str(key)
        if value is None:
            dst.pop(k, None)
        elif isinstance(value, Mapping) and isinstance(dst.get(k), dict):
            _merge_into(dst[k], value)
        elif isinstance(value, Mapping):
            fresh: dict[str, Any] = {}
            _merge_into(fresh, value)
            dst[k] = fresh
        else:
            dst[k] = copy.deepcopy(value)


def get_path(values: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted path (``a.b.c``), or ``default`` when any part is missing or null."""
    cur: Any = values
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return default
        cur = cur.get(part, _MISSING)
        if cur is _MISSING or cur is None:
            return default
    return cur


def is_opaque(value: Any) -> bool:
    """True for a string holding an unexpanded shell expression (``$SEED``, ``$(head -c12 ...)``)."""
    return isinstance(value, str) and bool(_SHELL_RE.search(value))


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted path to a non-map value, in document order."""
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(leaf_paths(value, path + "."))
        else:
            out.append(path)
    return out


# --- --set parsing ------------------------------------------------------------------------------------------


def _typed(text: str, string: bool) -> Any:
    if string:
        return text
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"[+-]?\d+", text):
        n = int(text)
        if -(2**63) <= n < 2**63:
            return n
    return text


class _Parser:
    """Helm's strvals state machine over one ``--set`` argument."""

    def __init__(self, text: str, flag: str, string: bool) -> None:
        self.s = text
        self.i = 0
        self.flag = flag
        self.string = string
        self.leaf: Any = _MISSING

    def typed(self, text: str) -> Any:
        return _typed(text, self.string) if self.leaf is _MISSING else self.leaf

    def error(self, why: str) -> LintInputError:
        return LintInputError(f"{self.flag} {self.s!r}: {why}")

    def read_until(self, stops: str) -> tuple[str, str | None]:
        """Read runes up to one of ``stops`` (consumed and returned), honouring backslash escapes."""
        buf: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            self.i += 1
            if ch == "\\":
                if self.i >= len(self.s):
                    buf.append(ch)
                    break
                buf.append(self.s[self.i])
                self.i += 1
                continue
            if ch in stops:
                return "".join(buf), ch
            buf.append(ch)
        return "".join(buf), None

    def parse(self, data: dict[str, Any]) -> None:
        while self.i < len(self.s):
            self.key(data)

    def key(self, data: dict[str, Any]) -> None:
        k, stop = self.read_until("=[,.")
        if stop is None:
            raise self.error(f"key {k!r} has no value")
        if stop == ",":
            raise self.error(f"key {k!r} has no value (cannot end with ,)")
        if not k:
            raise self.error("a key is empty")
        if stop == "=":
            self.assign(data, k)
        elif stop == ".":
            child = data.get(k)
            if not isinstance(child, dict):
                child = {}
            data[k] = child
            self.key(child)
        else:  # "["
            idx = self.index()
            lst = data.get(k)
            data[k] = self.list_item(lst if isinstance(lst, list) else [], idx)

    def assign(self, data: dict[str, Any], k: str) -> None:
        if self.i < len(self.s) and self.s[self.i] == "{":
            self.i += 1
            data[k] = self.list_values()
            return
        v, _ = self.read_until(",")
        data[k] = self.typed(v)

    def list_values(self) -> list[Any]:
        out: list[Any] = []
        while True:
            v, stop = self.read_until(",}")
            if stop is None:
                raise self.error("list must terminate with '}'")
            if v or stop == ",":
                out.append(self.typed(v))
            if stop == "}":
                break
        if self.i < len(self.s):
            if self.s[self.i] != ",":
                raise self.error(f"unexpected {self.s[self.i]!r} after a list, expected ','")
            self.i += 1
        return out

    def index(self) -> int:
        digits, stop = self.read_until("]")
        if stop is None:
            raise self.error("unterminated index '['")
        try:
            idx = int(digits)
        except ValueError:
            raise self.error(f"index {digits!r} is not a number") from None
        if idx < 0:
            raise self.error(f"negative index {idx}")
        if idx > MAX_INDEX:
            raise self.error(f"index {idx} is greater than the maximum supported index {MAX_INDEX}")
        return idx

    def list_item(self, lst: list[Any], idx: int) -> list[Any]:
        while len(lst) <= idx:
            lst.append(None)
        if self.i >= len(self.s):
            raise self.error("an index has no value")
        ch = self.s[self.i]
        self.i += 1
        if ch == "=":
            if self.i < len(self.s) and self.s[self.i] == "{":
                self.i += 1
                lst[idx] = self.list_values()
            else:
                v, _ = self.read_until(",")
                lst[idx] = self.typed(v)
        elif ch == ".":
            child = lst[idx] if isinstance(lst[idx], dict) else {}
            lst[idx] = child
            self.key(child)
        elif ch == "[":
            inner = self.index()
            lst[idx] = self.list_item(lst[idx] if isinstance(lst[idx], list) else [], inner)
        else:
            raise self.error(f"unexpected {ch!r} after an index, expected '=', '.' or '['")
        return lst


def apply_set(values: dict[str, Any], expr: str, *, string: bool = False) -> None:
    """Apply one ``--set`` (or, with ``string=True``, ``--set-string``) argument to ``values`` in place.

    Like Helm's ``strvals.ParseInto``, assignments go straight into the values already merged from files:
    ``a[1]=x`` changes one element of an existing list, ``a=null`` leaves a null (the chart default applies).
    """
    flag = "--set-string" if string else "--set"
    if not expr.strip():
        raise LintInputError(f"{flag} needs key=value, got an empty argument")
    _Parser(expr, flag, string).parse(values)


def apply_set_json(values: dict[str, Any], expr: str) -> None:
    """Apply one ``--set-json key=<JSON>`` argument (Helm 3.10+)."""
    key, sep, raw = expr.partition("=")
    if not sep or not key:
        raise LintInputError(f"--set-json {expr!r}: expected key=<JSON value>")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LintInputError(f"--set-json {expr!r}: the value is not JSON ({e.msg})") from None
    parser = _Parser(key + "=", "--set-json", True)
    parser.leaf = value
    parser.parse(values)


def apply_set_value(values: dict[str, Any], key: str, value: Any, *, flag: str = "--set-file") -> None:
    """Set ``key`` (Helm --set key syntax) to ``value`` as is: ``--set-file`` (file content), ``--set-literal``."""
    if not key:
        raise LintInputError(f"{flag}: empty key")
    parser = _Parser(key + "=", flag, True)
    parser.leaf = value
    parser.parse(values)


# --- typed access for rules ----------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def truthy(value: Any, default: bool = False) -> bool:
    """A values flag as the agent reads it: booleans, ``"true"``/``"false"`` strings (``--set-string``), numbers."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return default
    if isinstance(value, int | float):
        return value != 0
    return bool(value)


class ValuesView:
    """Read-only typed access to merged values by dotted path."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def get(self, path: str, default: Any = None) -> Any:
        return get_path(self.values, path, default)

    def has(self, path: str) -> bool:
        """Set to something other than null (an empty string counts as set)."""
        return get_path(self.values, path, _MISSING) is not _MISSING

    def flag(self, path: str, default: bool = False) -> bool:
        return truthy(self.get(path), default)

    def text(self, path: str, default: str = "") -> str:
        v = self.get(path)
        if v is None:
            return default
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v).strip()

    def lower(self, path: str, default: str = "") -> str:
        return self.text(path, default).lower()

    def strings(self, path: str) -> list[str] | None:
        """A list value (or a string of comma/space separated items, as ``--set a=x`` gives), None if unset."""
        v = self.get(path)
        if v is None:
            return None
        if isinstance(v, list | tuple):
            return [str(x).strip() for x in v if x is not None and str(x).strip()]
        return [p for p in re.split(r"[,\s]+", str(v)) if p]

    def opaque(self, path: str) -> bool:
        return is_opaque(self.get(path))
