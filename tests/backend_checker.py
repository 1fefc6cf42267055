"""An independent checker of a store on shared backends: a catalog read with plain SQL
(SQLAlchemy ``text``) and objects read with boto3. Like :mod:`checker`, it never imports
mediastore, so the store's own paths and hashing cannot hide a violation from it.

The layout it reads (docs/scaling-out.md)::

    media(md5, media_type, extension, size, status, ref_count, unreferenced_since)
    refs(ref, md5)
    s3://<bucket>/<prefix>/media/<media_type>s/<md5>.<ext>   one object per 'ok' row

Every function returns data or a list of violations; none asserts. A :class:`Backends` holds
only strings, so it crosses a fork or a pickle, and opens its connections when used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool


@dataclass
class Backends:
    """A catalog URL and a bucket prefix, with the keys to read the bucket."""

    db_url: str
    bucket: str
    prefix: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    _engine: Engine | None = field(default=None, repr=False, compare=False)
    _client: Any = field(default=None, repr=False, compare=False)

    def copy(self) -> Backends:
        """The same backends, with connections of its own (one per thread)."""
        return Backends(**{k: v for k, v in self.__dict__.items() if not k.startswith("_")})

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None, "_client": None}

    @property
    def blob_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.db_url, poolclass=NullPool)
        return self._engine

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
                config=Config(s3={"addressing_style": "path"}, read_timeout=60),
            )
        return self._client

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine().connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    # --- the catalog ----------------------------------------------------------------------
    def media_rows(self) -> dict[str, dict[str, Any]]:
        """Every row of ``media``, by md5."""
        cols = ("md5", "media_type", "extension", "size", "status", "ref_count")
        rows = self.query(f"SELECT {', '.join(cols)} FROM media")
        return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

    def ref_rows(self) -> list[tuple[str, str | None]]:
        """Every row of ``refs`` as (ref, md5)."""
        return [(r[0], r[1]) for r in self.query("SELECT ref, md5 FROM refs")]

    # --- the bucket -----------------------------------------------------------------------
    def key(self, row: dict[str, Any]) -> str:
        """Where a row's object belongs."""
        return f"{self.prefix}/media/{row['media_type']}s/{row['md5']}.{row['extension']}"

    def objects(self) -> set[str]:
        """Every key under the store's ``media/`` prefix."""
        keys: set[str] = set()
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/media/")
        )
        for page in pages:
            keys.update(o["Key"] for o in page.get("Contents", []))
        return keys

    def object_problem(self, row: dict[str, Any]) -> str | None:
        """Why the row's object is not its intact content (size and md5 of its bytes)."""
        client = self.client()
        try:
            body = client.get_object(Bucket=self.bucket, Key=self.key(row))["Body"].read()
        except client.exceptions.NoSuchKey:
            return "is missing"
        if len(body) != row["size"]:
            return f"has {len(body)} bytes, not {row['size']}"
        if (got := hashlib.md5(body).hexdigest()) != row["md5"]:
            return f"hashes to {got}"
        return None

    # --- invariants -----------------------------------------------------------------------
    def held_problem(self, ref: str, md5: str) -> list[str]:
        """Why the content a key holds is not stored intact, or nothing."""
        row = self.media_rows().get(md5)
        if row is None or row["status"] != "ok":
            return [f"{ref} holds {md5}, whose row is {row and row['status']!r}"]
        problem = self.object_problem(row)
        return [f"{ref} holds {md5}, whose object {problem}"] if problem else []

    def check_references(self) -> list[str]:
        """Every reference names an ``ok`` row whose object hashes right, and each row's
        ``ref_count`` is the number of references naming it."""
        rows = self.media_rows()
        held: dict[str, int] = {}
        violations: list[str] = []
        checked: dict[str, str | None] = {}
        for ref, md5 in self.ref_rows():
            if md5 is None:
                continue
            held[md5] = held.get(md5, 0) + 1
            row = rows.get(md5)
            if row is None or row["status"] != "ok":
                violations.append(f"{ref!r} -> {md5}: row is {row and row['status']!r}")
                continue
            if md5 not in checked:
                checked[md5] = self.object_problem(row)
            if checked[md5]:
                violations.append(f"{ref!r} -> {md5}: its object {checked[md5]}")
        for md5, row in rows.items():
            if row["ref_count"] != held.get(md5, 0):
                violations.append(
                    f"{md5}: ref_count {row['ref_count']}, {held.get(md5, 0)} reference rows"
                )
        return violations

    def check_ok_objects(self) -> list[str]:
        """Every ``ok`` row's object is in the bucket, intact."""
        return [
            f"{md5}: ok, but its object {problem}"
            for md5, row in self.media_rows().items()
            if row["status"] == "ok" and (problem := self.object_problem(row))
        ]

    def removed_with_object(self) -> list[str]:
        """Md5s whose row is ``removed`` while its object is still in the bucket."""
        keys = self.objects()
        return sorted(
            md5
            for md5, row in self.media_rows().items()
            if row["status"] == "removed" and self.key(row) in keys
        )

    def stray_objects(self) -> list[str]:
        """Objects that no ``ok`` row names."""
        live = {self.key(r) for r in self.media_rows().values() if r["status"] == "ok"}
        return sorted(self.objects() - live)
