"""YAML loading for untrusted input (snapshots, Helm values files): the PyYAML C parser with three guards.

* Duplicate keys in a mapping are an error naming the key and its line (PyYAML silently keeps the last one).
* Alias expansion is bounded: a document whose aliases would expand to more than :data:`MAX_ALIAS_NODES` nodes
  beyond the nodes actually written ("billion laughs": 1.6 KB expanding to gigabytes once serialised or walked)
  is refused, as is a recursive alias.
* Nesting deeper than the interpreter can construct (RecursionError) is refused rather than crashing.

Every failure is a :class:`YamlInputError` carrying a one-line message and the line where known.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Nodes aliases may add on top of the nodes written out. Kubernetes objects never use aliases; Helm values files
# use a few anchors for repeated blocks. A million extra nodes is far above any honest use and far below trouble.
MAX_ALIAS_NODES = 1_000_000
MAX_DEPTH = 400


class YamlInputError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message if line is None else f"line {line}: {message}")


class _StrictLoader(_Base):  # type: ignore[misc]
    """The safe loader, refusing duplicate mapping keys."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise YamlInputError(
                            f"duplicate key {key_node.value!r} in a mapping (a later value would silently replace "
                            "the earlier one)",
                            line=key_node.start_mark.line + 1,
                        )
                    seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _check_expansion(root: Node) -> None:
    """Count the nodes of the document as written and as expanded (each alias counted in full), without
    recursion; refuse recursive aliases, runaway expansion and excessive depth."""
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    unique = 0
    # Iterative post-order walk: (node, depth, children visited?)
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        nid = id(node)
        if done:
            on_path.discard(nid)
            total = 1
            for child in _children(node):
                total += expanded[id(child)]
            expanded[nid] = total
            if total - unique > MAX_ALIAS_NODES:
                raise YamlInputError(
                    f"aliases expand the document to more than {MAX_ALIAS_NODES:,} extra nodes "
                    f"(from {unique:,} written); refusing it (a YAML alias bomb)",
                    line=node.start_mark.line + 1,
                )
            continue
        if nid in expanded:
            continue
        if nid in on_path:
            raise YamlInputError("a recursive YAML alias (an anchor used inside itself)", line=node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise YamlInputError(f"nesting deeper than {MAX_DEPTH} levels", line=node.start_mark.line + 1)
        unique += 1
        on_path.add(nid)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) not in expanded:
                stack.append((child, depth + 1, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _mark_line(e: yaml.MarkedYAMLError) -> int | None:
    mark = e.problem_mark or e.context_mark
    return mark.line + 1 if mark is not None else None


def load_all(data: bytes | str) -> Iterator[Any]:
    """The documents of a YAML stream, guarded as described in the module docstring."""
    if (b"\x00" in data) if isinstance(data, bytes) else ("\x00" in data):
        raise YamlInputError("binary data (a NUL byte), not YAML text")
    # Without an anchor there can be no alias: the expansion walk is skipped on plain kubectl output.
    guard_aliases = (b"&" in data) if isinstance(data, bytes) else ("&" in data)
    loader = _StrictLoader(data)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node() said there is one
                continue
            if guard_aliases:
                _check_expansion(node)
            yield loader.construct_document(node)
    except YamlInputError:
        raise
    except yaml.MarkedYAMLError as e:
        raise YamlInputError(f"malformed YAML: {e.problem or e.context or e}", line=_mark_line(e)) from e
    except yaml.YAMLError as e:
        raise YamlInputError(f"malformed YAML: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    except RecursionError as e:
        raise YamlInputError("nesting too deep to read") from e
    except UnicodeDecodeError as e:
        raise YamlInputError(f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    finally:
        loader.dispose()


def load_one(data: bytes | str) -> Any:
    """A single-document YAML text (None when empty); more than one document is an error."""
    docs = list(load_all(data))
    if len(docs) > 1:
        raise YamlInputError(f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None
