"""Real servers for the scale-out backends' tests: a throwaway PostgreSQL, a one-host Ceph RGW.

Everything listens on 127.0.0.1 only, on free ports, with its data in a fresh temporary
directory that is removed when the server stops. Nothing here touches the network beyond
loopback.

- :func:`start_postgres` runs Debian's PostgreSQL server binaries (``initdb`` + ``postgres``)
  as user ``postgres`` when we are root (``pg_ctl``/``postgres`` refuse root), with
  ``--auth=trust``, the unix socket in the temp directory, and ``fsync=off``,
  ``synchronous_commit=off`` (tests only: never for benchmarks that compare durability).
  :meth:`PostgresServer.create_database` makes a fresh database in a few milliseconds.
- :func:`start_rgw` runs a Ceph cluster of one monitor, one ``memstore`` OSD (in RAM, capped)
  and one RADOS Gateway, as user ``ceph`` when we are root, without cephx (``auth ... = none``,
  ``ms_*_mode = crc``), and makes an S3 user with known keys through ``radosgw-admin``.
  :meth:`S3Server.create_bucket` makes a fresh bucket.

The daemons are direct children of this process, started in their own session (so a Ctrl-C
of pytest does not kill them before the finalizers run) with a parent-death signal (so a
SIGKILLed pytest leaves no cluster eating memory). :meth:`stop` ends them by PID (SIGTERM,
then SIGKILL after a grace period); an ``atexit`` hook stops whatever is still running.

Instead of starting servers, the tests can use running ones:

- ``MEDIASTORE_TEST_PG_URL``: a SQLAlchemy URL (``postgresql+psycopg://user@host:port/db``) of
  a role allowed to ``CREATE DATABASE``; each test gets a new database on that server, dropped
  after it.
- ``MEDIASTORE_TEST_S3_ENDPOINT``, ``MEDIASTORE_TEST_S3_ACCESS_KEY``,
  ``MEDIASTORE_TEST_S3_SECRET_KEY`` (and optionally ``MEDIASTORE_TEST_S3_REGION``, default
  ``us-east-1``): each test gets a new bucket there, emptied and deleted after it.

``MEDIASTORE_TEST_PG_BINDIR`` names another directory of PostgreSQL server binaries, and
``MEDIASTORE_TEST_SERVER_DIR`` where the servers' temp directories go (default: the system's).

When a server's binaries are missing, :class:`ServerUnavailable` is raised; the pytest fixtures
turn it into a skip on a user's machine and into a failure when ``CI`` is set (see
:func:`unavailable`). A server that is installed but fails to start raises
:class:`ServerStartError` with the tail of its log.

Run ``python tests/servers.py`` to start both, print how to reach them and how long they took
to start, and stop them on Enter.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

PG_VERSION = "15"
PG_INSTALL_HINT = "apt-get install postgresql"
CEPH_INSTALL_HINT = "apt-get install radosgw ceph-mon ceph-osd"
CEPH_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")

#: RAM cap of the memstore OSD (it keeps every object in memory, and RGW frees deleted
#: ones only at its next garbage collection). At 2 GiB the scale-out benchmark's 256 MiB
#: uploads filled it ("full status failsafe engaged") and RGW stopped answering.
MEMSTORE_BYTES = 6 * 1024**3
#: The S3 user made on a cluster we start (fixed keys: the cluster lives on 127.0.0.1 only).
RGW_ACCESS_KEY = "MEDIASTORETESTACCESS"
RGW_SECRET_KEY = "mediastore-test-secret-key-0000000000000"
DEFAULT_REGION = "us-east-1"

PG_START_TIMEOUT = 60.0
CEPH_START_TIMEOUT = 90.0  # below pytest-timeout (120 s), so our error with the log wins
STOP_GRACE = 15.0


class ServerUnavailable(Exception):
    """The server's binaries (or the user to run it as) are not on this machine."""


class ServerStartError(RuntimeError):
    """The server is installed but did not come up; the message carries its log's tail."""


