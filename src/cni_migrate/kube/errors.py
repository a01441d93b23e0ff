"""Errors of the API layer; importable without loading the client library (keeps CLI start-up fast)."""

from __future__ import annotations


class KubeError(Exception):
    """A failure talking to the cluster, with a message fit for an operator at 2 a.m."""


class KubeConfigurationError(KubeError):
    """Bad --kubeconfig/--context/KUBECONFIG: user input, exit code 2."""


class ClusterUnreachable(KubeError):
    pass


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """A write lost a race (409): re-read and retry, or give up."""


class Forbidden(KubeError):
    pass


class ApiStatusError(KubeError):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"HTTP {code}: {message}")


class Invalid(KubeError):
    """The API server rejected the object (422): a bad plan or manifest, not a passing fault."""


class AmbiguousWrite(KubeError):
    """A non-idempotent write may or may not have landed (the connection failed after sending): re-read."""


class EvictionRefused(KubeError):
    """An eviction refused by a PodDisruptionBudget (HTTP 429 with a DisruptionBudget cause)."""

    def __init__(self, message: str, budgets: list[str]) -> None:
        self.budgets = budgets
        super().__init__(message)
