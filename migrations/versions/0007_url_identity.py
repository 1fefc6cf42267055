"""URL identity: each URL's identity, variant, rank and expiry, indexed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

A social-media CDN hands out one asset under URLs that change (rotating signatures, one
picture in several sizes). ``media_urls`` gains what an identity rule derives from a URL
(``mediastore/identity.py``): ``identity`` (the SHA-256 of the identity), ``variant``,
``variant_rank`` and ``expires_at``, with an index on (identity, variant), so that a URL never
seen before is answered by a stored URL of the same asset and size.

Existing URLs are given their identity here by the built-in rules, a page of rows at a time
(a rerun of an interrupted upgrade finds the rows still without one). Rows of hosts that only
a user's rule covers get theirs when their URL is recorded again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mediastore.identity import Identities

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: URL rows read and updated per round of the backfill.
PAGE = 5000


def upgrade() -> None:
    # plain ADD COLUMN (no table rebuild): media_urls keeps its counter triggers
    op.add_column("media_urls", sa.Column("identity", sa.String(length=64), nullable=True))
    op.add_column("media_urls", sa.Column("variant", sa.Text(), nullable=True))
    op.add_column("media_urls", sa.Column("variant_rank", sa.Integer(), nullable=True))
    op.add_column("media_urls", sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.create_index("ix_media_urls_identity", "media_urls", ["identity", "variant"])
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    urls = sa.table(
        "media_urls",
        sa.column("id", sa.Integer),
        sa.column("url", sa.Text),
        sa.column("identity", sa.String),
        sa.column("variant", sa.Text),
        sa.column("variant_rank", sa.Integer),
        sa.column("expires_at", sa.DateTime),
    )
    rules = Identities()
    last = 0
    while True:
        page = conn.execute(
            sa.select(urls.c.id, urls.c.url)
            .where(urls.c.id > last, urls.c.url.is_not(None))
            .order_by(urls.c.id)
            .limit(PAGE)
        ).all()
        if not page:
            return
        last = page[-1].id
        found = [(row.id, rules.of(row.url)) for row in page]
        updates = [
            {
                "b_id": row_id,
                "identity": ident.digest,
                "variant": ident.variant,
                "variant_rank": ident.rank,
                "expires_at": ident.expires_at.replace(tzinfo=None) if ident.expires_at else None,
            }
            for row_id, ident in found
            if ident is not None
        ]
        if updates:
            conn.execute(
                urls.update().where(urls.c.id == sa.bindparam("b_id")),
                updates,
            )


def downgrade() -> None:
    op.drop_index("ix_media_urls_identity", table_name="media_urls")
    # plain DROP COLUMN (SQLite 3.35+), no rebuild that would drop the counter triggers
    for column in ("expires_at", "variant_rank", "variant", "identity"):
        op.drop_column("media_urls", column)
