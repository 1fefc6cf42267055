"""media metadata: what each file says about its content, read in the ingest pass

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

The structure walk that checks a file at ingest also reads what it declares: a video's
duration, frames, rate, codecs, audio, rotation and displayed size, an animation's frames
and duration, an image's EXIF orientation and capture time, a PDF's pages, version and
encryption. ``media`` gains a nullable column for each, and ``metadata_read_at``: when
the file's metadata was read (NULL for rows stored before this revision, which
``mediastore probe`` visits). ``width``/``height`` of a video are filled from its video
track from now on (NULL before). ``ls`` filters on ``duration`` and ``animated``: both are
indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("duration", sa.Float()),
    ("frames", sa.Integer()),
    ("frame_rate", sa.Float()),
    ("animated", sa.Boolean()),
    ("rotation", sa.SmallInteger()),
    ("display_width", sa.Integer()),
    ("display_height", sa.Integer()),
    ("pixel_aspect", sa.String(length=16)),
    ("orientation", sa.SmallInteger()),
    ("video_codec", sa.String(length=32)),
    ("audio_codec", sa.String(length=32)),
    ("has_audio", sa.Boolean()),
    ("bit_rate", sa.BigInteger()),
    ("creation_time", sa.DateTime()),
    ("capture_time", sa.String(length=32)),
    ("pages", sa.Integer()),
    ("pdf_version", sa.String(length=8)),
    ("encrypted", sa.Boolean()),
    ("metadata_read_at", sa.DateTime()),
)


def upgrade() -> None:
    # no batch mode: recreating ``media`` would drop its triggers (see 0004); SQLite adds
    # and drops a plain nullable column in place
    for name, type_ in COLUMNS:
        op.add_column("media", sa.Column(name, type_, nullable=True))
    op.create_index(op.f("ix_media_duration"), "media", ["duration"])
    op.create_index(op.f("ix_media_animated"), "media", ["animated"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_animated"), table_name="media")
    op.drop_index(op.f("ix_media_duration"), table_name="media")
    for name, _ in reversed(COLUMNS):
        op.drop_column("media", name)
