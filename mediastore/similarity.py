"""Perceptual hashes compared by Hamming distance, and the band scheme that makes "every
hash within distance k of this one" an indexed query.

A perceptual hash is a 64-bit unsigned integer (:mod:`mediastore.formats.imagehash`). The
catalog stores it cut into :data:`BANDS` disjoint bit ranges, each in its own indexed
integer column (multi-index hashing). The distance of two hashes is the sum of the
distances of their bands, which is what makes the lookup exact:

**Claim.** Let the 64 bits be split into ``m`` disjoint bands and ``r = k // m``. If
``distance(a, b) <= k``, then for at least one band ``i``, ``distance(a_i, b_i) <= r``.

**Proof.** Suppose every band differs in at least ``r + 1`` bits. The bands are disjoint
and cover all 64 bits, so ``distance(a, b) = sum_i distance(a_i, b_i) >= m * (r + 1)``.
Since ``r = k // m`` we have ``k < m * (r + 1)``, hence ``distance(a, b) > k``: a
contradiction. So some band of ``b`` lies within ``r`` of the same band of ``a``. (With
``m > k``, ``r = 0``: some band is equal, the plain pigeonhole.)

The query therefore asks, for each band, for the rows whose band value is one of the
values within ``r`` bits of the query's band (:func:`band_candidates`, each an index point
lookup), and keeps the rows whose full 64-bit distance is at most ``k``: every hash within
``k`` is among the candidates, and only those within ``k`` are returned.

Why 3 bands of 22, 21 and 21 bits: a band is selective when it has about as many bits as
``log2`` of the number of images (an index lookup then finds about one row). With 3 bands
at 1,000,000 images: up to ``k = 2`` the query is 3 point lookups, at the default ``k = 4``
(``r = 1``) 67 lookups, at ``k = 8`` (``r = 2``) 718. Nine bands of 7 bits would need only
exact matches up to ``k = 8`` but each 7-bit value is shared by ~8,000 rows per million,
~70,000 candidates per query.
"""

from __future__ import annotations

import functools
from array import array
from bisect import bisect_left
from itertools import combinations

#: Bits of the perceptual hash.
HASH_BITS = 64
#: Band widths, most significant band first; they partition the 64 bits.
BAND_BITS: tuple[int, ...] = (22, 21, 21)
#: Number of bands.
BANDS = len(BAND_BITS)
#: The largest distance a similarity query accepts (beyond 8 a 64-bit DCT hash matches
#: unrelated pictures).
MAX_DISTANCE = 8
#: The distance ``similar`` and ``dupes`` use when none is given.
DEFAULT_DISTANCE = 4

_SHIFTS: tuple[int, ...] = tuple(HASH_BITS - sum(BAND_BITS[: i + 1]) for i in range(BANDS))


def distance(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes (bits that differ)."""
    return (a ^ b).bit_count()


def bands(value: int) -> tuple[int, ...]:
    """The band values of a 64-bit hash, most significant first."""
    return tuple(
        (value >> shift) & ((1 << width) - 1)
        for shift, width in zip(_SHIFTS, BAND_BITS, strict=True)
    )


def band_radius(max_distance: int) -> int:
    """Bits a band may differ by and still hold a hash within ``max_distance`` (the proof)."""
    return max_distance // BANDS


def band_candidates(value: int, max_distance: int) -> list[list[int]]:
    """For each band, every band value within :func:`band_radius` bits of ``value``'s.

    A hash within ``max_distance`` of ``value`` has, in at least one band, one of these
    values (module docstring): the rows to read are those matching any of them.
    """
    radius = band_radius(max_distance)
    return [
        _within(band, width, radius) for band, width in zip(bands(value), BAND_BITS, strict=True)
    ]


def _within(band: int, width: int, radius: int) -> list[int]:
    """Every ``width``-bit value at most ``radius`` bits from ``band``."""
    return [band ^ mask for mask in _masks(width, radius)]


@functools.cache
def _masks(width: int, radius: int) -> tuple[int, ...]:
    """Every ``width``-bit mask with at most ``radius`` bits set, fewest first (0 first)."""
    return tuple(
        sum(1 << bit for bit in bits)
        for flips in range(radius + 1)
        for bits in combinations(range(width), flips)
    )


def to_signed(value: int) -> int:
    """A 64-bit unsigned hash as the signed integer a BIGINT column holds."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def to_unsigned(value: int) -> int:
    """The unsigned hash of a BIGINT column's signed value."""
    return value + (1 << HASH_BITS) if value < 0 else value


class BandIndex:
    """Many hashes held in memory for a pass over all of them (``dupes``), answering the
    same band lookups as the catalog's query without a query per hash.

    Per band, the positions of the hashes sorted by that band's value, and the values in
    that order (two ``array`` of 4-byte integers): a lookup is a binary search. About 32
    bytes per hash with the hashes themselves.
    """

    def __init__(self, hashes: array[int]) -> None:
        self.hashes = hashes
        self._order: list[array[int]] = []
        self._keys: list[array[int]] = []
        for shift, width in zip(_SHIFTS, BAND_BITS, strict=True):
            mask = (1 << width) - 1
            keys = array("i", ((value >> shift) & mask for value in hashes))
            order = array("i", sorted(range(len(hashes)), key=keys.__getitem__))
            self._order.append(order)
            self._keys.append(array("i", (keys[i] for i in order)))

    def near(self, position: int, max_distance: int) -> list[int]:
        """Positions of the hashes within ``max_distance`` of the one at ``position``
        (itself included), by the band lookups the module docstring proves complete."""
        value = self.hashes[position]
        found: set[int] = set()
        for order, keys, candidates in zip(
            self._order, self._keys, band_candidates(value, max_distance), strict=True
        ):
            for band in candidates:
                at = bisect_left(keys, band)
                while at < len(keys) and keys[at] == band:
                    found.add(order[at])
                    at += 1
        return sorted(i for i in found if distance(value, self.hashes[i]) <= max_distance)
