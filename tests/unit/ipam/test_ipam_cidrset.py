"""CIDRSet: the per-CIDR block allocator (kube-controller-manager cidrset semantics, interval storage)."""

from __future__ import annotations

import ipaddress
import random
import time

import pytest

from cni_migrate.analysis.ipam.cidrset import BlockCounts, CIDRSet, CIDRSetError, CIDRSetFull


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class TestConstruction:
    @pytest.mark.parametrize(
        ("cidr", "block", "capacity"),
        [
            ("10.0.0.0/16", 24, 256),
            ("10.0.0.0/24", 30, 64),
            ("10.0.0.0/24", 25, 2),
            ("10.0.0.0/24", 32, 256),
            ("10.0.0.0/8", 24, 65536),
            ("fd00::/48", 64, 65536),
            ("fd00::/32", 64, 2**32),
            ("fd00::/8", 120, 2**112),
        ],
    )
    def test_capacity(self, cidr: str, block: int, capacity: int) -> None:
        s = CIDRSet(cidr, block)
        assert s.capacity == capacity
        assert s.counts() == BlockCounts(capacity, 0)
        assert s.free == capacity and s.allocated == 0

    @pytest.mark.parametrize(("cidr", "block"), [("10.0.0.0/24", 24), ("10.0.0.0/24", 23), ("10.0.0.0/24", 33)])
    def test_block_must_be_longer_and_valid(self, cidr: str, block: int) -> None:
        with pytest.raises(CIDRSetError, match="block prefix"):
            CIDRSet(cidr, block)

    def test_host_bits_rejected(self) -> None:
        with pytest.raises(ValueError, match="host bits"):
            CIDRSet("10.0.0.1/24", 26)

    def test_accepts_network_objects(self) -> None:
        assert CIDRSet(net("10.1.0.0/16"), 20).capacity == 16

    def test_repr(self) -> None:
        assert "10.0.0.0/24" in repr(CIDRSet("10.0.0.0/24", 26))


