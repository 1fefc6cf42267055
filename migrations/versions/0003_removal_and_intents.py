"""removed state, writers and their intents

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

The blob lifecycle (``mediastore/lifecycle.py``, ``docs/lifecycle.md``) needs three things in
the catalog:

- ``media.status`` may be ``'removed'`` (with ``removed_at``): ``rm`` has forgotten the content
  and its URLs, and the file is deleted once no writer holds an intent on it; the row stays
  so that gc and reindex never adopt removed content back (the stats index gains ``status``);
- ``media.status`` may be ``'broken'``: the file hashes right but its content is damaged
  (``verify --deep``), so a repair stores a good copy as new content;
- ``writers``: one row per open writing store, kept alive by a heartbeat taken from the
  database's clock (``heartbeat``, seconds since the epoch), so that a crashed writer's
  intents can be told from a live one's without trusting any host's clock;
- ``intents``: "this writer may be about to place or rely on the file of this md5". Nothing
  deletes or moves a file while an intent on its md5 exists.

Existing rows keep their status; both new tables start empty. Downgrading turns removed rows
back into deletions (their URLs are already gone), as 0002 cannot hold that state.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "status IN ('ok', 'missing', 'corrupt')"
_NEW_STATUSES = "status IN ('ok', 'missing', 'corrupt', 'broken', 'removed')"


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_media_status_known"), type_="check")
        batch.create_check_constraint(op.f("ck_media_status_known"), _NEW_STATUSES)
    op.create_index(op.f("ix_media_status"), "media", ["status"])
    # stats() leaves removed content out and still reads one covering index
    op.drop_index("ix_media_type_size", table_name="media")
    op.create_index("ix_media_type_status_size", "media", ["media_type", "status", "size"])
    op.create_table(
        "writers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("heartbeat", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writers")),
    )
    op.create_index(op.f("ix_writers_heartbeat"), "writers", ["heartbeat"])
    op.create_table(
        "intents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("writer", sa.String(length=32), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["writer"],
            ["writers.id"],
            name=op.f("fk_intents_writer_writers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intents")),
    )
    op.create_index(op.f("ix_intents_md5"), "intents", ["md5"])
    op.create_index(op.f("ix_intents_writer"), "intents", ["writer"])


def downgrade() -> None:
    op.drop_index(op.f("ix_intents_writer"), table_name="intents")
    op.drop_index(op.f("ix_intents_md5"), table_name="intents")
    op.drop_table("intents")
    op.drop_index(op.f("ix_writers_heartbeat"), table_name="writers")
    op.drop_table("writers")
    op.execute(
        "DELETE FROM media_urls WHERE md5 IN (SELECT md5 FROM media WHERE status = 'removed')"
    )
    op.execute("DELETE FROM media WHERE status = 'removed'")
    op.execute("UPDATE media SET status = 'corrupt' WHERE status = 'broken'")
    op.drop_index("ix_media_type_status_size", table_name="media")
    op.create_index("ix_media_type_size", "media", ["media_type", "size"])
    op.drop_index(op.f("ix_media_status"), table_name="media")
    with op.batch_alter_table("media") as batch:
        batch.drop_constraint(op.f("ck_media_status_known"), type_="check")
        batch.create_check_constraint(op.f("ck_media_status_known"), _OLD_STATUSES)
        batch.drop_column("removed_at")
