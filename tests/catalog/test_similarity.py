"""The band scheme of the perceptual hash misses nothing: the pigeonhole bound checked on
random hashes, and the catalog's indexed query compared with a scan of every row."""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.similarity import (
    BAND_BITS,
    HASH_BITS,
    MAX_DISTANCE,
    BandIndex,
    band_candidates,
    bands,
    distance,
    to_signed,
    to_unsigned,
)

hashes = st.integers(0, (1 << HASH_BITS) - 1)


def flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def near(value: int, max_distance: int) -> st.SearchStrategy[int]:
    """Hashes at most ``max_distance`` bits from ``value`` (distinct bits flipped)."""
    flips = st.lists(st.integers(0, HASH_BITS - 1), max_size=max_distance, unique=True)
    return flips.map(lambda bits: flip(value, bits))


def test_bands_partition_the_hash() -> None:
    """The bands' widths add up to 64 bits, and the bands put back together are the hash."""
    assert sum(BAND_BITS) == HASH_BITS
    value = 0x8123_4567_89AB_CDEF
    rebuilt = 0
    for band, width in zip(bands(value), BAND_BITS, strict=True):
        rebuilt = (rebuilt << width) | band
    assert rebuilt == value
    assert to_unsigned(to_signed(value)) == value and to_signed(value) < 0


@settings(max_examples=1000, deadline=None)
@given(st.data(), hashes, st.integers(0, MAX_DISTANCE))
def test_a_hash_within_k_shares_a_candidate_band(
    data: st.DataObject, value: int, max_distance: int
) -> None:
    """Any hash within ``k`` of a query has, in some band, one of the values the query reads
    (the proof in mediastore.similarity, checked)."""
    other = data.draw(near(value, max_distance))
    assert distance(value, other) <= max_distance
    candidates = band_candidates(value, max_distance)
    assert any(band in values for band, values in zip(bands(other), candidates, strict=True))


@pytest.fixture(scope="module")
def rows() -> Iterator[tuple[MediaStore, list[str]]]:
    """A store of 24 tiny images, hashed; the tests then give their rows chosen hashes."""
    with tempfile.TemporaryDirectory() as folder:
        store = MediaStore(Path(folder) / "store")
        md5s = [
            store.add_bytes(t.image_bytes("PNG", (8, 8), color=(i, 0, 0))).md5 for i in range(24)
        ]
        store.index()
        yield store, md5s
        store.close()


def set_hashes(store: MediaStore, assigned: dict[str, int]) -> None:
    with store.catalog.engine.begin() as conn:
        for md5, value in assigned.items():
            b0, b1, b2 = bands(value)
            conn.execute(
                text(
                    "UPDATE image_hashes SET phash = :p, band0 = :b0, band1 = :b1, band2 = :b2 "
                    "WHERE md5 = :md5"
                ),
                {"p": to_signed(value), "b0": b0, "b1": b1, "b2": b2, "md5": md5},
            )


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.data(), hashes, st.integers(0, MAX_DISTANCE))
def test_the_indexed_query_is_the_scan(
    rows: tuple[MediaStore, list[str]], data: st.DataObject, query: int, max_distance: int
) -> None:
    """Rows at random distances around a query (some just inside, some just outside ``k``,
    some unrelated): the catalog's band query returns exactly the rows a scan of every
    hash within ``k`` finds."""
    store, md5s = rows
    assigned = {md5: data.draw(near(query, MAX_DISTANCE + 4) | hashes) for md5 in md5s}
    set_hashes(store, assigned)
    found = {hit[0] for hit in store.catalog.near(query, max_distance)}
    assert found == {md5 for md5, v in assigned.items() if distance(query, v) <= max_distance}


@settings(max_examples=200, deadline=None)
@given(st.data(), hashes, st.integers(0, MAX_DISTANCE))
def test_the_in_memory_band_index_is_the_scan(
    data: st.DataObject, query: int, max_distance: int
) -> None:
    """``BandIndex`` (the grouping pass's lookups) finds exactly the hashes a scan finds
    within ``k``, repeated hashes included."""
    values = data.draw(st.lists(near(query, MAX_DISTANCE + 4) | hashes, max_size=30))
    stored = array("Q", [query, *values, query])
    index = BandIndex(stored)
    expected = [i for i, v in enumerate(stored) if distance(query, v) <= max_distance]
    assert index.near(0, max_distance) == expected
