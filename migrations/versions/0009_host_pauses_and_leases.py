"""host pauses remembered, download leases, and a covering identity index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

A host that answered 429 or 503 with ``Retry-After`` asked every client to wait. Within a
run, downloads already wait it out; ``host_pauses`` keeps the time until which each such
host asked to be left alone, so that a new run (another process, the next cron job) does
not send it a request before then either.

``fetch_leases`` lets one process at a time download the bytes one asset's URLs name (two
importers meeting rotated URLs of one picture at once): the first takes a lease on the
asset's identity, the others wait for it to end and then find the file stored. A lease
ends when its download is recorded or failed, or at ``until`` (the database's clock, in
seconds) when its holder died.

The identity index gains ``md5``: a lookup of a rotated URL then finds its content from the
index alone, without reading the URL row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host_pauses",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_host_pauses")),
    )
    op.create_table(
        "fetch_leases",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fetch_leases")),
    )
    op.drop_index("ix_media_urls_identity", table_name="media_urls")
    op.create_index("ix_media_urls_identity", "media_urls", ["identity", "variant", "md5"])


def downgrade() -> None:
    op.drop_index("ix_media_urls_identity", table_name="media_urls")
    op.create_index("ix_media_urls_identity", "media_urls", ["identity", "variant"])
    op.drop_table("fetch_leases")
    op.drop_table("host_pauses")
