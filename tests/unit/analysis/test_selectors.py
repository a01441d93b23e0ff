"""Kubernetes label selectors and Calico's selector language: parsing, matching, translation."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.selectors import (
    SelectorError,
    Untranslatable,
    calico_matches,
    calico_to_label_selector,
    compile_calico,
    label_selector_text,
    matches_label_selector,
    parse_calico_selector,
    validate_label_selector,
)

LABELS = {"rack": "r1", "gpu": "true", "zone": "edge-a", "tier": "gold"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("all()", True),
        ("", True),
        ("global()", True),
        ("has(rack)", True),
        ("!has(rack)", False),
        ("has(missing)", False),
        ('rack == "r1"', True),
        ("rack == 'r2'", False),
        ('rack != "r2"', True),
        ('missing != "x"', True),
        ('rack in {"r1", "r2"}', True),
        ('rack not in {"r1"}', False),
        ('missing not in {"r1"}', True),
        ('zone contains "dge"', True),
        ('zone starts with "edge-"', True),
        ('zone ends with "-b"', False),
        ('missing starts with "a"', False),
        ('rack == "r1" && gpu == "true"', True),
        ('rack == "r2" || gpu == "true"', True),
        ('!(rack == "r1" && gpu == "true")', False),
        ('(rack == "r2" || tier == "gold") && has(zone)', True),
    ],
)
def test_calico_matching(selector: str, expected: bool) -> None:
    expr = parse_calico_selector(selector)
    assert calico_matches(expr, LABELS) is expected
    assert compile_calico(expr)(LABELS) is expected


@pytest.mark.parametrize(
    "bad", ["rack == r1", 'rack =~ "x"', "has(rack", '(rack == "a"', 'rack in {"a"', "&& x", 'rack == "a" junk']
)
def test_calico_parse_errors_are_clear(bad: str) -> None:
    with pytest.raises(SelectorError) as e:
        parse_calico_selector(bad)
    assert bad.strip()[:3] in str(e.value) or "selector" in str(e.value)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("all()", {}),
        ('rack == "r1"', {"matchLabels": {"rack": "r1"}}),
        ('rack == "r1" && gpu == "true"', {"matchLabels": {"rack": "r1", "gpu": "true"}}),
        ('rack in {"r1", "r2"}', {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1", "r2"]}]}),
        ('rack != "r3"', {"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r3"]}]}),
        (
            "has(gpu) && !has(edge)",
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}, {"key": "edge", "operator": "DoesNotExist"}]},
        ),
        (
            'rack == "r1" || rack == "r2"',
            {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1", "r2"]}]},
        ),
    ],
)
def test_translation_to_label_selectors(selector: str, expected: dict[str, object]) -> None:
    translated = calico_to_label_selector(selector)
    assert translated == expected
    # The translation selects exactly what the Calico selector selects, on a spread of label sets.
    samples = [
        LABELS,
        {},
        {"rack": "r2"},
        {"rack": "r3", "gpu": "true"},
        {"gpu": "x", "edge": "1"},
        {"rack": "r1", "gpu": "true"},
    ]
    expr = parse_calico_selector(selector)
    for labels in samples:
        assert matches_label_selector(translated, labels) == calico_matches(expr, labels), labels


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ('zone starts with "edge-"', "'zone starts with ...'"),
        ('zone contains "a"', "'zone contains ...'"),
        ('rack == "r1" || gpu == "true"', "'||'"),
        ('!(rack == "r1")', "negated"),
    ],
)
def test_untranslatable_selectors_are_named(selector: str, why: str) -> None:
    with pytest.raises(Untranslatable) as e:
        calico_to_label_selector(selector)
    assert why in str(e.value)


def test_kubernetes_selectors() -> None:
    sel = {"matchLabels": {"rack": "r1"}, "matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}
    assert matches_label_selector(sel, {"rack": "r1"})
    assert not matches_label_selector(sel, {"rack": "r1", "gpu": "true"})
    assert matches_label_selector(None, {"anything": "x"})
    assert matches_label_selector({}, {})
    assert label_selector_text(sel) == "rack=r1,!gpu"
    assert label_selector_text({}) == "<all>"
    validate_label_selector(sel)
    with pytest.raises(SelectorError, match="operator 'Equals'"):
        validate_label_selector({"matchExpressions": [{"key": "a", "operator": "Equals"}]})
    with pytest.raises(SelectorError, match="needs non-empty values"):
        validate_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]})
    with pytest.raises(SelectorError, match="takes no values"):
        validate_label_selector({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
