"""Near-duplicate images through the store: ``index`` (backfill, resumable, a no-op once
done), ``similar`` and ``duplicate_groups`` on real pictures made by Pillow and their
variants, and every bad input refused with nothing changed."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from mediastore import (
    InvalidInputError,
    InvalidMD5Error,
    MediaNotFoundError,
    MediaStore,
    UnsupportedMediaError,
)
from mediastore import testing as t


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)  # type: ignore[arg-type]
    return buf.getvalue()


def resized(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its longer side ``side`` pixels (Lanczos, as a site's resizer)."""
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)


@pytest.fixture
def original() -> Image.Image:
    return t.photo(7, (1024, 768))


def hashed_rows(store: MediaStore) -> int:
    return t.catalog_rows(store, "image_hashes")


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q60": lambda im: encode(im, "JPEG", quality=60),
    "jpeg q95": lambda im: encode(im, "JPEG", quality=95),
    "webp": lambda im: encode(im, "WEBP", quality=80),
    "png": lambda im: encode(im, "PNG"),
    "resized 100": lambda im: encode(resized(im, 100), "JPEG", quality=90),
    "resized 800": lambda im: encode(resized(im, 800), "JPEG", quality=90),
    "resized 2048": lambda im: encode(resized(im, 2048), "JPEG", quality=90),
}


def test_variants_are_found_and_unrelated_pictures_are_not(
    store: MediaStore, original: Image.Image
) -> None:
    """Re-encodings, a format change and resizes of one picture are within the default
    distance of it; three unrelated pictures are not."""
    source = store.add_bytes(encode(original, "JPEG", quality=85)).md5
    variants = {name: store.add_bytes(make(original)).md5 for name, make in VARIANTS.items()}
    others = {store.add_bytes(encode(t.photo(seed, (1024, 768)), "JPEG")).md5 for seed in (1, 2, 3)}
    assert store.index().hashed == 1 + len(VARIANTS) + 3
    found = {hit.md5: hit.distance for hit in store.similar(source)}
    assert set(variants.values()) <= set(found), {
        name: md5 for name, md5 in variants.items() if md5 not in found
    }
    assert not others & set(found)
    assert source not in found  # the image asked about is left out
    assert list(found.values()) == sorted(found.values())


def test_rotation_is_another_picture(store: MediaStore, original: Image.Image) -> None:
    """A copy rotated by 90 degrees is not a near-duplicate: the hashes are of the stored
    pixels, and the perceptual hash does not try rotations."""
    source = store.add_bytes(encode(original, "PNG")).md5
    store.add_bytes(encode(original.transpose(Image.Transpose.ROTATE_90), "PNG"))
    store.index()
    assert store.similar(source, 8) == []


def test_same_pixels_in_other_files(store: MediaStore, original: Image.Image) -> None:
    """A PNG saved at two compression levels and a lossless WebP of the same pixels share the
    pixel hash (distance 0, same_pixels); ``pixel_only`` groups exactly them."""
    small = original.resize((256, 192))
    files = [
        store.add_bytes(encode(small, "PNG", compress_level=1)).md5,
        store.add_bytes(encode(small, "PNG", compress_level=9)).md5,
        store.add_bytes(encode(small, "WEBP", lossless=True)).md5,
    ]
    store.add_bytes(encode(small, "JPEG", quality=90))
    store.index()
    hits = store.similar(files[0], 0)
    assert {hit.md5 for hit in hits if hit.same_pixels} == set(files[1:])
    (group,) = store.duplicate_groups(pixel_only=True)
    assert {group.keeper.md5, *(o.md5 for o in group.others)} == set(files)
    assert all(o.same_pixels and o.distance == 0 for o in group.others)


def test_groups_suggest_the_largest_picture_and_count_what_the_others_take(
    store: MediaStore, original: Image.Image
) -> None:
    """The keeper has the most pixels (then the largest file); ``saved_bytes`` is the sum of
    the others' sizes; each image is in at most one group; an unrelated picture in none."""
    big = store.add_bytes(encode(original, "JPEG", quality=90))
    small = [store.add_bytes(encode(resized(original, side), "JPEG")) for side in (800, 400)]
    other = t.photo(99, (640, 480))
    pair = [store.add_bytes(encode(other, "PNG")), store.add_bytes(encode(other, "JPEG"))]
    store.add_bytes(encode(t.photo(5, (640, 480)), "JPEG"))
    store.index()
    groups = {g.keeper.md5: g for g in store.duplicate_groups()}
    assert set(groups) == {big.md5, pair[0].md5}  # PNG: same pixels, larger file
    assert {o.md5 for o in groups[big.md5].others} == {r.md5 for r in small}
    assert groups[big.md5].saved_bytes == sum(r.size for r in small)
    assert [o.md5 for o in groups[pair[0].md5].others] == [pair[1].md5]


