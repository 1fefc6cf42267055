"""The ``mediastore`` command: a thin click layer over :class:`~mediastore.MediaStore`.

Commands parse arguments, call the library, and render the result (a table, or JSON with
``--json``). Every error is one ``error: ...`` line on stderr (names and URLs escaped) and
the exit code of the rule in :mod:`mediastore.cli.common`.

Modules: ``common`` (settings, store, errors, exit codes, progress), ``settings`` (flags,
``MEDIASTORE_*`` and ``mediastore.toml``), ``adding`` (add, fetch), ``lookup`` (get, show,
ls, cat, export, stats), ``maintain`` (verify, import-legacy, reindex, backup, gc, rm,
migrate-store, db), ``similar`` (index, similar, dupes).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..config import DEFAULT_MAX_FILE_SIZE, DEFAULT_ROOT
from ..errors import EXIT_INTERRUPTED
from ..units import format_size
from ..version import __version__
from .adding import add, fetch
from .common import CliState, one_line
from .lookup import SIZE, cat, export, failures, get, ls, rules, show, stats
from .maintain import (
    backup,
    db,
    gc,
    import_legacy,
    migrate_store,
    probe,
    reidentify,
    reindex,
    rm,
    verify,
)
from .references import ref_group
from .serving import serve
from .similar import dupes, index, similar

EPILOG = """\b
Exit codes: 0 ok; 2 bad input; 3 unsupported content; 4 corrupt content; 5 not found;
6 storage failure; 7 catalog failure; 8 download failure; 1 when some items of several
failed (one item given: its own code); 130 interrupted (Ctrl-C).

\b
Settings: flags, then MEDIASTORE_* environment variables (MEDIASTORE_MAX_FILE_SIZE,
MEDIASTORE_MAX_IMAGE_PIXELS, MEDIASTORE_WORKERS, MEDIASTORE_PER_HOST, MEDIASTORE_TIMEOUT,
MEDIASTORE_BUSY_TIMEOUT, MEDIASTORE_FAILURE_TTL, MEDIASTORE_ALLOW_PRIVATE),
then <root>/mediastore.toml (never allow_private), then defaults.

\b
Shell completion (bash; zsh_source, fish_source for the others):
  eval "$(_MEDIASTORE_COMPLETE=bash_source mediastore)"
"""


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    """Drop log records about a Ctrl-C (SQLAlchemy logs one caught while returning a
    connection to its pool): the command reports the interruption in its own one line."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, KeyboardInterrupt)


class _OneLine(logging.Formatter):
    """A log record as the CLI's own lines: ``warning: ...`` (``info:``, ``debug:`` with -v)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {one_line(record.getMessage())}"


def _log_to_stderr(level: int) -> None:
    """Log records, and Python warnings, become ``warning:`` lines on stderr; Pillow's own
    warnings about a file it decodes never reach the user (the command reports the file)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    handler.addFilter(_not_an_interrupt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    logging.captureWarnings(True)


class _Interrupted(click.ClickException):
    """A Ctrl-C that no command reported itself: one ``interrupted`` line, exit 130 (click's
    own handling would print an empty line first)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted")

    def show(self, file: Any = None) -> None:
        click.echo("interrupted", err=True)


class MediastoreGroup(click.Group):
    """Usage errors as one ``error:`` line too, like every other error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "mediastore"
            click.echo(f"error: {one_line(exc.format_message())} (see `{where} --help`)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C outside a long command
                click.echo("interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=MediastoreGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ROOT,
    show_default=True,
    envvar="MEDIASTORE_ROOT",
    help="Store directory (env MEDIASTORE_ROOT).",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    envvar="MEDIASTORE_DB_URL",
    help="Catalog SQLAlchemy URL (env MEDIASTORE_DB_URL); default <root>/catalog.sqlite3.",
)
@click.option(
    "--blobs",
    "blob_url",
    default=None,
    envvar="MEDIASTORE_BLOB_URL",
    help="Where the bytes live: a directory or s3://bucket/prefix (env MEDIASTORE_BLOB_URL); "
    "default: the root (files under its media/).",
)
@click.option(
    "--max-file-size",
    type=SIZE,
    default=None,
    help=f"Largest file accepted [default: {format_size(DEFAULT_MAX_FILE_SIZE)}; env "
    "MEDIASTORE_MAX_FILE_SIZE].",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
@click.version_option(__version__, prog_name="mediastore")
@click.pass_context
def main(
    ctx: click.Context,
    root: Path,
    db_url: str | None,
    blob_url: str | None,
    max_file_size: int | None,
    verbose: int,
) -> None:
    """mediastore: content-addressed media files with a SQL catalog."""
    _log_to_stderr(logging.WARNING - 10 * min(verbose, 2))
    ctx.obj = CliState(
        root=root, db_url=db_url, blob_url=blob_url, flags={"max_file_size": max_file_size}
    )


for command in (
    add,
    fetch,
    get,
    show,
    ls,
    cat,
    export,
    stats,
    rules,
    failures,
    ref_group,
    verify,
    import_legacy,
    reindex,
    reidentify,
    probe,
    index,
    similar,
    dupes,
    backup,
    gc,
    rm,
    migrate_store,
    db,
    serve,
):
    main.add_command(command)

__all__ = ["main"]
