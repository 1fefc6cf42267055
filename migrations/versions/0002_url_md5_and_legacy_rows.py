"""url_md5 and legacy rows in media_urls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

The legacy cache named files by the MD5 of their URL, so an imported legacy file knows only
that hash. media_urls gains ``url_md5`` (backfilled here for every existing row, unique) and
``source`` ('url' or 'legacy'); ``url`` becomes nullable for legacy rows whose URL has not been
looked up yet. Downgrading deletes those URL-less legacy rows (0001 cannot hold them); their
media rows and files stay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000


def _backfill_url_md5() -> None:
    """Set url_md5 = md5(url) for every existing row, in id order, a batch at a time."""
    conn = op.get_bind()
    select = sa.text("SELECT id, url FROM media_urls WHERE id > :last ORDER BY id LIMIT :n")
    update = sa.text("UPDATE media_urls SET url_md5 = :h WHERE id = :id")
    last = 0
    while rows := conn.execute(select, {"last": last, "n": _BATCH}).fetchall():
        conn.execute(
            update,
            [
                {"h": hashlib.md5(url.encode("utf-8"), usedforsecurity=False).hexdigest(), "id": i}
                for i, url in rows
            ],
        )
        last = rows[-1][0]


def upgrade() -> None:
    op.add_column("media_urls", sa.Column("url_md5", sa.String(length=32), nullable=True))
    op.add_column(
        "media_urls",
        sa.Column("source", sa.String(length=16), server_default="url", nullable=False),
    )
    _backfill_url_md5()
    with op.batch_alter_table("media_urls") as batch:
        batch.alter_column("url", existing_type=sa.Text(), nullable=True)
        batch.alter_column("url_md5", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint(op.f("uq_media_urls_url_md5"), ["url_md5"])
        batch.create_check_constraint(
            op.f("ck_media_urls_source_known"), "source IN ('url', 'legacy')"
        )
        batch.create_check_constraint(
            op.f("ck_media_urls_url_or_legacy"), "url IS NOT NULL OR source = 'legacy'"
        )


def downgrade() -> None:
    op.execute("DELETE FROM media_urls WHERE url IS NULL")
    with op.batch_alter_table("media_urls") as batch:
        batch.drop_constraint(op.f("ck_media_urls_url_or_legacy"), type_="check")
        batch.drop_constraint(op.f("ck_media_urls_source_known"), type_="check")
        batch.drop_constraint(op.f("uq_media_urls_url_md5"), type_="unique")
        batch.alter_column("url", existing_type=sa.Text(), nullable=False)
        batch.drop_column("source")
        batch.drop_column("url_md5")
