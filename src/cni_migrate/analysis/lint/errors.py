"""The one error type of the lint engine: bad input the user can fix (the CLI maps it to exit code 2)."""

from __future__ import annotations


class LintInputError(ValueError):
    """A malformed version, ``--set`` expression, helm command line or values document."""
