"""Settings a user sets once: ``<root>/mediastore.toml``, the environment, then flags.

The command and a store opened without a configuration (``MediaStore()``, the legacy
functions' default store) call :func:`load_settings`, which builds the
:class:`~mediastore.StoreConfig` (and the command's own ``workers``/``timeout``), so one
setting serves both. Each setting comes from, in order of precedence:

1. a command-line flag, or an argument given to ``MediaStore``;
2. an environment variable ``MEDIASTORE_<NAME>`` (e.g. ``MEDIASTORE_MAX_FILE_SIZE=100M``);
3. ``<root>/mediastore.toml`` (``max_file_size = "100M"``, ``workers = 8``...);
4. the default.

Relaxing the download address policy (``allow_private``) is never read from the file: the
file lives inside the store, which anyone who may write the store could edit, and it would
let them point downloads at the intranet. It comes only from ``--allow-private``,
``MEDIASTORE_ALLOW_PRIVATE=1`` or the library call; a file that sets it gets a warning, and
that key is ignored (the rest of the file still applies).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .config import DEFAULT_MAX_WORKERS, DEFAULT_TIMEOUT, StoreConfig, check_variants
from .errors import InvalidInputError
from .identity import Rule, rule_from_mapping
from .units import parse_duration, parse_size

SETTINGS_FILE = "mediastore.toml"
#: The settings file's array of URL identity rules (``[[rules]]``).
RULES = "rules"
ENV_PREFIX = "MEDIASTORE_"
#: Keys that may never come from the settings file (see the module docstring).
NOT_FROM_FILE = frozenset({"allow_private", "allow_private_networks"})


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidInputError(f"{what} must be a positive integer, got {value!r}")
    return number


def _positive_float(value: Any, what: str) -> float:
    try:
        number = float(value) if isinstance(value, str | int) else value
    except ValueError:
        number = None
    if isinstance(value, bool) or not isinstance(number, float) or not number > 0:
        raise InvalidInputError(f"{what} must be a positive number of seconds, got {value!r}")
    return number


def _seconds_or_zero(value: Any, what: str) -> float:
    try:
        number = float(value) if isinstance(value, str | int) else value
    except ValueError:
        number = None
    if isinstance(value, bool) or not isinstance(number, float) or not number >= 0:
        raise InvalidInputError(f"{what} must be a number of seconds (0: off), got {value!r}")
    return number


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"{what} must be a size like 100M, got {value!r}")
    size = parse_size(value, what=what)
    if size < 1:
        raise InvalidInputError(f"{what} must be at least 1 byte, got {value!r}")
    return size


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInputError(f"{what} must be 1/0, true/false, yes/no or on/off, got {value!r}")


def _grace(value: Any, what: str) -> float:
    """A grace period: seconds (a number, 0 or more) or a duration (``12h``, ``7d``, ``0``)."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                number = parse_duration(text).total_seconds()
            except InvalidInputError:
                number = None
    if number is None or not number >= 0 or number == float("inf"):
        raise InvalidInputError(
            f"{what} must be seconds (0 or more) or a duration like 12h or 7d, got {value!r}"
        )
    return number


