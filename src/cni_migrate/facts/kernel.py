"""Kernel version strings as nodes report them (``6.1.4-1.el7.elrepo.x86_64``, ``5.15.0-91-generic``)."""

from __future__ import annotations

import re

_KERNEL_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def kernel_key(version: str) -> tuple[int, int, int]:
    """Sortable (major, minor, patch) of a kernel version string; unparseable versions sort lowest."""
    m = _KERNEL_RE.match(version.strip())
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def parse_kernel(version: str) -> tuple[int, int, int] | None:
    m = _KERNEL_RE.match(version.strip())
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def kernel_at_least(version: str, minimum: tuple[int, int, int]) -> bool:
    parsed = parse_kernel(version)
    return parsed is not None and parsed >= minimum
