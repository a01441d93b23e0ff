"""The only package that talks to the Kubernetes API."""

from cni_migrate.kube.client import (
    ApiStatusError,
    Cluster,
    ClusterUnreachable,
    Conflict,
    Forbidden,
    KubeConfigurationError,
    KubeError,
    NotFound,
    ResourceType,
)

__all__ = [
    "ApiStatusError",
    "Cluster",
    "ClusterUnreachable",
    "Conflict",
    "Forbidden",
    "KubeConfigurationError",
    "KubeError",
    "NotFound",
    "ResourceType",
]
