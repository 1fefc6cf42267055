"""store identity: the catalog's id, and where its bytes live

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

``store_info`` holds named values of the store as a whole:

- ``store_id``: made once, here; the same id is written as a marker into the blob store
  that holds the catalog's files (``mediastore-store.json`` beside its ``media/``, on disk
  or under an S3 prefix). A store whose blob location holds no marker, or another id,
  while the catalog has rows, refuses to verify, gc, reindex or repair anything, so a
  second root on a shared catalog cannot mark its rows missing;
- ``blob_url``: the canonical URL of that blob store, for the message that says so.

An existing catalog gets its id here, and its marker the first time a writable store opens
on the blob location that holds its files.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    info = op.create_table(
        "store_info",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_info")),
    )
    op.bulk_insert(info, [{"name": "store_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_info")
