"""Shared fixtures: a real store in tmp_path, closed after each test."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from scripted import Handler, ScriptedServer

from mediastore import MediaStore
from mediastore.compat import set_default_store

#: Fixtures that start a test server, and fixture parameters that reach one at run time.
_SERVER_FIXTURES = {"pg_server", "s3_server"}
_SERVER_PARAMS = {"catalog_url": "postgresql", "backend_db": "postgresql", "blob_url": "s3"}
#: Slow tests of a module whose content is edited elsewhere (it runs mypy in a subprocess).
_SLOW_ELSEWHERE = {"tests/test_docs.py::test_downstream_project_type_checks"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by what a test needs: ``stress`` for tests/stress/, ``backends`` for tests
    that reach the PostgreSQL or RGW servers (through a fixture, or marked so by hand), and
    ``slow`` for both and for the few listed above (the others carry @pytest.mark.slow)."""
    stress = Path(__file__).parent / "stress"
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if item.path.is_relative_to(stress):
            item.add_marker(pytest.mark.stress)
        if _SERVER_FIXTURES & set(item.fixturenames) or any(
            params.get(name) == value for name, value in _SERVER_PARAMS.items()
        ):
            item.add_marker(pytest.mark.backends)
        slow = item.nodeid in _SLOW_ELSEWHERE or item.get_closest_marker("stress") is not None
        if slow or item.get_closest_marker("backends") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MediaStore]:
    """A fresh store with its SQLite catalog under tmp_path."""
    with MediaStore(tmp_path / "store") as s:
        yield s


@pytest.fixture(autouse=True)
def _no_default_store_leak() -> Iterator[None]:
    """The default store of the legacy ``media_cache`` functions never outlives a test."""
    yield
    set_default_store(None)


@pytest.fixture(scope="module")
def _module_http() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def http(_module_http: HTTPServer) -> Iterator[HTTPServer]:
    """A threaded pytest-httpserver bound to 127.0.0.1 only, with empty handlers and log."""
    _module_http.clear()
    yield _module_http
    _module_http.check_assertions()  # every request that arrived had a handler
    _module_http.check_handler_errors()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Starts scripted HTTP servers on loopback (scripted.py): ``scripted(handler, host=...)``
    for a misbehaving or instrumented peer that pytest-httpserver cannot play. After the test
    they are closed, and the test fails if a handler raised or a request had no route."""
    with contextlib.ExitStack() as stack:

        def start(handler: Handler | None = None, *, host: str = "127.0.0.1") -> ScriptedServer:
            return stack.enter_context(ScriptedServer(handler, host=host))

        yield start


@pytest.fixture
def make_store(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., MediaStore]]:
    """Builds stores under tmp_path that may reach loopback (fast retries); closes them all.

    A test module sets ``STORE_RETRIES`` to change the default number of retries.
    """
    opened: list[MediaStore] = []
    retries = getattr(request.module, "STORE_RETRIES", 2)

    def make(name: str = "s", **options: Any) -> MediaStore:
        options.setdefault("allow_private_networks", True)
        options.setdefault("retries", retries)
        options.setdefault("backoff_factor", 0.01)
        store = MediaStore(tmp_path / name, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def lstore(make_store: Callable[..., MediaStore]) -> MediaStore:
    """A store allowed to download from loopback."""
    return make_store()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory ``nobody`` can traverse (pytest's tmp_path base is mode 700): see nobody.py."""
    path = Path(tempfile.mkdtemp(prefix="mediastore-ro-"))
    path.chmod(0o755)
    yield path
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path)


# --- Real PostgreSQL and Ceph RGW (S3) servers for the scale-out backends --------------------
# Started once per session by tests/servers.py (or taken from MEDIASTORE_TEST_PG_URL /
# MEDIASTORE_TEST_S3_ENDPOINT + keys), only when a test asks for them. Missing binaries skip
# the test on a user's machine and fail it when CI is set.

import servers  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[servers.PostgresServer]:
    """A PostgreSQL server for the whole session (a throwaway cluster on 127.0.0.1)."""
    with servers.serving(servers.postgres_for_tests) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: servers.PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL (``postgresql+psycopg://``) of a new, empty database, dropped after."""
    name, url = pg_server.create_database()
    yield url
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh catalog URL on each database: SQLite under tmp_path, then a new PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[servers.S3Server]:
    """An S3 endpoint for the whole session (mon + memstore OSD + RADOS Gateway on 127.0.0.1)."""
    with servers.serving(servers.s3_for_tests) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: servers.S3Server) -> Iterator[servers.S3Bucket]:
    """A new, empty bucket (name, endpoint, keys, a path-style boto3 ``client``); emptied and
    deleted after the test, multipart uploads aborted."""
    bucket = s3_server.bucket()
    yield bucket
    s3_server.delete_bucket(bucket.name)


@pytest.fixture
def s3_env(
    s3_bucket: servers.S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> servers.S3Bucket:
    """A new bucket, and boto3's default chain pointed at its endpoint through the variables a
    boto3 user sets (no profile or config file of this machine is read)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in s3_bucket.env.items():
        monkeypatch.setenv(name, value)
    return s3_bucket


@pytest.fixture(params=["disk", "s3"])
def blob_url(request: pytest.FixtureRequest) -> str | None:
    """Where a store's bytes go: None (its root's ``media/``), then a prefix in a new bucket."""
    if request.param == "disk":
        return None
    bucket: servers.S3Bucket = request.getfixturevalue("s3_env")
    return f"s3://{bucket.name}/store"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """A store's catalog: None (SQLite under its root), then a new PostgreSQL database."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def backend_store(
    tmp_path: Path, backend_db: str | None, blob_url: str | None
) -> Iterator[MediaStore]:
    """A fresh store on each catalog (SQLite, PostgreSQL) and each blob store (disk, bucket)."""
    with MediaStore(tmp_path / "store", db_url=backend_db, blob_url=blob_url) as s:
        yield s
