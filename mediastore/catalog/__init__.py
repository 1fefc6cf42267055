"""The SQL catalog: tables (models), engine set-up, schema checks and the queries the store runs."""

from .queries import (
    Catalog,
    Exclusive,
    IntentLostError,
    MediaRow,
    MoveRow,
    NewMedia,
    PlacementNeeded,
    Recording,
    UrlInfo,
    check_same_content,
    url_md5,
)
from .schema import SCHEMA_UPGRADE_HINT, migrations_dir

__all__ = [
    "SCHEMA_UPGRADE_HINT",
    "Catalog",
    "Exclusive",
    "IntentLostError",
    "MediaRow",
    "MoveRow",
    "NewMedia",
    "PlacementNeeded",
    "Recording",
    "UrlInfo",
    "check_same_content",
    "migrations_dir",
    "url_md5",
]