#: name -> (parser, where it goes: a StoreConfig field or None for the CLI's own settings)
SETTINGS: dict[str, tuple[Callable[[Any, str], Any], str | None]] = {
    "max_file_size": (_size, "max_file_size"),
    "max_image_pixels": (_positive_int, "max_image_pixels"),
    "workers": (_positive_int, None),
    "per_host": (_positive_int, "per_host"),
    "timeout": (_positive_float, None),
    "busy_timeout": (_positive_float, "busy_timeout"),
    "failure_ttl": (_seconds_or_zero, "failure_ttl"),
    "variants": (check_variants, "variants"),
    "allow_private": (_flag, "allow_private_networks"),
    "collect_unreferenced": (_flag, "collect_unreferenced"),
    "gc_grace": (_grace, "gc_grace"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the CLI runs with, and where each value came from.

    Attributes:
        config: The store's configuration.
        workers: Download threads of ``fetch``.
        timeout: Per-read timeout of downloads, in seconds.
        sources: Setting name -> ``flag``, ``environment (NAME)``, the file's path, for each
            setting that is not at its default.
        warnings: Things the user should know (a settings-file key that was ignored).
    """

    config: StoreConfig
    workers: int = DEFAULT_MAX_WORKERS
    timeout: float = DEFAULT_TIMEOUT
    sources: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def check_db_url(db_url: str) -> str:
    """Refuse a catalog URL SQLAlchemy cannot parse (``--db garbage``), before anything opens.

    Raises:
        InvalidInputError: not a database URL.
    """
    try:
        make_url(db_url)
    except ArgumentError:
        raise InvalidInputError(
            f"--db {db_url!r} is not a database URL (e.g. sqlite:///path/catalog.sqlite3 or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    return db_url


def read_settings_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The settings of a TOML file (``{}`` if there is none), and warnings about it.

    Raises:
        InvalidInputError: unreadable, not TOML, or a key that is not a setting.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read settings file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"settings file {path} is not valid TOML: {exc}") from exc
    warnings = []
    for key in sorted(NOT_FROM_FILE & set(data)):
        warnings.append(
            f"{path}: {key} ignored: the address policy is relaxed only by --allow-private, "
            f"{ENV_PREFIX}ALLOW_PRIVATE=1 or the library call, never by a file in the store"
        )
        del data[key]
    unknown = sorted(set(data) - set(SETTINGS) - {RULES})
    if unknown:
        raise InvalidInputError(
            f"settings file {path}: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(set(SETTINGS) - NOT_FROM_FILE))}, [[{RULES}]])"
        )
    return data, warnings


def identity_rules(data: dict[str, Any], path: Path) -> tuple[Rule, ...]:
    """The ``[[rules]]`` of a settings file (see :mod:`mediastore.identity`).

    Raises:
        InvalidInputError: a rule that is not a table, or a bad rule (named).
    """
    found = data.get(RULES, [])
    if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
        raise InvalidInputError(f"settings file {path}: [[{RULES}]] must be tables")
    return tuple(rule_from_mapping(spec, str(path)) for spec in found)


def load_settings(
    root: Path,
    db_url: str | None,
    *,
    environ: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults, ``<root>/mediastore.toml``, ``MEDIASTORE_*`` and flags (``None``: not given).

    Args:
        root: The store root (its settings file is read if there is one; nothing is created).
        db_url: The catalog URL given (``--db``/``MEDIASTORE_DB_URL``), or None.
        environ: The environment (``os.environ``).
        flags: Setting name -> value from the command line; None values are ignored.

    Raises:
        InvalidInputError: a bad value (naming the setting and where it came from), an
            unknown key in the settings file, or a ``db_url`` that is not a database URL.
    """
    path = root / SETTINGS_FILE
    from_file, warnings = read_settings_file(path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (parse, _) in SETTINGS.items():
        env_name = ENV_PREFIX + name.upper()
        given = {} if flags is None else flags
        if given.get(name) is not None:
            raw, source = given[name], "flag"
        elif environ.get(env_name, "") != "":
            raw, source = environ[env_name], f"environment ({env_name})"
        elif name in from_file:
            raw, source = from_file[name], str(path)
        else:
            continue
        values[name] = parse(raw, f"{name} (from {source})")
        sources[name] = source
    overrides = {
        target: values[name]
        for name, (_, target) in SETTINGS.items()
        if target is not None and name in values
    }
    rules = identity_rules(from_file, path)
    config = StoreConfig(
        root=root,
        db_url=check_db_url(db_url) if db_url else None,
        identity_rules=rules,
        **overrides,
    )
    return Settings(
        config=config,
        workers=values.get("workers", DEFAULT_MAX_WORKERS),
        timeout=values.get("timeout", DEFAULT_TIMEOUT),
        sources=sources,
        warnings=tuple(warnings),
    )
