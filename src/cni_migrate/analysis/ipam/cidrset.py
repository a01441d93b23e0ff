"""A block allocator for one CIDR, modelled on kube-controller-manager's ``cidrset``.

The CIDR is cut into ``2**(block_prefix - cidr.prefixlen)`` equal blocks, numbered from 0 in address order.
Like ``cidrset`` (kubernetes/kubernetes ``pkg/controller/nodeipam/ipam/cidrset``), :meth:`CIDRSet.allocate_next`
hands out the next free block round-robin from the one after the last allocated, so a released block is not
re-issued at once, and the result depends only on the sequence of calls (deterministic).

Unlike ``cidrset`` (one ``big.Int`` bitmap, so IPv6 is limited to 16 bits of blocks), the allocated blocks are
kept as a sorted list of disjoint index intervals: memory grows with the number of *runs* of allocated blocks,
not with the number of blocks, so a ``/32`` IPv6 pool cut into ``/64`` blocks (2**32 blocks) costs nothing
until it is used, and sequential allocation keeps one interval. Every operation is O(log n) in the number of
intervals plus a list insert.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

OccupyKind = Literal["exact", "inside-block", "spans-blocks", "partial"]


def span(network: Network) -> tuple[int, int]:
    """First and last address of a network as integers (cheaper than ``broadcast_address``)."""
    lo = int(network.network_address)
    return lo, lo | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)


class CIDRSetError(ValueError):
    """Misuse of a :class:`CIDRSet`: a network of the wrong family or outside the set, a bad block size."""


class CIDRSetFull(CIDRSetError):
    """No free block is left."""


@dataclass(frozen=True)
class BlockCounts:
    """Block counts of a set (or a sum of sets)."""

    capacity: int = 0
    allocated: int = 0

    @property
    def free(self) -> int:
        return self.capacity - self.allocated

    def __add__(self, other: BlockCounts) -> BlockCounts:
        return BlockCounts(self.capacity + other.capacity, self.allocated + other.allocated)


@dataclass(frozen=True)
class Occupation:
    """What :meth:`CIDRSet.occupy` did with a network.

    ``kind``: ``exact`` (the network is one block), ``inside-block`` (smaller than a block, or not aligned to one
    and contained in it: the whole enclosing block is occupied), ``spans-blocks`` (larger than a block or crossing
    block boundaries: every block it touches is occupied), ``partial`` (it reaches outside the set's CIDR: the
    blocks inside are occupied). Anything but ``exact`` is worth reporting. ``newly`` blocks were free before,
    ``already`` were allocated already (``newly + already == last - first + 1``).
    """

    network: Network
    first: int
    last: int
    kind: OccupyKind
    newly: int
    already: int

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1


class CIDRSet:
    """Blocks of prefix length ``block_prefix`` inside ``cidr``."""

    def __init__(self, cidr: Network | str, block_prefix: int) -> None:
        net = ipaddress.ip_network(cidr, strict=True) if isinstance(cidr, str) else cidr
        if not net.prefixlen < block_prefix <= net.max_prefixlen:
            raise CIDRSetError(
                f"block prefix /{block_prefix} must be longer than {net}'s /{net.prefixlen} and at most "
                f"/{net.max_prefixlen}"
            )
        self.cidr: Network = net
        self.block_prefix = block_prefix
        self.capacity = 1 << (block_prefix - net.prefixlen)
        self._shift = net.max_prefixlen - block_prefix  # address bits inside one block
        self._base = int(net.network_address)
        self._top = int(net.broadcast_address)
        self._starts: list[int] = []  # disjoint, non-adjacent [start, end) index intervals, sorted
        self._ends: list[int] = []
        self._allocated = 0
        self._next = 0  # round-robin candidate, as cidrset's nextCandidate

    def __repr__(self) -> str:
        return f"CIDRSet({self.cidr}, /{self.block_prefix}, allocated={self._allocated}/{self.capacity})"

    # --- counts -------------------------------------------------------------------------------------------

    @property
    def allocated(self) -> int:
        return self._allocated

    @property
    def free(self) -> int:
        return self.capacity - self._allocated

    def counts(self) -> BlockCounts:
        return BlockCounts(self.capacity, self._allocated)

    @property
    def version(self) -> int:
        return self.cidr.version

    # --- index <-> block ----------------------------------------------------------------------------------

    def block(self, index: int) -> Network:
        """The block with this index (0-based, in address order)."""
        if not 0 <= index < self.capacity:
            raise CIDRSetError(f"block index {index} outside 0..{self.capacity - 1} of {self.cidr}")
        addr = self._base + (index << self._shift)
        if self.cidr.version == 4:
            return ipaddress.IPv4Network((addr, self.block_prefix))
        return ipaddress.IPv6Network((addr, self.block_prefix))

    def index_range(self, network: Network) -> tuple[int, int] | None:
        """First and last index of the blocks ``network`` touches, or None when it lies outside the set."""
        if network.version != self.cidr.version:
            return None
        lo, hi = span(network)
        if hi < self._base or lo > self._top:
            return None
        return (max(lo, self._base) - self._base) >> self._shift, (min(hi, self._top) - self._base) >> self._shift

    def _range_or_raise(self, network: Network) -> tuple[int, int]:
        rng = self.index_range(network)
        if rng is None:
            raise CIDRSetError(f"{network} is not inside {self.cidr}")
        return rng

    def is_block(self, network: Network) -> bool:
        """Whether ``network`` is exactly one block of this set."""
        return network.prefixlen == self.block_prefix and network.subnet_of(self.cidr)  # type: ignore[arg-type]

    def contains(self, network: Network) -> bool:
        """Whether ``network`` overlaps this set's CIDR (so occupy() would take blocks for it)."""
        return self.index_range(network) is not None

    # --- queries ------------------------------------------------------------------------------------------

    def _interval_at(self, index: int) -> int:
        """Position of the interval holding ``index``, or -1."""
        k = bisect_right(self._starts, index) - 1
        return k if k >= 0 and index < self._ends[k] else -1

    def is_allocated(self, network: Network) -> bool:
        """Whether every block ``network`` touches is allocated (for a block: whether it is allocated)."""
        first, last = self._range_or_raise(network)
        k = self._interval_at(first)
        return k >= 0 and last < self._ends[k]

    def allocated_count(self, network: Network) -> int:
        """How many of the blocks ``network`` touches are allocated."""
        first, last = self._range_or_raise(network)
        return self._covered(first, last + 1)

    def _covered(self, lo: int, hi: int) -> int:
        left = bisect_right(self._ends, lo)
        right = bisect_left(self._starts, hi)
        return sum(
            min(e, hi) - max(s, lo) for s, e in zip(self._starts[left:right], self._ends[left:right], strict=True)
        )

    def allocated_blocks(self) -> list[Network]:
        """Every allocated block, in address order (O(allocated): for status and tests, not hot paths)."""
        return [self.block(i) for s, e in zip(self._starts, self._ends, strict=True) for i in range(s, e)]

    def runs(self) -> list[tuple[int, int]]:
        """Allocated index intervals ``[start, end)``, sorted and disjoint."""
        return list(zip(self._starts, self._ends, strict=True))

    # --- mutations ----------------------------------------------------------------------------------------

    def _add(self, lo: int, hi: int) -> int:
        """Mark ``[lo, hi)`` allocated; return how many were free."""
        left = bisect_left(self._ends, lo)  # first interval ending at or after lo (overlapping or adjacent)
        right = bisect_right(self._starts, hi)  # intervals starting at or before hi
        covered = 0
        new_lo, new_hi = lo, hi
        for s, e in zip(self._starts[left:right], self._ends[left:right], strict=True):
            covered += max(0, min(e, hi) - max(s, lo))
            new_lo, new_hi = min(new_lo, s), max(new_hi, e)
        self._starts[left:right] = [new_lo]
        self._ends[left:right] = [new_hi]
        newly = (hi - lo) - covered
        self._allocated += newly
        return newly

    def _add_free(self, i: int) -> None:
        """Mark the free index ``i`` allocated (the hot path of allocate_next)."""
        starts, ends = self._starts, self._ends
        k = bisect_right(starts, i) - 1  # the interval before i, if any
        joins_left = k >= 0 and ends[k] == i
        joins_right = k + 1 < len(starts) and starts[k + 1] == i + 1
        if joins_left and joins_right:
            ends[k] = ends[k + 1]
            del starts[k + 1], ends[k + 1]
        elif joins_left:
            ends[k] = i + 1
        elif joins_right:
            starts[k + 1] = i
        else:
            starts.insert(k + 1, i)
            ends.insert(k + 1, i + 1)
        self._allocated += 1

    def _remove(self, lo: int, hi: int) -> int:
        """Mark ``[lo, hi)`` free; return how many were allocated."""
        left = bisect_right(self._ends, lo)  # first interval ending after lo
        right = bisect_left(self._starts, hi)  # intervals starting before hi
        if left >= right:
            return 0
        removed = 0
        starts: list[int] = []
        ends: list[int] = []
        for s, e in zip(self._starts[left:right], self._ends[left:right], strict=True):
            removed += min(e, hi) - max(s, lo)
            if s < lo:
                starts.append(s)
                ends.append(lo)
            if e > hi:
                starts.append(hi)
                ends.append(e)
        self._starts[left:right] = starts
        self._ends[left:right] = ends
        self._allocated -= removed
        return removed

    def _first_free_from(self, index: int) -> int | None:
        k = self._interval_at(index)
        if k >= 0:
            index = self._ends[k]  # intervals are merged, so the end of one is free (or the end of the set)
        return index if index < self.capacity else None

    def allocate_next(self) -> Network:
        """The next free block, round-robin from the one after the last allocated; :class:`CIDRSetFull` if none."""
        if self._allocated >= self.capacity:
            raise CIDRSetFull(f"{self.cidr} has no free /{self.block_prefix} block ({self.capacity} allocated)")
        index = self._first_free_from(self._next)
        if index is None:
            index = self._first_free_from(0)
        assert index is not None  # free > 0
        self._add_free(index)
        self._next = (index + 1) % self.capacity
        return self.block(index)

    def occupy(self, network: Network) -> Occupation:
        """Mark every block ``network`` touches as allocated (idempotent; an existing allocation restored).

        A network that is not exactly one block still occupies whole blocks (see :class:`Occupation`);
        :class:`CIDRSetError` if it lies outside the set.
        """
        first, last = self._range_or_raise(network)
        lo, hi = span(network)
        kind: OccupyKind
        if lo < self._base or hi > self._top:
            kind = "partial"
        elif network.prefixlen == self.block_prefix:
            kind = "exact"
        elif first == last:
            kind = "inside-block"
        else:
            kind = "spans-blocks"
        newly = self._add(first, last + 1)
        return Occupation(network, first, last, kind, newly, last - first + 1 - newly)

    def release(self, network: Network) -> int:
        """Free every block ``network`` touches (the same blocks occupy() took); return how many were allocated."""
        first, last = self._range_or_raise(network)
        return self._remove(first, last + 1)
