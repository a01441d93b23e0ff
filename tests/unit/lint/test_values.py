"""Helm's value merging and --set / --set-string syntax."""

from __future__ import annotations

from typing import Any

import pytest

from cni_migrate.analysis.lint import LintInputError, apply_set, apply_set_json, merge_values
from cni_migrate.analysis.lint.values import ValuesView, apply_set_value, get_path, is_opaque, truthy


def s(*exprs: str, string: bool = False, base: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = base if base is not None else {}
    for e in exprs:
        apply_set(out, e, string=string)
    return out


class TestMerge:
    def test_later_layers_win_and_maps_merge(self) -> None:
        a = {"ipam": {"mode": "kubernetes", "operator": {"clusterPoolIPv4MaskSize": 24}}, "tunnel": "vxlan"}
        b = {"ipam": {"mode": "cluster-pool"}, "debug": {"enabled": True}}
        assert merge_values(a, b) == {
            "ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4MaskSize": 24}},
            "tunnel": "vxlan",
            "debug": {"enabled": True},
        }

    def test_lists_are_replaced_not_merged(self) -> None:
        a = {"l": [1, 2, 3]}
        assert merge_values(a, {"l": [9]}) == {"l": [9]}

    def test_null_removes_the_key(self) -> None:
        assert merge_values({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}

    def test_scalar_replaced_by_map_and_back(self) -> None:
        assert merge_values({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
        assert merge_values({"a": {"b": 2}}, {"a": 3}) == {"a": 3}

    def test_inputs_are_not_modified(self) -> None:
        a = {"a": {"b": [1]}}
        out = merge_values(a, {"a": {"c": 1}})
        out["a"]["b"].append(2)
        assert a == {"a": {"b": [1]}}


class TestSet:
    def test_dotted_paths_and_several_assignments(self) -> None:
        assert s("a.b=c,d.e=f") == {"a": {"b": "c"}, "d": {"e": "f"}}

    def test_types(self) -> None:
        assert s("a=true,b=FALSE,c=0,d=12,e=007,f=1.5,g=,h=null,i=-3") == {
            "a": True, "b": False, "c": 0, "d": 12, "e": "007", "f": "1.5", "g": "", "h": None, "i": -3,
        }  # fmt: skip

    def test_set_string_keeps_strings(self) -> None:
        assert s("a=true,b=12,c=null", string=True) == {"a": "true", "b": "12", "c": "null"}

    def test_lists_in_braces(self) -> None:
        assert s("a={x,y,z}") == {"a": ["x", "y", "z"]}
        assert s("a={}") == {"a": []}
        assert s("a={1,true},b=2") == {"a": [1, True], "b": 2}

    def test_indices(self) -> None:
        assert s("a[0]=x,a[2]=z") == {"a": ["x", None, "z"]}
        assert s("a[0].b=1,a[0].c=2") == {"a": [{"b": 1, "c": 2}]}
        assert s("a[1][0]=q") == {"a": [None, ["q"]]}
        assert s("a.b[0]={x,y}") == {"a": {"b": [["x", "y"]]}}

    def test_escapes(self) -> None:
        assert s(r"a\.b=c") == {"a.b": "c"}
        assert s(r"a=b\,c,d=e") == {"a": "b,c", "d": "e"}
        assert s(r"annotations.io\.cilium/x=y") == {"annotations": {"io.cilium/x": "y"}}
        assert s(r"a=x\=y") == {"a": "x=y"}

    def test_value_may_contain_equals(self) -> None:
        assert s("extraArgs=--foo=bar") == {"extraArgs": "--foo=bar"}

    def test_sets_into_existing_values_like_helm(self) -> None:
        base = {"l": [1, 2, 3], "m": {"keep": True}}
        assert s("l[1]=x", "m.new=1", base=base) == {"l": [1, "x", 3], "m": {"keep": True, "new": 1}}
        assert s("l={9}", base={"l": [1, 2]}) == {"l": [9]}

    def test_later_flags_win(self) -> None:
        assert s("a=1", "a=2") == {"a": 2}

    @pytest.mark.parametrize(
        ("expr", "why"),
        [
            ("a", "has no value"),
            ("a.b", "has no value"),
            ("a=b,c", "has no value"),
            ("=x", "empty"),
            ("a[x]=1", "not a number"),
            ("a[-1]=1", "negative index"),
            ("a[70000]=1", "maximum supported index"),
            ("a={x", "terminate"),
            ("a[0", "unterminated"),
            ("a[0]x", "after an index"),
            ("a={x}y", "after a list"),
            ("", "empty argument"),
        ],
    )
    def test_malformed_names_the_flag(self, expr: str, why: str) -> None:
        with pytest.raises(LintInputError) as e:
            apply_set({}, expr)
        assert "--set" in str(e.value) and why in str(e.value)

    def test_set_json_and_set_value(self) -> None:
        out: dict[str, Any] = {}
        apply_set_json(out, 'ipam.operator={"clusterPoolIPv4PodCIDRList": ["10.0.0.0/8", "11.0.0.0/8"]}')
        assert out == {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/8", "11.0.0.0/8"]}}}
        apply_set_value(out, "a.b[1]", "text, with comma")
        assert out["a"] == {"b": [None, "text, with comma"]}
        with pytest.raises(LintInputError, match="not JSON"):
            apply_set_json(out, "a={x")


class TestAccess:
    def test_get_path_and_view(self) -> None:
        v = ValuesView({"a": {"b": "true", "n": None, "l": "x, y z"}, "k": False})
        assert get_path(v.values, "a.b") == "true"
        assert v.flag("a.b") is True and v.flag("k", True) is False and v.flag("missing", True) is True
        assert v.has("a.b") and not v.has("a.n") and not v.has("a.b.c")
        assert v.strings("a.l") == ["x", "y", "z"] and v.strings("nope") is None
        assert v.text("k") == "false"

    def test_truthy(self) -> None:
        assert truthy("Yes") and not truthy("off") and truthy(1) and not truthy(0) and truthy("junk", True)

    def test_opaque_shell_expressions(self) -> None:
        for text in ("$SEED", "${SEED}", "$(head -c12 /dev/urandom | base64 -w0)", "`date`", "x-$HOME"):
            assert is_opaque(text), text
        for value in ("10.0.0.0/8", "cost: $5", "a$", 5, None):
            assert not is_opaque(value), value
