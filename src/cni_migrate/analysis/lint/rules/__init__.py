"""The rules, grouped like the catalog's sections; importing this package registers them all."""

from __future__ import annotations

from cni_migrate.analysis.lint.rules import (  # noqa: F401 - imported to register their rules
    chart,
    cni,
    encryption,
    features,
    ipam,
    kpr,
    loadbalancing,
    masquerade,
    migration,
    routing,
)
from cni_migrate.analysis.lint.rules.base import REGISTRY, Rule

__all__ = ["REGISTRY", "Rule"]
