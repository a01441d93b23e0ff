"""Snapshot input: every shape kubectl prints, and clear errors for everything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_migrate.facts import extract_facts, load_snapshot
from cni_migrate.facts.objects import NODE, SECRET, KindRef
from cni_migrate.facts.snapshot import SnapshotError

NODE_YAML = """apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}}}
status:
  nodeInfo: {{kernelVersion: 5.15.0-91-generic}}
"""


def test_single_object_multidoc_and_list(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(NODE_YAML.format(name="a"))
    (tmp_path / "multi.yml").write_text(NODE_YAML.format(name="b") + "---\n" + NODE_YAML.format(name="c") + "---\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.json").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "NodeList",
                "items": [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "d"}}],
            }
        )
    )
    store = load_snapshot(tmp_path)
    assert sorted(o["metadata"]["name"] for o in store.of(NODE)) == ["a", "b", "c", "d"]
    facts = extract_facts(store)
    assert [n.name for n in facts.nodes] == ["a", "b", "c", "d"]
    assert facts.nodes[0].kernel_version == "5.15.0-91-generic"


def test_single_file_snapshot(tmp_path: Path) -> None:
    f = tmp_path / "nodes.yaml"
    f.write_text(NODE_YAML.format(name="x"))
    assert len(load_snapshot(f).of(NODE)) == 1


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Node\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(SnapshotError) as e:
        load_snapshot(tmp_path)
    assert str(f) in str(e.value)
    assert e.value.line is not None and e.value.line >= 4
    assert "malformed YAML" in str(e.value)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    with pytest.raises(SnapshotError) as e:
        load_snapshot(f)
    assert e.value.line == 4
    assert "malformed JSON" in str(e.value)


def test_object_without_kind_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("metadata:\n  name: orphan\n")
    with pytest.raises(SnapshotError, match="'orphan' lacks apiVersion or kind"):
        load_snapshot(f)


def test_scalar_document_rejected(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("just a string\n")
    with pytest.raises(SnapshotError, match="expected a Kubernetes object or List"):
        load_snapshot(f)


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such file or directory"):
        load_snapshot(tmp_path / "nope")
    with pytest.raises(SnapshotError, match=r"holds no \.yaml"):
        load_snapshot(tmp_path)


def test_unknown_kinds_are_counted_and_ignored(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        NODE_YAML.format(name="a")
        + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n"
        + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\n"
    )
    store = load_snapshot(tmp_path)
    assert store.ignored == {"Widget.example.com": 2}
    assert extract_facts(store).source.ignored_kinds == {"Widget.example.com": 2}


def test_missing_kinds_make_facts_unknown_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(NODE_YAML.format(name="a"))
    facts = extract_facts(load_snapshot(tmp_path))
    assert set(facts.source.missing_kinds) == {"Pod", "DaemonSet.apps", "ConfigMap", "PodDisruptionBudget.policy"}
    assert facts.cni.detected == "unknown"
    assert not facts.kube_proxy.present.known
    assert "DaemonSet" in str(facts.kube_proxy.present.unknown)
    assert not facts.workloads.pods.known
    assert not facts.pdbs.known
    assert not facts.network.service_cidrs.known
    assert not facts.cilium_helm_releases.known


def test_secret_contents_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\ntype: helm.sh/release.v1\n"
        "metadata: {name: sh.helm.release.v1.cilium.v3, namespace: kube-system, labels: {owner: helm}}\n"
        "data: {release: c2VjcmV0}\nstringData: {password: hunter2}\n"
    )
    store = load_snapshot(tmp_path)
    (secret,) = store.of(SECRET)
    assert "data" not in secret and "stringData" not in secret
    releases = extract_facts(store).cilium_helm_releases.value
    assert releases is not None and [(r.name, r.revision) for r in releases] == [("cilium", 3)]


def test_manifest_marks_empty_kinds_as_listed(tmp_path: Path) -> None:
    (tmp_path / "cni-migrate-snapshot.yaml").write_text(
        "apiVersion: cni-migrate.io/v1\nkind: CniMigrateSnapshot\nserverVersion: v1.30.1\n"
        "listed:\n- {group: '', kind: Pod}\n- {group: apps, kind: DaemonSet}\n"
    )
    (tmp_path / "n.yaml").write_text(NODE_YAML.format(name="a"))
    store = load_snapshot(tmp_path)
    assert store.has_listed(KindRef("", "Pod"))
    facts = extract_facts(store)
    assert facts.kubernetes_version.value == "v1.30.1"
    assert facts.workloads.pods.value == 0
    assert facts.cni.detected == "none"
    assert facts.kube_proxy.present.value is False
