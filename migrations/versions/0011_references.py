"""references: a caller's keys on stored files, and when content lost its last one

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09

A *reference* is a caller's key (``post:123``) on a stored file, with an optional position
and role: ``refs`` holds one row per (key, file). A row taken on a URL whose download failed
names the URL and no file yet (``md5`` NULL, ``url_key`` set); the first time that URL is
stored, the recording transaction fills it in.

``media`` gains ``ref_count`` (reference rows naming it) and ``unreferenced_since``
(seconds by the database's clock since the count last fell to 0; NULL while referenced or
never referenced), both kept in the transaction that changes a reference. Collection of
unreferenced content (``gc --unreferenced``) reads ``unreferenced_since`` through its
index: the decision is a range read, not a walk of the references.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # no batch mode: recreating ``media`` would drop its triggers (see 0004); SQLite adds a
    # column with a constant default in place
    op.add_column("media", sa.Column("ref_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column("media", sa.Column("unreferenced_since", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_media_ref_count"), "media", ["ref_count", "status", "size"])
    op.create_index(
        op.f("ix_media_unreferenced_since"), "media", ["unreferenced_since", "status", "size"]
    )
    op.create_table(
        "refs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=512), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("url_key", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "md5 IS NOT NULL OR url_key IS NOT NULL", name=op.f("ck_refs_file_or_url")
        ),
        sa.ForeignKeyConstraint(
            ["md5"], ["media.md5"], name=op.f("fk_refs_md5_media"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refs")),
        sa.UniqueConstraint("ref", "md5", name=op.f("uq_refs_ref")),
    )
    op.create_index(op.f("ix_refs_md5"), "refs", ["md5"])
    op.create_index(op.f("ix_refs_url_key"), "refs", ["url_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refs_url_key"), table_name="refs")
    op.drop_index(op.f("ix_refs_md5"), table_name="refs")
    op.drop_table("refs")
    op.drop_index(op.f("ix_media_unreferenced_since"), table_name="media")
    op.drop_index(op.f("ix_media_ref_count"), table_name="media")
    op.drop_column("media", "unreferenced_since")
    op.drop_column("media", "ref_count")
