"""failures remembered: a URL's last permanent download failure

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

A URL that answered 404 or 410, or served refused or corrupt content, fails the same way on
the next run: ``url_failures`` keeps its last such failure (the error's class, the HTTP
status, the reason and when), so that within the store's ``failure_ttl`` a fetch of it fails
from memory with no request. A success, or ``refresh=True``, asks again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "url_failures",
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("error", sa.String(length=40), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("url_key", name=op.f("pk_url_failures")),
    )


def downgrade() -> None:
    op.drop_table("url_failures")
