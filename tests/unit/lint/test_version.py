"""Version strings lint accepts, and the ones it rejects with a clear message."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.lint import LintInputError, parse_cilium_version


@pytest.mark.parametrize(
    ("text", "minor", "patch", "shown"),
    [("1.16", 16, None, "1.16"), ("1.16.5", 16, 5, "1.16.5"), ("v1.12.6", 12, 6, "1.12.6"),
     (" 1.15.0-rc.1 ", 15, 0, "1.15.0-rc.1"), ("1.11", 11, None, "1.11"), ("1.21.0", 21, 0, "1.21.0")],
)  # fmt: skip
def test_accepted(text: str, minor: int, patch: int | None, shown: str) -> None:
    v = parse_cilium_version(text)
    assert (v.major, v.minor, v.patch, str(v)) == (1, minor, patch, shown)
    assert v.catalog_minor == min(minor, 19)


@pytest.mark.parametrize(
    ("text", "why"),
    [("1", "not of the form"), ("1.x", "not of the form"), ("~1.16", "constraints"), ("1.16.5.1", "not of the form"),
     ("2.0", "only Cilium 1.x"), ("1.10.8", "1.11 to 1.19"), ("", "not of the form")],
)  # fmt: skip
def test_rejected(text: str, why: str) -> None:
    with pytest.raises(LintInputError, match=why):
        parse_cilium_version(text)
