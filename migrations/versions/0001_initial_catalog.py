"""initial catalog: media and media_urls

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Times are stored as naive UTC DATETIME (mediastore.catalog.models.UTCDateTime adds the zone).
Migrations spell out plain SQLAlchemy types so they never change when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=16), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("extension", sa.String(length=8), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_verified_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="ok", nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'missing', 'corrupt')", name=op.f("ck_media_status_known")
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_media_size_nonnegative")),
        sa.PrimaryKeyConstraint("md5", name=op.f("pk_media")),
    )
    op.create_index("ix_media_last_verified_at", "media", ["last_verified_at"])
    op.create_index("ix_media_type_size", "media", ["media_type", "size"])

    op.create_table(
        "media_urls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_fetched_at", sa.DateTime(), nullable=True),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["md5"], ["media.md5"], name=op.f("fk_media_urls_md5_media"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_urls")),
        sa.UniqueConstraint("url", name=op.f("uq_media_urls_url")),
    )
    op.create_index(op.f("ix_media_urls_md5"), "media_urls", ["md5"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_urls_md5"), table_name="media_urls")
    op.drop_table("media_urls")
    op.drop_index("ix_media_type_size", table_name="media")
    op.drop_index("ix_media_last_verified_at", table_name="media")
    op.drop_table("media")
