"""Near-duplicate images: accuracy of the perceptual hash on variants of photos, the speed of
``similar()`` and of a ``dupes`` pass on a big catalog, and what hashing costs per image.

    python -m benchmarks.similarity accuracy [--photos DIR] [--synthetic N]
    python -m benchmarks.similarity speed [--rows N] [--queries N] [--dupes N]
    python -m benchmarks.similarity cost [--images N]

Not a case of ``python -m benchmarks`` (no reference tool to race): the figures go to the
"Near-duplicate images" section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from PIL import Image, ImageDraw

from mediastore import MediaStore
from mediastore.formats.detect import BY_EXTENSION
from mediastore.formats.imagehash import hash_file
from mediastore.similarity import bands, distance, to_signed
from mediastore.testing import photo

from .data import jpeg_for_seed

DISTANCES = (0, 2, 4, 8)
MAX_PIXELS = 1 << 30


# --- accuracy -----------------------------------------------------------------------------------
def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)  # type: ignore[arg-type]
    return buf.getvalue()


def resized(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def with_exif(image: Image.Image) -> bytes:
    """The original as a camera writes it: a JPEG with an EXIF block."""
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0132] = "2026:01:02 03:04:05"  # DateTime
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def strip_exif(jpeg: bytes) -> bytes:
    """The same JPEG without its APP1 (EXIF) segments, pixels untouched (jpegtran -copy none)."""
    out, pos = bytearray(jpeg[:2]), 2
    while pos < len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if jpeg[pos + 1] != 0xE1:
            out += jpeg[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + jpeg[pos:])


def watermark(image: Image.Image) -> Image.Image:
    """A small semi-opaque label in the bottom right corner (about 1.5% of the area)."""
    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked, "RGBA")
    w, h = marked.size
    box = (int(w * 0.8), int(h * 0.92), int(w * 0.98), int(h * 0.98))
    draw.rectangle(box, fill=(255, 255, 255, 160))
    draw.text((box[0] + 4, box[1] + 2), "@someone", fill=(0, 0, 0, 255))
    return marked


def crop(image: Image.Image, fraction: float = 0.02) -> Image.Image:
    """``fraction`` of each dimension cut, half from each side."""
    w, h = image.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


VARIANTS: dict[str, Callable[[Image.Image, bytes], bytes]] = {
    "resize 100": lambda im, _: encode(resized(im, 100), "JPEG", quality=85),
    "resize 800": lambda im, _: encode(resized(im, 800), "JPEG", quality=85),
    "resize 1280": lambda im, _: encode(resized(im, 1280), "JPEG", quality=85),
    "resize 2048": lambda im, _: encode(resized(im, 2048), "JPEG", quality=85),
    "jpeg q60": lambda im, _: encode(im, "JPEG", quality=60),
    "jpeg q75": lambda im, _: encode(im, "JPEG", quality=75),
    "jpeg q95": lambda im, _: encode(im, "JPEG", quality=95),
    "webp q80": lambda im, _: encode(im, "WEBP", quality=80),
    "png": lambda im, _: encode(im, "PNG"),
    "exif stripped": lambda _, original: strip_exif(original),
    "crop 2%": lambda im, _: encode(crop(im), "JPEG", quality=90),
    "watermark": lambda im, _: encode(watermark(im), "JPEG", quality=90),
    "rotate 90": lambda im, _: encode(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90),
}


def phash_of(data: bytes) -> tuple[str, int]:
    kind = BY_EXTENSION[_extension(data)]
    return hash_file(io.BytesIO(data), kind, max_pixels=MAX_PIXELS)


def _extension(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return "webp"


def sources(photos: Path | None, synthetic: int) -> Iterator[tuple[str, Image.Image]]:
    if photos is not None:
        for path in sorted(photos.iterdir()):
            with Image.open(path) as image:
                yield path.name, image.convert("RGB")
    for seed in range(synthetic):
        yield f"synthetic-{seed}", photo(seed, (1600, 1200))


def accuracy(photos: Path | None, synthetic: int) -> None:
    """Recall (a variant within d of its own original) and precision (of the pairs within d
    of an original, the share that are its own variants) per variant kind."""
    originals: dict[str, int] = {}
    variants: dict[str, dict[str, int]] = {kind: {} for kind in VARIANTS}
    for name, image in sources(photos, synthetic):
        stored = with_exif(image)
        originals[name] = phash_of(stored)[1]
        for kind, make in VARIANTS.items():
            variants[kind][name] = phash_of(make(image, stored))[1]
    names = list(originals)
    print(f"{len(names)} originals ({', '.join(names)})\n")
    print(
        "| variant | " + " | ".join(f"recall d<={d} | precision d<={d}" for d in DISTANCES) + " |"
    )
    print("| --- |" + " --- | --- |" * len(DISTANCES))
    for kind, hashes in variants.items():
        cells = []
        for d in DISTANCES:
            true = sum(distance(originals[n], hashes[n]) <= d for n in names)
            false = sum(
                distance(originals[a], hashes[b]) <= d for a in names for b in names if a != b
            )
            precision = true / (true + false) if true + false else 1.0
            cells.append(f"{true / len(names):.2f} | {precision:.3f}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("\nunrelated originals within d (pairs of different photos):")
    for d in DISTANCES:
        close = [
            (a, b, distance(originals[a], originals[b]))
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if distance(originals[a], originals[b]) <= d
        ]
        print(f"  d<={d}: {len(close)} of {len(names) * (len(names) - 1) // 2} {close[:5]}")


# --- speed --------------------------------------------------------------------------------------
def clustered_hashes(count: int, common: int, share: float, seed: int = 1) -> Iterator[int]:
    """Hashes distributed as real ones are: biased bits (low frequencies are not fair coins),
    a ``share`` of them near ``common`` popular pictures (flat skies, screenshots, memes:
    0-12 bits away), one in ten a near-duplicate of the image before it (0-4 bits: the same
    picture stored again), the rest on their own. Top bit always 0."""
    rng = random.Random(seed)
    bias = [min(0.85, max(0.15, rng.gauss(0.5, 0.2))) for _ in range(63)]

    def biased() -> int:
        value = 0
        for p in bias:
            value = (value << 1) | (rng.random() < p)
        return value

    centers = [biased() for _ in range(common)]
    previous = biased()
    for _ in range(count):
        roll = rng.random()
        if roll < share:
            value = rng.choice(centers)
            for _ in range(rng.randint(0, 12)):
                value ^= 1 << rng.randrange(63)
        elif roll < share + 0.1:
            value = previous
            for _ in range(rng.randint(0, 4)):
                value ^= 1 << rng.randrange(63)
        else:
            value = biased()
        previous = value
        yield value


def build(root: Path, rows: int, common: int = 20_000, share: float = 0.2) -> list[str]:
    """A store whose catalog holds ``rows`` hashed images (bulk inserted); their md5s."""
    MediaStore(root).close()
    con = sqlite3.connect(root / "catalog.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1048576")
    con.execute("BEGIN")
    md5s = [hashlib.md5(f"image-{i}".encode()).hexdigest() for i in range(rows)]
    rng = random.Random(2)
    con.executemany(
        "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size, width, height,"
        " created_at, status) VALUES (?, ?, 'image', 'image/jpeg', 'jpg', ?, ?, ?,"
        " '2026-01-01 00:00:00', 'ok')",
        ((m, m * 2, rng.randint(20_000, 900_000), rng.randint(200, 4000), 1000) for m in md5s),
    )
    con.executemany(
        "INSERT INTO image_hashes (md5, pixel_hash, phash, band0, band1, band2, hashed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, '2026-01-01 00:00:00')",
        (
            (m, m * 2, to_signed(h), *bands(h))
            for m, h in zip(md5s, clustered_hashes(rows, common, share), strict=True)
        ),
    )
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    return md5s


def build_pg(url: str, rows: int, common: int, share: float) -> list[str]:
    """The same catalog on PostgreSQL, loaded with COPY; the md5s."""
    import psycopg

    MediaStore(tempfile.mkdtemp(prefix="pgcat-"), db_url=url).close()  # schema by Alembic
    md5s = [hashlib.md5(f"image-{i}".encode()).hexdigest() for i in range(rows)]
    rng = random.Random(2)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        # the stats counters' triggers would update one row a million times: off for the load
        conn.execute("ALTER TABLE media DISABLE TRIGGER USER")
        media = "md5, sha256, media_type, mime_type, extension, size, width, height, created_at"
        with conn.cursor().copy(f"COPY media ({media}) FROM STDIN") as copy:
            for m in md5s:
                size = rng.randint(20_000, 900_000)
                row = (m, m * 2, "image", "image/jpeg", "jpg", size, 1000, 1000, "2026-01-01")
                copy.write_row(row)
        columns = "md5, pixel_hash, phash, band0, band1, band2, hashed_at"
        with conn.cursor().copy(f"COPY image_hashes ({columns}) FROM STDIN") as copy:
            for m, h in zip(md5s, clustered_hashes(rows, common, share), strict=True):
                copy.write_row((m, m * 2, to_signed(h), *bands(h), "2026-01-01"))
        conn.execute("ALTER TABLE media ENABLE TRIGGER USER")
        conn.execute("ANALYZE")
    return md5s


def speed(rows: int, queries: int, dupes: bool, common: int, share: float, postgres: bool) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder, ExitStack() as stack:
        root = Path(folder) / "store"
        db_url = None
        start = time.perf_counter()
        if postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            import servers

            pg = servers.start_postgres()
            stack.callback(pg.stop)
            db_url = pg.create_database("similarity")[1]
            md5s = build_pg(db_url, rows, common, share)
        else:
            md5s = build(root, rows, common, share)
        print(
            f"built {rows:,} hashed images ({share:.0%} near {common:,} popular pictures)"
            f" on {'PostgreSQL' if postgres else 'SQLite'} in {time.perf_counter() - start:.0f} s"
        )
        sample = random.Random(3).sample(md5s, queries)
        with MediaStore(root, db_url=db_url) as store:
            for round_ in ("cold", "warm"):  # the first round reads the catalog into memory
                for d in DISTANCES:
                    _time_similar(store, sample, d, round_)
            if dupes:
                start, groups, images = time.perf_counter(), 0, 0
                for group in store.duplicate_groups(4):
                    groups += 1
                    images += 1 + len(group.others)
                took = time.perf_counter() - start
                print(
                    f"dupes(d=4), full pass: {groups:,} groups, {images:,} grouped images in"
                    f" {took:.1f} s"
                )


def _time_similar(store: MediaStore, sample: list[str], d: int, round_: str) -> None:
    times, found = [], 0
    for md5 in sample:
        start = time.perf_counter()
        found += len(store.similar(md5, d))
        times.append(time.perf_counter() - start)
    times.sort()
    mean, median = statistics.fmean(times), times[len(times) // 2]
    p95 = times[int(len(times) * 0.95)]
    print(
        f"{round_} similar(d={d}): mean {mean * 1e3:.3f} ms, median {median * 1e3:.3f} ms,"
        f" p95 {p95 * 1e3:.3f} ms; {found / len(sample):.1f} images found per query"
    )


# --- cost ---------------------------------------------------------------------------------------
def cost(images: int) -> None:
    """Hashing time per image on the ``adds`` benchmark's JPEGs (20-200 KB, random pixels)."""
    data = [jpeg_for_seed(seed) for seed in range(images)]
    start = time.perf_counter()
    for content in data:
        phash_of(content)
    took = (time.perf_counter() - start) / images
    print(f"hash_file: {took * 1e3:.2f} ms per image over {images} JPEGs of 20-200 KB")
    pics = [encode(photo(seed, (1600, 1200)), "JPEG", quality=90) for seed in range(20)]
    start = time.perf_counter()
    for content in pics:
        phash_of(content)
    took = (time.perf_counter() - start) / len(pics)
    print(f"hash_file: {took * 1e3:.2f} ms per image on 1600x1200 JPEG photos")


def main(argv: list[str] | None = None) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.similarity")
    sub = parser.add_subparsers(dest="what", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--photos", type=Path)
    acc.add_argument("--synthetic", type=int, default=20)
    spd = sub.add_parser("speed")
    spd.add_argument("--rows", type=int, default=1_000_000)
    spd.add_argument("--queries", type=int, default=1000)
    spd.add_argument("--dupes", action="store_true", help="also time a full dupes pass")
    spd.add_argument("--common", type=int, default=20_000, help="popular pictures")
    spd.add_argument("--share", type=float, default=0.2, help="share of images near them")
    spd.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL catalog")
    cst = sub.add_parser("cost")
    cst.add_argument("--images", type=int, default=200)
    args = parser.parse_args(argv)
    if args.what == "accuracy":
        accuracy(args.photos, args.synthetic)
    elif args.what == "speed":
        speed(args.rows, args.queries, args.dupes, args.common, args.share, args.postgres)
    else:
        cost(args.images)


if __name__ == "__main__":
    sys.exit(main())