def in_ci() -> bool:
    """True when the environment variable ``CI`` is set (to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it when running in CI (a missing backend there is
    a broken CI machine, never a reason to skip)."""
    import pytest

    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing test server is a failure, not a skip)")
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


_PR_SET_PDEATHSIG = 1
try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the child between fork and exec, after the setuid (which would clear it): the
    kernel sends SIGTERM to the server when its parent (pytest) dies. Looked up beforehand so
    that the child only makes one foreign call."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _service_user(name: str) -> str | None:
    """The user to run a server as: ``name`` when we are root (it must exist), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServerUnavailable(f"user {name!r} does not exist (needed to run as root)") from None
    return name


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _make_base(prefix: str, user: str | None) -> Path:
    """A new temp directory for one server's data, reachable by ``user`` (the system temp dir,
    or ``/tmp`` when that one is private to us, e.g. under ``/root``). Kept short: unix socket
    paths are limited to 107 bytes."""
    parent = Path(os.environ.get("MEDIASTORE_TEST_SERVER_DIR") or tempfile.gettempdir())
    if user is not None and not all(os.stat(p).st_mode & 0o001 for p in [parent, *parent.parents]):
        parent = Path("/tmp")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(no log at {path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


def _run(
    argv: Sequence[str], *, user: str | None = None, timeout: float = 60, what: str = ""
) -> str:
    """Run a setup command (as ``user`` if given); its stdout, or ServerStartError."""
    cmd = list(argv)
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        raise ServerStartError(f"{what or argv[0]}: timed out after {timeout:.0f} s: {cmd}") from e
    if done.returncode != 0:
        raise ServerStartError(
            f"{what or argv[0]} failed (exit {done.returncode}): {cmd}\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


@dataclass
class Daemon:
    """One server process, a direct child of ours, stopped by PID."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def spawn(cls, name: str, argv: Sequence[str], *, log: Path, user: str | None) -> Daemon:
        log.parent.mkdir(parents=True, exist_ok=True)
        out: IO[bytes]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                group=pwd.getpwnam(user).pw_gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                close_fds=True,
            )
        return cls(name, proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self, logs: Sequence[Path] = ()) -> None:
        code = self.proc.poll()
        if code is not None:
            tails = "\n".join(f"--- {p}:\n{_tail(p)}" for p in (self.log, *logs))
            raise ServerStartError(f"{self.name} (pid {self.pid}) exited with {code}\n{tails}")

    def stop(self, grace: float = STOP_GRACE, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)


_running: list[Any] = []


@atexit.register
def _stop_leftovers() -> None:
    for server in reversed(list(_running)):
        with contextlib.suppress(Exception):
            server.stop()


# --------------------------------------------------------------------------------------------
# PostgreSQL


