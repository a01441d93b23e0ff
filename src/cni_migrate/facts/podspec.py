"""Reading what workloads are configured with: container images, env variables and command-line flags."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from cni_migrate.facts.objects import Obj, dig


def pod_spec(obj: Obj) -> dict[str, Any]:
    """The pod spec of a Pod or of a workload's template."""
    spec = dig(obj, "spec", "template", "spec") if obj.get("kind") != "Pod" else obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def containers(obj: Obj, *, init: bool = False) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    keys = ("initContainers", "containers") if init else ("containers",)
    for key in keys:
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def container(obj: Obj, name: str) -> dict[str, Any] | None:
    for c in containers(obj):
        if c.get("name") == name:
            return c
    return None


def image_tag(image: str | None) -> str | None:
    """``quay.io/calico/node:v3.25.0@sha256:...`` -> ``v3.25.0``."""
    if not image:
        return None
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def env_value(c: dict[str, Any], name: str, configmap: Callable[[str, str], str | None] | None = None) -> str | None:
    """An env variable's literal value, or (given a lookup) the ConfigMap key it references."""
    for e in c.get("env") or []:
        if not isinstance(e, dict) or e.get("name") != name:
            continue
        if isinstance(e.get("value"), str):
            return str(e["value"])
        ref = dig(e, "valueFrom", "configMapKeyRef")
        if configmap is not None and isinstance(ref, dict) and ref.get("name") and ref.get("key"):
            return configmap(str(ref["name"]), str(ref["key"]))
    return None


def args_of(c: dict[str, Any]) -> list[str]:
    return [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]


def flag(args: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``--name value``; ``"true"`` for a bare boolean ``--name``."""
    prefix = f"--{name}"
    for i, a in enumerate(args):
        if a == prefix:
            nxt = args[i + 1] if i + 1 < len(args) else None
            return nxt if nxt is not None and not nxt.startswith("-") else "true"
        if a.startswith(prefix + "="):
            return a[len(prefix) + 1 :]
    return None
