"""URL identity: URLs of one asset and variant are one stored file, found with no request.

A LinkedIn-shaped CDN runs on loopback (the CDN's host names resolve to 127.0.0.1 through the
store's resolver); every request it answers is counted.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import checker
import pytest
from alembic import command as alembic_command
from clirun import error_line, run_cli
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from mediastore import InvalidInputError, MediaStore
from mediastore import testing as t
from mediastore.catalog.schema import alembic_config
from mediastore.identity import Identities, rule_from_mapping

IMAGE = "https://media.licdn.com/dms/image/v2/{asset}/{cls}/{cls}/{page}/1700000000000?e={e}&v=beta&t={sig}"
VIDEO = "https://dms.licdn.com/playlist/vid/v2/{asset}/{cls}/0/1700000000000?e={e}&v=beta&t={sig}"


def image_url(asset: str, cls: str, sig: str, *, page: int = 0, e: int = 1767225600) -> str:
    return IMAGE.format(asset=asset, cls=cls, page=page, e=e, sig=sig)


RULES = Identities()


# --- the rules ------------------------------------------------------------------------------
def test_a_rotated_signature_is_the_same_identity_and_variant() -> None:
    """e= and t= change, the identity and the variant do not; http and other ports agree."""
    one = RULES.of(image_url("D4E22AQF", "feedshare-shrink_800", "sigA"))
    two = RULES.of(image_url("D4E22AQF", "feedshare-shrink_800", "sigB", e=1800000000))
    plain = RULES.of(image_url("D4E22AQF", "feedshare-shrink_800", "x").replace("https:", "http:"))
    assert one is not None and two is not None and plain is not None
    assert one.digest == two.digest == plain.digest
    assert one.variant == two.variant == "feedshare-shrink_800" and one.rank == 800


def test_sizes_are_variants_and_rank_by_their_largest_number() -> None:
    """One asset in three classes: one identity, three variants ranked 800 < 1280 < 2048."""
    found = [
        RULES.of(image_url("A1", cls, "s"))
        for cls in ("feedshare-shrink_800", "feedshare-shrink_1280", "feedshare-shrink_2048_1536")
    ]
    assert len({f.digest for f in found if f}) == 1
    assert [f.rank for f in found if f] == [800, 1280, 2048]


def test_document_pages_are_different_pictures() -> None:
    """feedshare-document-images: the segment after the class is the page, so pages 1 and 2
    are two identities, while one page's 480 and 1920 classes are variants of one."""
    page1 = RULES.of(image_url("DOC", "feedshare-document-images_800", "s", page=1))
    page2 = RULES.of(image_url("DOC", "feedshare-document-images_800", "s", page=2))
    page1_big = RULES.of(image_url("DOC", "feedshare-document-images_1920", "s", page=1))
    assert page1 and page2 and page1_big
    assert page1.digest != page2.digest and page1.digest == page1_big.digest
    assert page1.variant != page1_big.variant


def test_videos_progressive_renditions_and_thumbnails() -> None:
    """MP4 renditions are variants of one video, ranked by height; its thumbnail is another
    picture; an HLS playlist is no media and matches no rule."""
    low = RULES.of(VIDEO.format(asset="V1", cls="mp4-640p-30fp-crf28", e=1, sig="a"))
    high = RULES.of(VIDEO.format(asset="V1", cls="mp4-720p-30fp-crf28", e=1, sig="b"))
    thumb = RULES.of(VIDEO.format(asset="V1", cls="thumbnail-shrink_720_1280", e=1, sig="c"))
    assert low and high and thumb
    assert low.digest == high.digest != thumb.digest
    assert (low.rank, high.rank) == (640, 720)
    assert RULES.of(VIDEO.format(asset="V1", cls="hls-720p", e=1, sig="d")) is None


@pytest.mark.parametrize(
    ("e", "expected"),
    [(2147483647, None), (1767225600, datetime(2026, 1, 1, tzinfo=UTC)), ("soon", None)],
)
def test_expiry_is_read_from_e(e: object, expected: datetime | None) -> None:
    """e= is a Unix time; 2147483647 means never (no expiry); a non-number is none."""
    found = RULES.of(image_url("A", "feedshare-shrink_800", "s", e=e))  # type: ignore[arg-type]
    assert found is not None and found.expires_at == expected