def test_index_is_a_backfill_and_a_no_op_when_done(store: MediaStore) -> None:
    """``index`` hashes only images (not a PDF), counts progress, and a second run reads
    nothing; an image added later is hashed by the next run."""
    store.add_bytes(encode(t.photo(1, (320, 240)), "JPEG"))
    store.add_bytes(t.pdf_bytes())
    store.add_bytes(t.animated_bytes())
    calls: list[tuple[int, int]] = []
    report = store.index(progress=lambda done, total: calls.append((done, total)))
    assert (report.hashed, report.undecodable, report.missing) == (2, {}, [])
    assert calls[-1] == (2, 2)
    assert store.index().hashed == 0
    store.add_bytes(encode(t.photo(2, (320, 240)), "PNG"))
    assert store.index().hashed == 1
    assert hashed_rows(store) == 3


def test_similar_hashes_an_image_index_has_not_reached(
    store: MediaStore, original: Image.Image
) -> None:
    """Asking about an image not hashed yet works (hashed in memory, not recorded); only
    hashed images are found."""
    first = store.add_bytes(encode(original, "PNG")).md5
    store.index()
    second = store.add_bytes(encode(original, "JPEG")).md5
    assert [hit.md5 for hit in store.similar(second)] == [first]
    assert hashed_rows(store) == 1


def test_by_url(store: MediaStore, original: Image.Image, tmp_path: object) -> None:
    """An image may be named by a URL it was stored from."""
    first = store.add_bytes(encode(original, "PNG"), url="https://example.com/a.png").md5
    second = store.add_bytes(encode(original, "JPEG")).md5
    store.index()
    assert [hit.md5 for hit in store.similar("https://example.com/a.png")] == [second]
    assert [hit.md5 for hit in store.similar(second[:8])] == [first]


def test_removed_images_are_not_found(store: MediaStore, original: Image.Image) -> None:
    """Content removed with ``remove`` is neither found nor grouped."""
    first = store.add_bytes(encode(original, "PNG")).md5
    second = store.add_bytes(encode(original, "JPEG")).md5
    store.index()
    store.remove(second)
    assert store.similar(first) == []
    assert list(store.duplicate_groups()) == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s, md5: s.similar("not-an-md5"), InvalidMD5Error),
        (lambda s, md5: s.similar(md5, -1), InvalidInputError),
        (lambda s, md5: s.similar(md5, 9), InvalidInputError),
        (lambda s, md5: s.similar(md5, 2.5), InvalidInputError),
        (lambda s, md5: s.similar(md5, True), InvalidInputError),
        (lambda s, md5: s.similar("0" * 32), MediaNotFoundError),
        (lambda s, md5: s.similar("https://example.com/unknown.jpg"), MediaNotFoundError),
        (lambda s, md5: list(s.duplicate_groups(-1)), InvalidInputError),
        (lambda s, md5: list(s.duplicate_groups(9, pixel_only=True)), InvalidInputError),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    store: MediaStore, call: Callable[[MediaStore, str], object], error: type[Exception]
) -> None:
    """Each bad argument raises its one error (``InvalidInputError`` is a ``ValueError``) and
    no hash is recorded."""
    md5 = store.add_bytes(encode(t.photo(1, (64, 48)), "PNG")).md5
    with pytest.raises(error):
        call(store, md5)
    assert hashed_rows(store) == 0


def test_a_pdf_is_not_an_image(store: MediaStore) -> None:
    """Asking for pictures like a PDF is unsupported content, and records nothing."""
    md5 = store.add_bytes(t.pdf_bytes()).md5
    with pytest.raises(UnsupportedMediaError, match="not an image"):
        store.similar(md5)
    assert hashed_rows(store) == 0


def test_an_image_that_does_not_decode_is_recorded_once(store: MediaStore) -> None:
    """``index`` lists an image whose pixels do not decode and records it without hashes: the
    next run does not read it again; ``similar`` on it is unsupported content."""
    md5 = store.add_bytes(t.png_undecodable()).md5
    report = store.index()
    assert report.hashed == 0 and list(report.undecodable) == [md5]
    assert "truncated" in report.undecodable[md5]
    assert store.index().undecodable == {}
    assert hashed_rows(store) == 1
    with pytest.raises(UnsupportedMediaError, match="no similarity hash"):
        store.similar(md5)


def test_a_missing_file_is_left_for_the_next_run(store: MediaStore) -> None:
    """An image whose file is gone is listed as missing and not recorded, so the run after
    its file is back hashes it."""
    record = store.add_bytes(encode(t.photo(1, (64, 48)), "PNG"))
    content = Path(record.path).read_bytes()
    Path(record.path).unlink()
    assert store.index().missing == [record.md5]
    assert store.index().missing == [record.md5]
    with pytest.raises(MediaNotFoundError):
        store.similar(record.md5)
    Path(record.path).write_bytes(content)
    assert store.index().hashed == 1
