"""Shared pytest configuration: the real test control plane's fixtures (see cni_migrate_testbed.pytest_plugin)."""

pytest_plugins = ["cni_migrate_testbed.pytest_plugin"]