class TestIndexing:
    def test_block_and_index_range(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        assert s.block(0) == net("10.0.0.0/24")
        assert s.block(255) == net("10.0.255.0/24")
        assert s.index_range(net("10.0.7.0/24")) == (7, 7)
        assert s.index_range(net("10.0.4.0/22")) == (4, 7)
        assert s.index_range(net("10.0.3.128/25")) == (3, 3)
        assert s.index_range(net("10.1.0.0/24")) is None
        assert s.index_range(net("fd00::/64")) is None
        assert s.index_range(net("10.0.0.0/8")) == (0, 255)

    @pytest.mark.parametrize("i", [-1, 256])
    def test_block_out_of_range(self, i: int) -> None:
        with pytest.raises(CIDRSetError, match="outside"):
            CIDRSet("10.0.0.0/16", 24).block(i)

    def test_ipv6_blocks(self) -> None:
        s = CIDRSet("fd00::/32", 64)
        assert s.block(0) == net("fd00::/64")
        assert s.block(1) == net("fd00:0:0:1::/64")
        assert s.block(2**32 - 1) == net("fd00:0:ffff:ffff::/64")

    def test_is_block_and_contains(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        assert s.is_block(net("10.0.3.0/24"))
        assert not s.is_block(net("10.0.3.0/25"))
        assert not s.is_block(net("10.1.3.0/24"))
        assert s.contains(net("10.0.0.0/8"))  # overlaps
        assert not s.contains(net("10.1.0.0/16"))


class TestAllocateNext:
    def test_sequential_from_the_start(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        assert [str(s.allocate_next()) for _ in range(3)] == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
        assert s.allocated == 3 and s.free == 253

    def test_exhaustion(self) -> None:
        s = CIDRSet("10.0.0.0/24", 26)
        got = [s.allocate_next() for _ in range(4)]
        assert [str(g) for g in got] == ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.192/26"]
        assert s.free == 0
        with pytest.raises(CIDRSetFull, match="no free /26"):
            s.allocate_next()
        assert s.allocated == 4  # a failed allocation changes nothing

    def test_round_robin_does_not_reuse_a_released_block_at_once(self) -> None:
        s = CIDRSet("10.0.0.0/24", 26)
        a, b, _c = s.allocate_next(), s.allocate_next(), s.allocate_next()
        assert s.release(b) == 1
        assert s.allocate_next() == net("10.0.0.192/26")  # the next candidate, not the hole
        assert s.allocate_next() == b  # then wraps around to the hole
        s.release(a)
        assert s.allocate_next() == a

    def test_wrap_around_after_full(self) -> None:
        s = CIDRSet("10.0.0.0/24", 26)
        blocks = [s.allocate_next() for _ in range(4)]  # the candidate wraps to index 0
        s.release(blocks[2])
        assert s.allocate_next() == blocks[2]  # scanned from 0; candidate is now 3
        s.release(blocks[0])
        s.release(blocks[3])
        assert s.allocate_next() == blocks[3]  # the candidate first
        assert s.allocate_next() == blocks[0]  # then wraps around
        with pytest.raises(CIDRSetFull):
            s.allocate_next()

    def test_candidate_follows_last_allocation(self) -> None:
        # cidrset: nextCandidate = index after the last allocated, so after wrapping the scan starts at 0.
        s = CIDRSet("10.0.0.0/24", 26)
        blocks = [s.allocate_next() for _ in range(4)]  # candidate wraps to 0
        s.release(blocks[1])
        s.release(blocks[3])
        assert s.allocate_next() == blocks[1]
        assert s.allocate_next() == blocks[3]

    def test_skips_occupied_blocks(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        s.occupy(net("10.0.0.0/24"))
        s.occupy(net("10.0.2.0/23"))
        assert s.allocate_next() == net("10.0.1.0/24")
        assert s.allocate_next() == net("10.0.4.0/24")

    def test_deterministic(self) -> None:
        def run() -> list[str]:
            s = CIDRSet("10.0.0.0/20", 24)
            out = [str(s.allocate_next()) for _ in range(10)]
            s.release(net("10.0.3.0/24"))
            s.occupy(net("10.0.12.0/22"))
            out += [str(s.allocate_next()) for _ in range(3)]
            return out

        assert run() == run()

    def test_single_block_set(self) -> None:
        s = CIDRSet("10.0.0.0/24", 25)
        s.allocate_next()
        s.allocate_next()
        with pytest.raises(CIDRSetFull):
            s.allocate_next()


class TestOccupy:
    def test_exact_and_idempotent(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        o = s.occupy(net("10.0.5.0/24"))
        assert (o.kind, o.first, o.last, o.newly, o.already, o.blocks) == ("exact", 5, 5, 1, 0, 1)
        o2 = s.occupy(net("10.0.5.0/24"))
        assert (o2.newly, o2.already) == (0, 1)
        assert s.allocated == 1  # no double counting (k8s #96416)

    def test_smaller_than_a_block_occupies_the_enclosing_block(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        o = s.occupy(net("10.0.5.64/26"))
        assert (o.kind, o.first, o.last, o.newly) == ("inside-block", 5, 5, 1)
        assert s.is_allocated(net("10.0.5.0/24"))

    def test_larger_than_a_block_occupies_every_block(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        o = s.occupy(net("10.0.4.0/22"))
        assert (o.kind, o.first, o.last, o.newly) == ("spans-blocks", 4, 7, 4)
        assert s.allocated == 4

    def test_partial_overlap_occupies_the_inside_part(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        o = s.occupy(net("10.0.0.0/15"))
        assert o.kind == "partial" and o.newly == 256 and s.free == 0

    def test_partially_counted(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        s.occupy(net("10.0.5.0/24"))
        o = s.occupy(net("10.0.4.0/22"))
        assert (o.newly, o.already) == (3, 1)
        assert s.allocated == 4

    @pytest.mark.parametrize("outside", ["10.1.0.0/24", "192.168.0.0/16", "fd00::/64"])
    def test_outside_raises(self, outside: str) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        with pytest.raises(CIDRSetError, match="not inside"):
            s.occupy(net(outside))
        with pytest.raises(CIDRSetError):
            s.release(net(outside))
        with pytest.raises(CIDRSetError):
            s.is_allocated(net(outside))

    def test_occupy_merges_adjacent_runs(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        s.occupy(net("10.0.1.0/24"))
        s.occupy(net("10.0.3.0/24"))
        assert s.runs() == [(1, 2), (3, 4)]
        s.occupy(net("10.0.2.0/24"))
        assert s.runs() == [(1, 4)]


class TestRelease:
    def test_release_counts_and_frees(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        b = s.allocate_next()
        assert s.release(b) == 1
        assert s.release(b) == 0  # releasing a free block is harmless
        assert not s.is_allocated(b) and s.allocated == 0

    def test_release_splits_runs(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        s.occupy(net("10.0.0.0/22"))
        assert s.release(net("10.0.1.0/24")) == 1
        assert s.runs() == [(0, 1), (2, 4)]
        assert s.allocated_blocks() == [net("10.0.0.0/24"), net("10.0.2.0/24"), net("10.0.3.0/24")]

    def test_release_spanning(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        for _ in range(10):
            s.allocate_next()
        assert s.release(net("10.0.0.0/20")) == 10
        assert s.allocated == 0 and s.runs() == []

    def test_queries(self) -> None:
        s = CIDRSet("10.0.0.0/16", 24)
        s.occupy(net("10.0.2.0/24"))
        assert s.is_allocated(net("10.0.2.0/24"))
        assert s.is_allocated(net("10.0.2.128/25"))
        assert not s.is_allocated(net("10.0.2.0/23"))  # 10.0.3.0/24 is free
        assert s.allocated_count(net("10.0.0.0/20")) == 1
        assert s.allocated_count(net("10.0.3.0/24")) == 0


class TestIPv6:
    def test_huge_set_is_lazy(self) -> None:
        s = CIDRSet("fd00::/32", 64)
        first = [s.allocate_next() for _ in range(3)]
        assert first[2] == net("fd00:0:0:2::/64")
        far = net("fd00:0:ffff:fffe::/64")
        s.occupy(far)
        assert s.is_allocated(far) and s.allocated == 4
        assert s.free == 2**32 - 4
        assert s.release(far) == 1

    def test_occupy_a_huge_range_is_cheap(self) -> None:
        s = CIDRSet("fd00::/32", 64)
        o = s.occupy(net("fd00:0:8000::/33"))
        assert o.newly == 2**31 and s.runs() == [(2**31, 2**32)]
        assert s.allocate_next() == net("fd00::/64")

    def test_exhaust_a_48_with_64_blocks(self) -> None:
        s = CIDRSet("fd00:1::/48", 64)
        t0 = time.perf_counter()
        for _ in range(65536):
            s.allocate_next()
        assert time.perf_counter() - t0 < 5
        assert s.free == 0 and s.runs() == [(0, 65536)]
        with pytest.raises(CIDRSetFull):
            s.allocate_next()


def test_slash8_with_slash24_blocks_is_fast() -> None:
    s = CIDRSet("10.0.0.0/8", 24)
    t0 = time.perf_counter()
    last = None
    for _ in range(65536):
        last = s.allocate_next()
    assert time.perf_counter() - t0 < 5
    assert last == net("10.255.255.0/24")
    with pytest.raises(CIDRSetFull):
        s.allocate_next()
    # fragmented: free every other block, then fill again
    for i in range(0, 65536, 2):
        s.release(s.block(i))
    assert len(s.runs()) == 32768
    t0 = time.perf_counter()
    got = {s.allocate_next() for _ in range(32768)}
    assert time.perf_counter() - t0 < 5
    assert len(got) == 32768 and s.free == 0


@pytest.mark.parametrize("seed", range(12))
def test_matches_a_naive_model(seed: int) -> None:
    """Random occupy/release/allocate against a plain set of indices and a naive round-robin scan."""
    rng = random.Random(seed)
    s = CIDRSet("10.0.0.0/22", 28)  # 64 blocks
    model: set[int] = set()
    candidate = 0
    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            if len(model) == s.capacity:
                with pytest.raises(CIDRSetFull):
                    s.allocate_next()
                continue
            i = candidate
            while i in model:
                i = (i + 1) % s.capacity
            model.add(i)
            candidate = (i + 1) % s.capacity
            assert s.allocate_next() == s.block(i)
        elif op < 0.7:
            prefix = rng.choice([26, 27, 28, 29, 30])
            base = rng.randrange(0, 1024, 1 << (32 - prefix))
            n = ipaddress.ip_network((int(ipaddress.ip_address("10.0.0.0")) + base, prefix))
            first, last = base >> 4, (base + (1 << (32 - prefix)) - 1) >> 4
            rng_blocks = set(range(first, last + 1))
            o = s.occupy(n)
            assert o.newly == len(rng_blocks - model)
            model |= rng_blocks
        else:
            prefix = rng.choice([26, 27, 28])
            base = rng.randrange(0, 1024, 1 << (32 - prefix))
            n = ipaddress.ip_network((int(ipaddress.ip_address("10.0.0.0")) + base, prefix))
            blocks = set(range(base >> 4, ((base + (1 << (32 - prefix)) - 1) >> 4) + 1))
            assert s.release(n) == len(blocks & model)
            model -= blocks
        assert s.allocated == len(model)
        assert {int(s.index_range(b)[0]) for b in s.allocated_blocks()} == model  # type: ignore[index]
        runs = s.runs()
        assert all(a < b for a, b in runs)
        assert all(runs[i][1] < runs[i + 1][0] for i in range(len(runs) - 1))  # disjoint and not adjacent