def find_postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: ``MEDIASTORE_TEST_PG_BINDIR``, Debian's
    ``/usr/lib/postgresql/15/bin`` (else the newest version there), else ``PATH``."""
    candidates: list[Path] = []
    if env := os.environ.get("MEDIASTORE_TEST_PG_BINDIR"):
        candidates.append(Path(env))
    candidates.append(Path(f"/usr/lib/postgresql/{PG_VERSION}/bin"))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


def _db_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class PostgresServer:
    """A PostgreSQL server: one we started (``daemon`` set) or one named by an env var."""

    admin_url: str
    daemon: Daemon | None = None
    base: Path | None = None
    port: int | None = None
    startup_seconds: float = 0.0
    _engine: Any = field(default=None, repr=False)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(
                self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
            )
        return self._engine

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement on the admin database (autocommit); its rows, if any."""
        from sqlalchemy import text

        with self._admin().connect() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []

    def create_database(self, prefix: str = "mediastore_test") -> tuple[str, str]:
        """A new, empty database: ``(name, SQLAlchemy URL)``."""
        name = _db_name(prefix)
        self.execute(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still on it (PostgreSQL >= 13)."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self.daemon is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: no wait for clients, no checkpoint needed
            # with fsync off; SIGKILL after the grace period.
            self.daemon.stop(sig=signal.SIGINT)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        with contextlib.suppress(ValueError):
            _running.remove(self)


def start_postgres(bindir: Path | None = None) -> PostgresServer:
    """Start a throwaway cluster on 127.0.0.1 and a free port; stop it with ``.stop()``."""
    bindir = bindir or find_postgres_bindir()
    if bindir is None:
        raise ServerUnavailable(f"PostgreSQL server binaries not found: {PG_INSTALL_HINT}")
    user = _service_user("postgres")
    t0 = time.monotonic()
    base = _make_base("ms-pg-", user)
    server = PostgresServer(admin_url="", base=base)
    try:
        data, sock = base / "data", base / "sock"
        sock.mkdir()
        _chown_tree(base, user)
        os.chmod(base, 0o700)
        _run(
            [
                str(bindir / "initdb"), "-D", str(data), "--auth=trust", "--username=postgres",
                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ],
            user=user,
            what="initdb",
        )  # fmt: skip
        port = free_port()
        server.port = port
        settings = {
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sock),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        argv = [str(bindir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        server.daemon = Daemon.spawn("postgres", argv, log=base / "postgres.log", user=user)
        _running.append(server)
        server.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + PG_START_TIMEOUT
        while True:
            server.daemon.check_alive()
            done = subprocess.run(
                [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"postgres not ready after {PG_START_TIMEOUT:.0f} s on port {port}\n"
                    f"{_tail(server.daemon.log)}"
                )
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


def postgres_from_env() -> PostgresServer | None:
    """The server named by ``MEDIASTORE_TEST_PG_URL``, if set."""
    url = os.environ.get("MEDIASTORE_TEST_PG_URL", "").strip()
    return PostgresServer(admin_url=url) if url else None


def postgres_for_tests() -> PostgresServer:
    """``MEDIASTORE_TEST_PG_URL`` if set, else a cluster started here."""
    return postgres_from_env() or start_postgres()


# --------------------------------------------------------------------------------------------
# Ceph RADOS Gateway (S3)


def find_ceph_binaries() -> dict[str, str]:
    """Paths of the Ceph programs needed; ServerUnavailable naming the missing ones."""
    found = {name: shutil.which(name) for name in CEPH_BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ServerUnavailable(
            f"Ceph RADOS Gateway binaries not found ({', '.join(missing)}): {CEPH_INSTALL_HINT}"
        )
    return {name: path for name, path in found.items() if path is not None}


def _ceph_conf(base: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    return f"""\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind msgr2 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
keyring = {base}/keyring
run dir = {base}/run
admin socket = {base}/run/$cluster-$name.asok
log file = {base}/log/$cluster-$name.log
log to stderr = false
err to stderr = true
mon cluster log file = {base}/log/$cluster.log
crash dir = {base}/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = {base}/mon/$cluster-$id
mon allow pool delete = true

[osd]
osd data = {base}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {MEMSTORE_BYTES}
osd crush update on start = true

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {base}/rgw
rgw gc obj min wait = 0
rgw gc processor period = 10
rgw enable usage log = false
"""


@dataclass(frozen=True)
class S3Bucket:
    """One test's bucket: its name, how to reach it, and a boto3 client (path-style)."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    client: Any = field(repr=False, compare=False)

    @property
    def env(self) -> dict[str, str]:
        """The variables a boto3 user sets to reach this endpoint (for subprocesses)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


@dataclass
class S3Server:
    """An S3 endpoint: a Ceph cluster we started (``daemons`` set) or one named by env vars."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = DEFAULT_REGION
    daemons: list[Daemon] = field(default_factory=list)
    base: Path | None = None
    conf: Path | None = None
    startup_seconds: float = 0.0
    #: Seconds from the start to each step of the startup (``mon``, ``osd``, ``rgw``, ``user``).
    timings: dict[str, float] = field(default_factory=dict)

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    def bucket(self, prefix: str = "mediastore-test") -> S3Bucket:
        """A new, empty bucket with everything needed to reach it."""
        client = self.client()
        name = self.create_bucket(prefix, client=client)
        return S3Bucket(
            name=name,
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            client=client,
        )

    def create_bucket(self, prefix: str = "mediastore-test", *, client: Any = None) -> str:
        """A new, empty bucket; its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        (client or self.client()).create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Abort its multipart uploads, delete every object (and version), then the bucket."""
        s3 = self.client()
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
        s3.delete_bucket(Bucket=name)

    def ceph(self, *args: str) -> str:
        """Run the ``ceph`` CLI against the cluster we started (e.g. ``ceph("-s")``)."""
        if self.conf is None:
            raise RuntimeError("not a cluster started here")
        return _run(["ceph", "-c", str(self.conf), "--connect-timeout", "20", *args])

    def stop(self) -> None:
        for daemon in reversed(self.daemons):  # gateway, OSD, then monitor
            daemon.stop()
        self.daemons = []
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
        with contextlib.suppress(ValueError):
            _running.remove(self)


def _ceph_run(conf: Path, argv: Sequence[str], what: str, timeout: float = 60) -> str:
    return _run([argv[0], "-c", str(conf), *argv[1:]], timeout=timeout, what=what)


def start_rgw() -> S3Server:
    """Start mon + memstore OSD + radosgw on 127.0.0.1 and make an S3 user; ``.stop()`` ends it."""
    find_ceph_binaries()
    user = _service_user("ceph")
    t0 = time.monotonic()
    base = _make_base("ms-ceph-", user)
    mon_port, rgw_port = free_port(), free_port()
    while rgw_port == mon_port:
        rgw_port = free_port()
    server = S3Server(
        endpoint=f"http://127.0.0.1:{rgw_port}",
        access_key=RGW_ACCESS_KEY,
        secret_key=RGW_SECRET_KEY,
        base=base,
    )
    _running.append(server)
    try:
        fsid = str(uuid.uuid4())
        conf = base / "ceph.conf"
        server.conf = conf
        conf.write_text(_ceph_conf(base, fsid, mon_port, rgw_port))
        for sub in ("run", "log", "crash", "mon/ceph-a", "osd/ceph-0", "rgw"):
            (base / sub).mkdir(parents=True)
        (base / "keyring").touch()
        monmap = base / "monmap"
        _run(
            [
                "monmaptool", "--create", "--fsid", fsid,
                "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", str(monmap),
            ],
            what="monmaptool",
        )  # fmt: skip
        _chown_tree(base, user)
        os.chmod(base, 0o755)
        _run(
            ["ceph-mon", "-c", str(conf), "--mkfs", "-i", "a", "--monmap", str(monmap)],
            user=user,
            what="ceph-mon --mkfs",
        )
        logs = base / "log"
        mon = Daemon.spawn(
            "ceph-mon",
            ["ceph-mon", "-c", str(conf), "-f", "-i", "a"],
            log=logs / "mon.stdout",
            user=user,
        )
        server.daemons.append(mon)
        if not _wait_port(mon_port, 30):
            mon.check_alive([logs / "ceph-mon.a.log"])
            raise ServerStartError(f"ceph-mon not listening on {mon_port}")
        server.timings["mon"] = time.monotonic() - t0
        osd_uuid = str(uuid.uuid4())
        osd_id = server.ceph("osd", "new", osd_uuid).strip()
        (base / "osd" / f"ceph-{osd_id}").mkdir(parents=True, exist_ok=True)
        _chown_tree(base / "osd", user)
        _run(
            [
                "ceph-osd", "-c", str(conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid,
            ],
            user=user,
            what="ceph-osd --mkfs",
        )  # fmt: skip
        osd = Daemon.spawn(
            "ceph-osd",
            ["ceph-osd", "-c", str(conf), "-f", "-i", osd_id],
            log=logs / "osd.stdout",
            user=user,
        )
        server.daemons.append(osd)
        deadline = time.monotonic() + CEPH_START_TIMEOUT
        while json.loads(server.ceph("osd", "stat", "-f", "json")).get("num_up_osds", 0) < 1:
            osd.check_alive([logs / f"ceph-osd.{osd_id}.log"])
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"OSD not up after {CEPH_START_TIMEOUT:.0f} s\n"
                    f"{_tail(logs / f'ceph-osd.{osd_id}.log')}"
                )
            time.sleep(0.2)
        server.timings["osd"] = time.monotonic() - t0
        rgw = Daemon.spawn(
            "radosgw",
            ["radosgw", "-c", str(conf), "-f", "-n", "client.rgw.a"],
            log=logs / "rgw.stdout",
            user=user,
        )
        server.daemons.append(rgw)
        while not _rgw_answers(server.endpoint):
            rgw.check_alive([logs / "ceph-client.rgw.a.log"])
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"radosgw not answering on {server.endpoint} after "
                    f"{CEPH_START_TIMEOUT:.0f} s\n{_tail(logs / 'ceph-client.rgw.a.log')}"
                )
            time.sleep(0.2)
        server.timings["rgw"] = time.monotonic() - t0
        _ceph_run(
            conf,
            [
                "radosgw-admin", "user", "create", "--uid=mediastore-test",
                "--display-name=mediastore tests", f"--access-key={RGW_ACCESS_KEY}",
                f"--secret-key={RGW_SECRET_KEY}",
            ],
            what="radosgw-admin user create",
        )  # fmt: skip
        server.timings["user"] = time.monotonic() - t0
        _warm_up(server)
        server.timings["warm"] = time.monotonic() - t0
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


def _warm_up(server: S3Server) -> None:
    """Create and delete one bucket, so RGW makes its data and index pools now rather than in
    the first test (and so the user's keys are proven to work)."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        return  # the S3 tests need boto3 and will say so; the cluster itself is up
    try:
        server.delete_bucket(server.create_bucket("mediastore-warmup"))
    except Exception as e:
        rgw_log = server.base / "log" / "ceph-client.rgw.a.log" if server.base else None
        raise ServerStartError(
            f"radosgw is up but a first bucket failed: {e!r}\n{_tail(rgw_log) if rgw_log else ''}"
        ) from e


def _rgw_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=2) as resp:  # anonymous ListBuckets
            return bool(resp.status)
    except urllib.error.HTTPError:
        return True  # any S3 error document means the gateway is serving
    except (OSError, ValueError):
        return False


def s3_from_env() -> S3Server | None:
    """The endpoint named by ``MEDIASTORE_TEST_S3_ENDPOINT`` (+ keys), if set."""
    endpoint = os.environ.get("MEDIASTORE_TEST_S3_ENDPOINT", "").strip()
    if not endpoint:
        return None
    try:
        access = os.environ["MEDIASTORE_TEST_S3_ACCESS_KEY"]
        secret = os.environ["MEDIASTORE_TEST_S3_SECRET_KEY"]
    except KeyError as e:
        raise ServerStartError(
            f"MEDIASTORE_TEST_S3_ENDPOINT is set but {e.args[0]} is not"
        ) from None
    region = os.environ.get("MEDIASTORE_TEST_S3_REGION") or DEFAULT_REGION
    return S3Server(endpoint=endpoint, access_key=access, secret_key=secret, region=region)


def s3_for_tests() -> S3Server:
    """``MEDIASTORE_TEST_S3_ENDPOINT`` if set, else a Ceph cluster started here."""
    return s3_from_env() or start_rgw()


@contextlib.contextmanager
def serving(start: Any) -> Iterator[Any]:
    """``start()`` the server for a pytest fixture: skip (or, in CI, fail) when its binaries
    are missing; stop it afterwards."""
    try:
        server = start()
    except ServerUnavailable as e:
        unavailable(str(e))
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    with contextlib.ExitStack() as stack:
        pg = postgres_for_tests()
        stack.callback(pg.stop)
        print(f"PostgreSQL: {pg.admin_url}  (started in {pg.startup_seconds:.2f} s)")
        s3 = s3_for_tests()
        stack.callback(s3.stop)
        print(
            f"S3: {s3.endpoint} access={s3.access_key} secret={s3.secret_key} "
            f"(started in {s3.startup_seconds:.2f} s)"
        )
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input("Enter stops them. ")
