"""Issue 16 item 8: kubeconfig defects give exit 2 and one line naming the file and the entry, never a traceback;
exec credential plugins of client.authentication.k8s.io/v1 run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hardening_helpers import error_line, no_traceback, run

from cni_migrate.kube import KubeConfigurationError
from cni_migrate.kube.client import load_kubeconfig

CONFIG = """apiVersion: v1
kind: Config
current-context: c
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:1"{cluster_extra}}}}}]
contexts: [{{name: c, context: {{cluster: {cluster_ref}, user: u}}}}]
users: [{{name: u, user: {user}}}]
"""


def _config(tmp_path: Path, *, cluster_extra: str = "", cluster_ref: str = "c", user: str = "{token: abc}") -> Path:
    f = tmp_path / "kubeconfig"
    f.write_text(CONFIG.format(cluster_extra=cluster_extra, cluster_ref=cluster_ref, user=user))
    return f


CASES = [
    ("", "the kubeconfig is empty"),
    ("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", "no current-context is set"),
    ("apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: []\n", "context 'x' is not defined"),
    (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n",
        "field cluster",
    ),
    ("clusters: {a: b}\n", "field clusters: expected a list"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("clusters: [\n", "not a valid kubeconfig"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_broken_kubeconfig_is_one_line_exit_2(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "kubeconfig"
    f.write_text(text)
    with pytest.raises(KubeConfigurationError, match=message):
        load_kubeconfig(str(f), None)
    r = run("--kubeconfig", str(f), "discover")
    no_traceback(r)
    assert r.exit_code == 2
    line = error_line(r)
    assert str(f) in line and message in line


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    f = _config(tmp_path, cluster_extra=", certificate-authority: ca.crt")
    r = run("--kubeconfig", str(f), "discover")
    no_traceback(r)
    assert r.exit_code == 2
    assert "field certificate-authority: no such file" in error_line(r) and str(tmp_path / "ca.crt") in error_line(r)


def test_exec_plugin_v1_runs(tmp_path: Path) -> None:
    marker = tmp_path / "plugin-ran"
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(
        "#!/bin/sh\n"
        f"touch {marker}\n"
        'echo \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}\'\n'
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    f = _config(
        tmp_path,
        user=f"{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: {plugin}, interactiveMode: Never}}}}",
    )
    r = run("--kubeconfig", str(f), "discover")
    no_traceback(r)
    assert marker.exists(), "the v1 exec plugin was not run"
    assert r.exit_code == 2 and "cannot reach the API server" in error_line(r)
