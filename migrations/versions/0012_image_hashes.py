"""image hashes: a pixel hash and a banded perceptual hash per stored image

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10

``image_hashes`` holds, per stored image (its first frame), the SHA-256 of its decoded
pixels and its 64-bit DCT perceptual hash, whole and cut into three bands of 22, 21 and 21
bits, each band an integer column indexed with the whole hash: "every image within Hamming
distance k" reads index point lookups (``mediastore/similarity.py`` proves none is
missed). A separate table keyed by md5, so ``media`` (which has triggers) is not recreated;
rows are written by ``mediastore index``, and go with their ``media`` row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS = ("band0", "band1", "band2")


def upgrade() -> None:
    op.create_table(
        "image_hashes",
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("pixel_hash", sa.String(length=64), nullable=True),
        sa.Column("phash", sa.BigInteger(), nullable=True),
        *(sa.Column(band, sa.Integer(), nullable=True) for band in BANDS),
        sa.Column("hashed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["md5"], ["media.md5"], name=op.f("fk_image_hashes_md5_media"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("md5", name=op.f("pk_image_hashes")),
    )
    op.create_index(op.f("ix_image_hashes_pixel_hash"), "image_hashes", ["pixel_hash"])
    for band in BANDS:
        # the band with the whole hash: a query's candidates come from the index alone
        op.create_index(op.f(f"ix_image_hashes_{band}"), "image_hashes", [band, "phash"])


def downgrade() -> None:
    for band in BANDS:
        op.drop_index(op.f(f"ix_image_hashes_{band}"), table_name="image_hashes")
    op.drop_index(op.f("ix_image_hashes_pixel_hash"), table_name="image_hashes")
    op.drop_table("image_hashes")
