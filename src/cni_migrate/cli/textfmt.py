"""Values as people read them in text output: never a Python repr (``None``, ``True``, ``['10.0.0.0/8']``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def text(v: Any) -> str:
    """``-`` for nothing, ``true``/``false``, lists joined with ", " (``-`` when empty), mappings as ``k=v``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, BaseModel):
        v = v.model_dump(mode="json")
    if isinstance(v, list | tuple | set | frozenset):
        return ", ".join(text(x) for x in v) or "-"
    if isinstance(v, dict):
        return ", ".join(f"{k}={text(x)}" for k, x in v.items()) or "-"
    return str(v)
