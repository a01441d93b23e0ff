"""The only package that talks to the Kubernetes API.

Errors and resource types are importable cheaply; ``cni_migrate.kube.client`` (which loads the client library)
is imported only by code that really connects.
"""

from cni_migrate.kube.errors import (
    AmbiguousWrite,
    ApiStatusError,
    ClusterUnreachable,
    Conflict,
    EvictionRefused,
    Forbidden,
    Invalid,
    KubeConfigurationError,
    KubeError,
    NotFound,
)
from cni_migrate.kube.types import ResourceType

__all__ = [
    "AmbiguousWrite",
    "ApiStatusError",
    "ClusterUnreachable",
    "Conflict",
    "EvictionRefused",
    "Forbidden",
    "Invalid",
    "KubeConfigurationError",
    "KubeError",
    "NotFound",
    "ResourceType",
]
