"""store moves: where a store's bytes are being copied to, and what is already there

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``mediastore migrate-store --to URL`` copies every stored file from the store's blob store
(a directory or ``s3://bucket/prefix``) to another, online and resumably:

- ``store_moves``: one row per move (``source`` and ``target`` blob URLs, as canonical
  strings); a store that opens on either end of an unfinished move reads from both and
  writes to the target;
- ``moved_blobs``: the md5s whose bytes were copied to the move's target and hashed back
  right there. A rerun skips them; the source copy of a file is deleted (when asked) only
  after its row here committed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_moves")),
    )
    op.create_table(
        "moved_blobs",
        sa.Column("move", sa.Integer(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("copied_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["move"],
            ["store_moves.id"],
            name=op.f("fk_moved_blobs_move_store_moves"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("move", "md5", name=op.f("pk_moved_blobs")),
    )


def downgrade() -> None:
    op.drop_table("moved_blobs")
    op.drop_table("store_moves")
