"""The admission ledger's pure logic: parse/render, pruning by age and visibility, conflicts, recording."""

from __future__ import annotations

import pytest

from cni_migrate.analysis.ipam import parse_pool
from cni_migrate.analysis.ipam.admission_ledger import (
    AdmittedPool,
    ledger_conflicts,
    parse_ledger,
    prune_ledger,
    record,
    render_ledger,
)
from cni_migrate.analysis.ipam.pools import PodCIDRPool


def pool(name: str, *cidrs: str, uid: str = "") -> PodCIDRPool:
    return parse_pool({"metadata": {"name": name, "uid": uid or f"uid-{name}"}, "spec": {"cidrs": list(cidrs)}})


def test_round_trip_and_replacing_an_entry_of_the_same_name() -> None:
    ledger = record({}, pool("a", "10.0.0.0/16", "fd00::/48"), now=100.0)
    ledger = record(ledger, pool("b", "10.1.0.0/16"), now=101.5)
    again = parse_ledger(render_ledger(ledger))
    assert again == ledger
    assert again["a"] == AdmittedPool("a", "uid-a", ("10.0.0.0/16", "fd00::/48"), 100.0)
    moved = record(again, pool("a", "10.2.0.0/16"), now=102.0)
    assert moved["a"].cidrs == ("10.2.0.0/16",) and set(moved) == {"a", "b"}


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[]", '{"a": 3}', '{"a": {"cidrs": "10.0.0.0/8", "at": 1}}', '{"a": {"cidrs": []}}'],
)
def test_unreadable_ledgers_and_entries_are_dropped(text: str | None) -> None:
    assert parse_ledger(text) == {}


def test_unreadable_entry_does_not_hide_good_ones() -> None:
    text = '{"bad": {"cidrs": [1], "at": 1}, "good": {"uid": "u", "cidrs": ["10.0.0.0/8"], "at": 5}}'
    assert list(parse_ledger(text)) == ["good"]


def test_prune_keeps_entries_younger_than_the_ttl_even_when_their_pool_is_visible() -> None:
    ledger = {
        "old": AdmittedPool("old", "u1", ("10.0.0.0/16",), 10.0),
        "fresh": AdmittedPool("fresh", "u5", ("10.4.0.0/16",), 99.0),
        "future": AdmittedPool("future", "u6", ("10.5.0.0/16",), 130.0),  # another replica's clock runs ahead
    }
    assert set(prune_ledger(ledger, now=100.0, ttl=30.0)) == {"fresh", "future"}
    assert prune_ledger(ledger, now=100.0, ttl=0.5) == {"future": ledger["future"]}


def test_conflicts_name_the_field_the_pool_and_its_age() -> None:
    ledger = {
        "a": AdmittedPool("a", "ua", ("10.0.0.0/16", "fd00::/48"), 99.6),
        "b": AdmittedPool("b", "ub", ("10.9.0.0/16", "not-a-cidr"), 99.0),
    }
    errors = ledger_conflicts(pool("c", "10.8.0.0/16", "10.0.128.0/17", "fd00:0:0:1::/64"), ledger, now=100.0, ttl=30)
    why = "(admitted 0.4 s ago and maybe not yet seen by this replica; if it no longer exists, retry in 30 s)"
    assert errors == [
        f"spec.cidrs[1]: 10.0.128.0/17 overlaps 10.0.0.0/16 of PodCIDRPool a {why}",
        f"spec.cidrs[2]: fd00:0:0:1::/64 overlaps fd00::/48 of PodCIDRPool a {why}",
    ]
    # The pool's own earlier admission (an update of its CIDRs) is no conflict; adjacent ranges are none either.
    assert ledger_conflicts(pool("a", "10.0.0.0/15"), ledger, now=100.0) == []
    assert ledger_conflicts(pool("d", "10.1.0.0/16", "10.10.0.0/16"), ledger, now=100.0) == []
