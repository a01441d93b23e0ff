"""Issue 16 items 8-10: wrong-type fields, impossible values and YAML bombs in snapshots are refused with exit 2
and one line naming the file, the object, the field and what was expected; never a traceback, never exit 0."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hardening_helpers import copy_example, error_line, mutate, no_traceback, plan_args, run

LOSSY_MASTER = "k8s-calico-master-10-31-90-1.tinychen.io"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(obj: dict[str, Any]) -> None:
        cur = obj
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = value

    return change


def _flannel_port(obj: dict[str, Any]) -> None:
    conf = json.loads(obj["data"]["net-conf.json"])
    conf["Backend"]["Port"] = "banana"
    obj["data"]["net-conf.json"] = json.dumps(conf)


def _container_args(obj: dict[str, Any]) -> None:
    obj["spec"]["template"]["spec"]["containers"][0]["args"] = "--ip-masq --kube-subnet-mgr"


def _first_address(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        obj["status"]["addresses"][0]["address"] = value

    return change


def _flag(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        c = obj["spec"]["containers"][0]
        c["command"] = [new if a == old else a for a in c["command"]]
        assert new in c["command"]

    return change


def _kubeadm(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        text = obj["data"]["ClusterConfiguration"]
        assert old in text
        obj["data"]["ClusterConfiguration"] = text.replace(old, new)

    return change


# (example, file, kind, name, change, the file, object and field the error must name, what it must expect)
CASES = [
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _set("metadata.labels", ["a", "b"]),
        "metadata.labels",
        "a mapping",
    ),
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _set("spec.taints", "NoSchedule"),
        "spec.taints",
        "a list",
    ),
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _set("status.addresses", {"InternalIP": "10.0.0.1"}),
        "status.addresses",
        "a list",
    ),
    ("calico-bgp-lossy", "nodes.yaml", "Node", LOSSY_MASTER, _set("spec.podCIDR", "banana"), "spec.podCIDR", "CIDR"),
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _set("spec.podCIDRs", ["banana"]),
        "spec.podCIDRs[0]",
        "CIDR",
    ),
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _set("metadata.name", ""),
        "metadata.name",
        "a non-empty name",
    ),
    (
        "calico-bgp-lossy",
        "nodes.yaml",
        "Node",
        LOSSY_MASTER,
        _first_address("banana"),
        "status.addresses[0].address",
        "an IP address",
    ),
    ("calico-bgp-lossy", "nodes.yaml", "Node", LOSSY_MASTER, _set("spec", ["x"]), "spec", "a mapping"),
    ("calico-bgp-lossy", "calico.yaml", "IPPool", None, _set("spec.blockSize", "big"), "spec.blockSize", "an integer"),
    ("calico-bgp-lossy", "calico.yaml", "BGPPeer", None, _set("spec.asNumber", "banana"), "spec.asNumber", "AS number"),
    ("calico-bgp-lossy", "calico.yaml", "BGPPeer", None, _set("spec.asNumber", -5), "spec.asNumber", "AS number"),
    ("calico-bgp-lossy", "calico.yaml", "BGPPeer", None, _set("spec.asNumber", 2**32), "spec.asNumber", "AS number"),
    (
        "calico-bgp-lossy",
        "calico.yaml",
        "BGPPeer",
        None,
        _set("spec.peerIP", "not-an-ip"),
        "spec.peerIP",
        "an IP address",
    ),
    (
        "calico-bgp-lossy",
        "calico.yaml",
        "BGPConfiguration",
        None,
        _set("spec.asNumber", "banana"),
        "spec.asNumber",
        "AS number",
    ),
    ("calico-bgp-lossy", "calico.yaml", "IPPool", None, _set("spec", ["x"]), "spec", "a mapping"),
    (
        "calico-bgp-lossy",
        "pods.yaml",
        "Pod",
        "kube-apiserver-k8s-calico-master-10-31-90-1.tinychen.io",
        _flag("--service-cluster-ip-range=10.33.128.0/18", "--service-cluster-ip-range=banana"),
        "--service-cluster-ip-range",
        "CIDR",
    ),
    (
        "calico-bgp-lossy",
        "configmaps.yaml",
        "ConfigMap",
        "kubeadm-config",
        _kubeadm("10.31.90.0:8443", "10.31.90.0:99999"),
        "controlPlaneEndpoint",
        "a port between 1 and 65535",
    ),
    (
        "flannel-graceful",
        "configmaps.yaml",
        "ConfigMap",
        "kube-flannel-cfg",
        _flannel_port,
        "data.net-conf.json.Backend.Port",
        "a port",
    ),
    (
        "flannel-graceful",
        "daemonsets.yaml",
        "DaemonSet",
        "kube-flannel-ds",
        _container_args,
        "spec.template.spec.containers[0].args",
        "a list",
    ),
]


@pytest.mark.parametrize(("example", "file", "kind", "name", "change", "field", "expected"), CASES)
def test_bad_field_is_refused_naming_file_object_field(
    tmp_path: Path,
    example: str,
    file: str,
    kind: str,
    name: str | None,
    change: Callable[[dict[str, Any]], None],
    field: str,
    expected: str,
) -> None:
    snap = copy_example(example, tmp_path)
    mutate(snap, file, kind, name, change)
    for args in (["--snapshot", str(snap), "discover"], plan_args(snap)):
        r = run(*args)
        no_traceback(r)
        assert r.exit_code == 2, r.output
        line = error_line(r)
        assert file in line and kind in line and field in line and expected in line, line


def test_duplicate_yaml_key_names_key_and_line(tmp_path: Path) -> None:
    f = tmp_path / "node.yaml"
    f.write_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: a\n  name: b\n")
    r = run("--snapshot", str(f), "discover")
    no_traceback(r)
    assert r.exit_code == 2
    line = error_line(r)
    assert "node.yaml:5" in line and "duplicate key 'name'" in line


def _laughs(levels: int = 9) -> str:
    text = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol, namespace: default}\nx0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]\n"
    return text + f"data: {{a: b}}\nbomb: *x{levels - 1}\n"


def test_billion_laughs_snapshot_is_refused_quickly(tmp_path: Path) -> None:
    f = tmp_path / "lol.yaml"
    f.write_text(_laughs())
    assert len(f.read_bytes()) < 2000
    start = time.monotonic()
    r = run("--snapshot", str(f), "-o", "json", "discover")
    no_traceback(r)
    assert r.exit_code == 2 and len(r.stdout) < 1000
    assert "alias" in error_line(r) and "lol.yaml" in error_line(r)
    assert time.monotonic() - start < 5


def test_billion_laughs_values_file_is_refused(tmp_path: Path) -> None:
    snap = copy_example("flannel-graceful", tmp_path)
    values = tmp_path / "values.yaml"
    values.write_text(_laughs().split("\n", 3)[3])
    r = run(*plan_args(snap, "--values", str(values)))
    no_traceback(r)
    assert r.exit_code == 2
    assert "alias" in error_line(r) and "values.yaml" in error_line(r)


def test_binary_and_duplicate_key_values_files_are_refused(tmp_path: Path) -> None:
    snap = copy_example("flannel-graceful", tmp_path)
    binary = tmp_path / "values.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    dup = tmp_path / "dup.yaml"
    dup.write_text("hubble:\n  enabled: true\nhubble:\n  enabled: false\n")
    for f, words in ((binary, "binary"), (dup, "duplicate key 'hubble'")):
        r = run(*plan_args(snap, "--values", str(f)))
        no_traceback(r)
        assert r.exit_code == 2, r.output
        assert words in error_line(r) and f.name in error_line(r)


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: " + "[" * 5000 + "]" * 5000 + "\n")
    r = run("--snapshot", str(f), "discover")
    no_traceback(r)
    assert r.exit_code == 2 and "deep.yaml" in error_line(r)


def test_deeply_nested_calico_selector_is_refused(tmp_path: Path) -> None:
    snap = copy_example("calico-operator-multipool", tmp_path)
    deep = "(" * 3000 + "all()" + ")" * 3000
    mutate(snap, "calico.yaml", "IPPool", None, _set("spec.nodeSelector", deep))
    for args in (["--snapshot", str(snap), "discover"], plan_args(snap, "--ipam", "podcidrpools")):
        r = run(*args)
        no_traceback(r)
        assert r.exit_code in (1, 2), r.output


def test_empty_snapshot_warns_nothing_to_discover(tmp_path: Path) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    r = run("--snapshot", str(f), "discover")
    no_traceback(r)
    assert "nothing to discover" in r.output


def test_snapshot_out_dir_pointing_at_a_file_is_bad_input(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = run("--kubeconfig", str(tmp_path / "none"), "snapshot", "--out-dir", str(f))
    no_traceback(r)
    assert r.exit_code == 2 and "not a directory" in error_line(r)