def test_other_urls_have_no_identity() -> None:
    """Hosts no rule names, other paths, other schemes: no identity."""
    assert RULES.of("https://cdn.example/p/1.jpg") is None
    assert RULES.of("https://media.licdn.com/other/path.jpg") is None
    assert RULES.of("ftp://media.licdn.com/dms/image/v2/A/c/c/0/1") is None


def test_a_generic_rule_drops_the_parameters_it_names() -> None:
    """A user rule without a path: signatures, expiries and utm_* drop out, the rest stays."""
    rule = rule_from_mapping(
        {"name": "cdn", "hosts": ["*.cdn.example"], "drop": ["sig", "exp", "utm_*"]}, "test"
    )
    rules = Identities.with_user_rules([rule])
    a = rules.of("https://img.cdn.example/p/1.jpg?w=800&sig=1&exp=2&utm_source=x")
    b = rules.of("http://img.cdn.example:8080/p/1.jpg?sig=9&w=800")
    c = rules.of("https://img.cdn.example/p/1.jpg?w=1600&sig=1")
    assert a and b and c and a.digest == b.digest != c.digest


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"name": "BAD NAME", "hosts": "x"}, "'name'"),
        ({"name": "r", "hosts": []}, "'hosts'"),
        ({"name": "r", "hosts": "x", "path": "(unclosed"}, "bad path pattern"),
        ({"name": "r", "hosts": "x", "path": "^/(?P<a>x)$", "variant": "size"}, "'variant'"),
        ({"name": "r", "hosts": "x", "path": "^/x$", "rank": 3}, "'rank'"),
        ({"name": "r", "hosts": "x"}, "give 'path'"),
        ({"name": "r", "hosts": "x", "drop": ["s"], "colour": "red"}, "unknown key"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(spec: dict[str, object], says: str) -> None:
    """Each mistake is one InvalidInputError that names the rule (or its bad name)."""
    with pytest.raises(InvalidInputError, match=re.escape(says)):
        rule_from_mapping(spec, "mediastore.toml")


def test_a_bad_rule_in_the_settings_file_is_exit_2(tmp_path: Path) -> None:
    """The command refuses a store whose mediastore.toml has a bad rule: one line, exit 2."""
    root = tmp_path / "s"
    root.mkdir()
    (root / "mediastore.toml").write_text('[[rules]]\nname = "cdn"\nhosts = "x"\npath = "("\n')
    result = run_cli("--root", str(root), "stats")
    assert result.returncode == 2 and "identity rule 'cdn'" in error_line(result)


# --- on a CDN -------------------------------------------------------------------------------
@pytest.fixture
def cdn(http: HTTPServer) -> HTTPServer:
    """A LinkedIn-shaped CDN: each path (query ignored) answers its own JPEG."""

    def answer(request: Request) -> Response:
        seed = int(hashlib.md5(request.path.encode()).hexdigest()[:8], 16)
        return Response(t.noisy_jpeg((48, 32), seed=seed), content_type="image/jpeg")

    http.expect_request(re.compile(r"^/dms/image/.*")).respond_with_handler(answer)
    return http


@pytest.fixture
def licdn(make_store: Callable[..., MediaStore]) -> Callable[..., MediaStore]:
    """Stores whose downloads reach the loopback CDN under LinkedIn's host names."""

    def make(name: str = "s", **options: object) -> MediaStore:
        return make_store(name, resolver=lambda host, port: ["127.0.0.1"], **options)

    return make


def _on(cdn: HTTPServer, url: str) -> str:
    return url.replace("https://media.licdn.com", f"http://media.licdn.com:{cdn.port}")


def test_a_rescrape_with_rotated_signatures_sends_no_request(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """10 assets x 3 sizes fetched: 30 requests. The same URLs with new signatures: every
    lookup hits, fetch_many sends no request, and each new URL is recorded exactly."""
    store = licdn()
    classes = ("feedshare-shrink_800", "feedshare-shrink_1280", "feedshare-shrink_2048_1536")
    first = [_on(cdn, image_url(f"A{i}", c, f"old{i}")) for i in range(10) for c in classes]
    assert all(r.ok for r in store.fetch_many(first))
    assert len(cdn.log) == 30
    again = [
        _on(cdn, image_url(f"A{i}", c, f"new{i}", e=1800000000)) for i in range(10) for c in classes
    ]
    records = [store.get_by_url(url) for url in again[:5]]
    assert all(records) and len(cdn.log) == 30
    results = store.fetch_many(again)
    assert all(r.ok and r.from_cache for r in results) and len(cdn.log) == 30
    assert [r.record.md5 for r in results if r.record] == [
        r.record.md5 for r in store.fetch_many(first) if r.record
    ]
    assert store.stats().total_files == 30
    md5s = {url: r.record.md5 for url, r in zip(first, results, strict=True) if r.record}
    store.close()  # the URLs found by identity are written by now
    recorded = checker.url_map(checker.catalog_path(store.root))
    assert {url: recorded.get(url) for url in again} == {
        new: md5s[old] for new, old in zip(again, first, strict=True)
    }


def test_urls_found_by_identity_are_recorded_when_lookups_pause(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """Without a close, a rotated URL's row appears (plain sqlite3) soon after lookups
    pause; the store stays open and usable meanwhile."""
    store = licdn()
    md5 = store.fetch(_on(cdn, image_url("W1", "feedshare-shrink_800", "a"))).md5
    rotated = _on(cdn, image_url("W1", "feedshare-shrink_800", "b"))
    assert store.get_by_url(rotated) is not None
    deadline = time.monotonic() + 10
    while checker.url_map(checker.catalog_path(store.root)).get(rotated) is None:
        assert time.monotonic() < deadline, "the rotated URL was never recorded"
        time.sleep(0.05)
    assert checker.url_map(checker.catalog_path(store.root))[rotated] == md5
    assert len(cdn.log) == 1


def test_a_url_found_by_identity_never_overrides_what_happened_meanwhile(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """A rotated URL looked up (answered by identity) and then downloaded as other bytes
    before the writer runs keeps the download's content; a rotated URL of content removed
    before the writer runs is not recorded at all."""
    store = licdn()
    kept = _on(cdn, image_url("K1", "feedshare-shrink_800", "a"))
    gone = _on(cdn, image_url("K2", "feedshare-shrink_800", "a"))
    store.fetch(kept)
    gone_md5 = store.fetch(gone).md5
    rotated_kept = _on(cdn, image_url("K1", "feedshare-shrink_800", "b"))
    rotated_gone = _on(cdn, image_url("K2", "feedshare-shrink_800", "b"))
    assert store.get_by_url(rotated_kept) is not None
    assert store.get_by_url(rotated_gone) is not None
    other = store.add_bytes(t.noisy_jpeg(seed=99), url=rotated_kept)
    store.remove(gone_md5)
    store.close()
    recorded = checker.url_map(checker.catalog_path(store.root))
    assert recorded[rotated_kept] == other.md5
    assert rotated_gone not in recorded


def test_document_pages_are_each_downloaded(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """Pages 1 and 2 of one document are two requests and two files; page 1 again with a
    new signature is none."""
    store = licdn()
    cls = "feedshare-document-images_800"
    pages = [_on(cdn, image_url("DOC", cls, "s", page=p)) for p in (1, 2)]
    assert all(r.ok for r in store.fetch_many(pages)) and len(cdn.log) == 2
    assert store.stats().total_files == 2
    assert store.fetch(_on(cdn, image_url("DOC", cls, "rotated", page=1))).md5
    assert len(cdn.log) == 2


def test_a_user_rule_from_the_settings_file(
    cdn: HTTPServer, tmp_path: Path, make_store: Callable[..., MediaStore]
) -> None:
    """A rule in mediastore.toml (a path pattern with the asset and size as groups, the
    signature dropped) makes a rotated URL of another host a hit; what MediaStore reads
    from the file is what the command reads."""
    root = tmp_path / "u"
    root.mkdir()
    (root / "mediastore.toml").write_text(
        "[[rules]]\n"
        'name = "example-cdn"\n'
        'hosts = ["img.cdn.example"]\n'
        'path = "^/dms/image/(?P<asset>[^/]+)/(?P<size>[^/]+)/.*$"\n'
        'variant = "size"\n'
    )
    store = make_store("u", resolver=lambda host, port: ["127.0.0.1"])
    assert store.config.identity_rules[0].name == "example-cdn"
    url = f"http://img.cdn.example:{cdn.port}/dms/image/X1/w800/w800/0/1?sig=a"
    store.fetch(url)
    store.fetch(url.replace("sig=a", "sig=b"))
    assert len(cdn.log) == 1


@pytest.mark.slow
def test_rotated_signatures_on_postgresql(
    cdn: HTTPServer, licdn: Callable[..., MediaStore], pg_url: str
) -> None:
    """The same on a PostgreSQL catalog: the identity columns hold, read with plain SQL."""
    store = licdn(db_url=pg_url)
    url = _on(cdn, image_url("PG1", "feedshare-shrink_800", "a"))
    store.fetch(url)
    rotated = url.replace("t=a", "t=b")
    assert store.fetch(rotated).md5 and len(cdn.log) == 1
    store.close()  # the rotated URL, found by identity, is written by now
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT identity, variant FROM media_urls")).all()
    finally:
        engine.dispose()
    assert len(rows) == 2 and len({r for r in rows}) == 1 and rows[0][1] == "feedshare-shrink_800"


def test_an_upgrade_gives_existing_urls_their_identity(tmp_path: Path) -> None:
    """A catalog from before revision 0007 (its URLs without identity columns): `db upgrade`
    backfills the identity of every URL a built-in rule covers, and leaves the others NULL
    (read with plain sqlite3); a rotated URL is then a hit."""
    root = tmp_path / "s"
    url = image_url("OLD1", "feedshare-shrink_800", "a")
    with MediaStore(root) as store:
        md5 = store.add_bytes(t.noisy_jpeg(seed=3), url=url).md5
        store.add_bytes(t.noisy_jpeg(seed=4), url="https://cdn.example/x.jpg")
    db_url = f"sqlite:///{checker.catalog_path(root)}"
    alembic_command.downgrade(alembic_config(db_url), "0006")
    upgraded = run_cli("--root", str(root), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with closing(checker.connect(checker.catalog_path(root))) as db:
        rows = dict(db.execute("SELECT url, identity FROM media_urls").fetchall())
    expected = RULES.of(url)
    assert expected is not None
    assert rows == {url: expected.digest, "https://cdn.example/x.jpg": None}
    with MediaStore(root) as store:
        found = store.get_by_url(url.replace("t=a", "t=b"))
        assert found is not None and found.md5 == md5


def test_variants_of_an_asset_largest_first(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """Three sizes of one asset stored: variants() of any of its URLs (or of one file's MD5)
    lists the three, largest first; get_by_url(variant="any") of a URL of the smallest size,
    with a new signature, is the largest file, with no request; a URL no rule covers has no
    variants; a bad variant argument is InvalidInputError."""
    store = licdn()
    classes = ("feedshare-shrink_800", "feedshare-shrink_2048_1536", "feedshare-shrink_1280")
    urls = [_on(cdn, image_url("V1", c, "s")) for c in classes]
    records = [r.record for r in store.fetch_many(urls)]
    assert all(records) and len(cdn.log) == 3
    listed = store.variants(urls[0])
    assert [v.variant for v in listed] == [
        "feedshare-shrink_2048_1536",
        "feedshare-shrink_1280",
        "feedshare-shrink_800",
    ]
    assert [v.rank for v in listed] == [2048, 1280, 800]
    assert store.variants(records[0].md5) == listed  # type: ignore[union-attr]
    best = store.get_by_url(_on(cdn, image_url("V1", classes[0], "rotated")), variant="any")
    assert best is not None and best.md5 == records[1].md5  # type: ignore[union-attr]
    assert len(cdn.log) == 3
    assert store.variants("https://cdn.example/p/1.jpg") == []
    with pytest.raises(InvalidInputError, match="variant"):
        store.get_by_url(urls[0], variant="largest")


def test_the_rules_command_lists_the_users_rules_first(tmp_path: Path) -> None:
    """`mediastore rules --json`: the settings file's rule, then the built-in ones."""
    root = tmp_path / "s"
    root.mkdir()
    (root / "mediastore.toml").write_text(
        '[[rules]]\nname = "signed-host"\nhosts = "*.media.example"\ndrop = ["sig"]\n'
    )
    result = run_cli("--root", str(root), "rules", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(r["name"], r["source"]) for r in listed] == [
        ("signed-host", "settings"),
        ("linkedin-image", "built-in"),
        ("linkedin-video", "built-in"),
    ]
    assert listed[0]["drop"] == ["sig"] and listed[1]["expiry"] == "e"


def test_show_says_each_urls_identity_expiry_and_the_stored_variants(tmp_path: Path) -> None:
    """`show` of a file stored for two LinkedIn URLs of one size, beside another size: each URL
    with its identity and expiry (a date, or never for e=2147483647), and both variants."""
    root = tmp_path / "s"
    small, big = t.noisy_jpeg((40, 30), seed=1), t.noisy_jpeg((80, 60), seed=2)
    with MediaStore(root) as store:
        rec = store.add_bytes(small, url=image_url("S1", "feedshare-shrink_800", "a"))
        store.add_bytes(small, url=image_url("S1", "feedshare-shrink_800", "b", e=2147483647))
        store.add_bytes(big, url=image_url("S1", "feedshare-shrink_1280", "c"))
    shown = run_cli("--root", str(root), "show", rec.md5)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sum("variant feedshare-shrink_800; expires 2026-01-01" in line for line in lines) == 1
    assert sum("never expires" in line for line in lines) == 1
    variants = [line.split()[1] for line in lines if line.startswith("variant ")]
    assert variants == ["feedshare-shrink_1280", "feedshare-shrink_800"]


def test_repair_skips_an_expired_url_when_a_fresh_one_is_recorded(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """A file known by an expired URL (e= in the past) and a fresh one of the same asset:
    when the file is lost, verify --repair downloads it from the fresh URL only."""
    store = licdn()
    expired = _on(cdn, image_url("R1", "feedshare-shrink_800", "old", e=1600000000))
    fresh = _on(cdn, image_url("R1", "feedshare-shrink_800", "new", e=2147483647))
    rec = store.fetch(expired)
    assert store.get_by_url(fresh) is not None and len(cdn.log) == 1
    assert sorted(store.urls_for(rec.md5)) == sorted([expired, fresh])
    assert rec.path is not None
    rec.path.unlink()
    report = store.verify(repair=True)
    assert report.repaired == [rec.md5]
    asked = [request.query_string.decode() for request, _ in cdn.log]
    assert len(asked) == 2 and "t=new" in asked[1]


# --- variants="largest" ---------------------------------------------------------------------
SIZES = ("feedshare-shrink_800", "feedshare-shrink_2048_1536", "feedshare-shrink_1280")


def test_largest_fetches_one_size_per_asset_and_answers_the_others(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """3 assets x 3 sizes with variants="largest": 3 requests, each for the 2048 size; the
    other URLs' results carry its record and name it in variant_of; an exact lookup of a
    smaller size stays None (its bytes were never stored), variant="any" gives the largest."""
    store = licdn()
    urls = [_on(cdn, image_url(f"L{i}", c, "s")) for i in range(3) for c in SIZES]
    results = store.fetch_many(urls, variants="largest")
    assert [r.url for r in results] == urls and all(r.ok for r in results)
    assert sorted(cdn.log[i][0].path for i in range(len(cdn.log))) == sorted(
        f"/dms/image/v2/L{i}/{SIZES[1]}/{SIZES[1]}/0/1700000000000" for i in range(3)
    )
    by_url = {r.url: r for r in results}
    for i in range(3):
        small, top, middle = (_on(cdn, image_url(f"L{i}", c, "s")) for c in SIZES)
        assert by_url[top].variant_of is None
        for url in (small, middle):
            assert by_url[url].variant_of == top
            assert by_url[url].record == by_url[top].record
            assert store.get_by_url(url) is None
            best = store.get_by_url(url, variant="any")
            assert best is not None and best.md5 == by_url[top].record.md5  # type: ignore[union-attr]
    assert store.stats().total_files == 3


def test_largest_from_the_config_applies_to_iter_fetch_and_a_failure_answers_all(
    cdn: HTTPServer, licdn: Callable[..., MediaStore]
) -> None:
    """StoreConfig(variants="largest"): iter_fetch yields one result per input URL, the
    smaller sizes after the largest; when the largest size fails (404), its smaller sizes
    carry that failure; "each" (the argument) overrides the config."""
    store = licdn(variants="largest")
    cdn.expect_request(re.compile(r"^/dms/image/v2/GONE/.*")).respond_with_data(b"", 404)
    cdn.handlers.insert(0, cdn.handlers.pop())  # before the catch-all image handler
    gone = [_on(cdn, image_url("GONE", c, "s")) for c in SIZES]
    kept = [_on(cdn, image_url("KEPT", c, "s")) for c in SIZES]
    results = list(store.iter_fetch(gone + kept))
    assert sorted(r.url for r in results) == sorted(gone + kept)
    assert len(cdn.log) == 2
    for r in results:
        if r.url in gone:
            assert not r.ok and "404" in str(r.error)
            assert r.variant_of == (None if r.url == gone[1] else gone[1])
    order = [r.url for r in results]
    assert order.index(kept[1]) < order.index(kept[0]) and order.index(kept[1]) < order.index(
        kept[2]
    )
    store.fetch_many(kept, variants="each")
    assert len(cdn.log) == 4  # the two smaller sizes of KEPT, now each downloaded


def test_a_bad_variant_policy_is_refused_before_any_request(
    cdn: HTTPServer, licdn: Callable[..., MediaStore], tmp_path: Path
) -> None:
    """variants="biggest" as an argument or in the config: InvalidInputError naming the
    choices; no request sent."""
    store = licdn()
    with pytest.raises(InvalidInputError, match="each, largest"):
        store.fetch_many([_on(cdn, image_url("B1", SIZES[0], "s"))], variants="biggest")
    with pytest.raises(InvalidInputError, match="each, largest"):
        store.iter_fetch([], variants="biggest")
    with pytest.raises(InvalidInputError, match="variants must be one of each, largest"):
        MediaStore(tmp_path / "other", variants="biggest")
    assert len(cdn.log) == 0


def test_fetch_variants_largest_on_the_command_line(http: HTTPServer, tmp_path: Path) -> None:
    """A user rule in mediastore.toml (sizes as path segments on a loopback host) and
    `fetch --variants largest --json`: one request, the summary counts the two answered by
    the larger size; `variants = "largest"` in the file does the same; a bad value in the
    file or the flag is exit 2 naming it, with no request."""
    http.expect_request(re.compile(r"^/img/.*")).respond_with_handler(
        lambda request: Response(
            t.noisy_jpeg((40, 30), seed=len(request.path)), content_type="image/jpeg"
        )
    )
    root = tmp_path / "s"
    root.mkdir()
    rule = (
        '[[rules]]\nname = "sized"\nhosts = "127.0.0.1"\n'
        'path = "/img/(?P<asset>[a-z0-9]+)/(?P<size>[0-9]+)\\\\.jpg"\nvariant = "size"\n'
    )
    (root / "mediastore.toml").write_text(rule)
    urls = [http.url_for(f"/img/a1/{size}.jpg") for size in (100, 400, 200)]
    base = ("--root", str(root), "fetch", "--allow-private", "--json")
    done = run_cli(*base, "--variants", "largest", *urls)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["fetched"] == 1 and report["summary"]["answered_by_larger"] == 2
    assert [r["variant_of"] for r in report["results"]] == [urls[1], None, urls[1]]
    assert [request.path for request, _ in http.log] == ["/img/a1/400.jpg"]
    (root / "mediastore.toml").write_text('variants = "largest"\n' + rule)
    again = run_cli(*base, *(u.replace("a1", "b2") for u in urls))
    assert again.returncode == 0 and json.loads(again.stdout)["summary"]["fetched"] == 1
    (root / "mediastore.toml").write_text('variants = "biggest"\n' + rule)
    bad = run_cli(*base, urls[0])
    assert bad.returncode == 2 and "variants" in error_line(bad)
    flag = run_cli("--root", str(root), "fetch", "--variants", "huge", urls[0])
    assert flag.returncode == 2 and "huge" in flag.stderr
    assert len(http.log) == 2


def test_reidentify_gives_urls_recorded_before_a_rule_their_identity(tmp_path: Path) -> None:
    """URLs of a host no rule covered are stored; a rule for it is then added to
    mediastore.toml: `reidentify --json` gives each its identity (plain sqlite3), a URL with
    a rotated signature is then a hit, and a second run changes nothing."""
    root = tmp_path / "s"
    urls = [f"https://img.cdn.example/p/{i}.jpg?sig=a{i}" for i in range(5)]
    with MediaStore(root) as store:
        md5s = [store.add_bytes(t.noisy_jpeg(seed=i), url=u).md5 for i, u in enumerate(urls)]
    (root / "mediastore.toml").write_text(
        '[[rules]]\nname = "cdn"\nhosts = "*.cdn.example"\ndrop = ["sig"]\n'
    )
    with MediaStore(root) as store:
        assert store.get_by_url(urls[0].replace("sig=a0", "sig=b")) is None
    first = run_cli("--root", str(root), "reidentify", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"urls": 5, "changed": 5}
    with closing(checker.connect(checker.catalog_path(root))) as db:
        rows = db.execute("SELECT url, identity FROM media_urls ORDER BY id").fetchall()
    assert [u for u, _ in rows] == urls and all(identity for _, identity in rows)
    with MediaStore(root) as store:
        found = store.get_by_url(urls[3].replace("sig=a3", "sig=zz"))
        assert found is not None and found.md5 == md5s[3]
    again = run_cli("--root", str(root), "reidentify", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == {"urls": 6, "changed": 0}
