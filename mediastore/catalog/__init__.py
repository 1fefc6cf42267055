"""The SQL catalog: tables (models), engine set-up, schema checks and the queries the store runs.

- :mod:`.models`: the tables; :mod:`.engine`: engines and SQLite connections; :mod:`.schema`:
  the migrations and the check that a catalog is at their head;
- :mod:`.rows`: row types and URL keys; :mod:`.reads`: the fast read path; :mod:`.counters`:
  the stats counters; :mod:`.claims`: writers and their intents;
- :mod:`.queries`: :class:`Catalog`, every transaction the store runs.
"""

from .queries import Catalog, Exclusive, IntentLostError, PlacementNeeded, check_same_content
from .rows import MediaRow, MoveRow, NewMedia, Recording, UrlInfo, url_md5
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
