"""Where the control-plane binaries built by ``testbed/build.sh`` live."""

from __future__ import annotations

import os
from pathlib import Path

from cni_migrate_testbed.errors import BinaryNotFoundError

CACHE_ENV = "CNI_MIGRATE_TESTBED_CACHE"

#: Every binary the control plane runs (kubectl and helm are built too, for tests and humans).
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
#: kwok's stages (node-initialize, node-heartbeat-with-lease, pod-ready/complete/delete), taken by
#: build.sh from the pinned kwok module: without them kwok refuses to start.
KWOK_STAGES = "kwok-stages.yaml"


def cache_dir() -> Path:
    """The testbed cache directory (the same as ``testbed/build.sh`` uses).

    ``$CNI_MIGRATE_TESTBED_CACHE`` if set, else ``${XDG_CACHE_HOME:-~/.cache}/cni-migrate-testbed``.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cni-migrate-testbed"


def bin_dir(cache: Path | None = None) -> Path:
    return (cache if cache is not None else cache_dir()) / "bin"


def find_binary(name: str, cache: Path | None = None, *, executable: bool = True) -> Path:
    """Absolute path of a file in the cache's ``bin`` directory, or :class:`BinaryNotFoundError`."""
    directory = bin_dir(cache)
    path = directory / name
    if not (path.is_file() and (os.access(path, os.X_OK) or not executable)):
        raise BinaryNotFoundError(name, directory)
    return path.resolve()
