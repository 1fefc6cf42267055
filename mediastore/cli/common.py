"""What every command shares: settings, opening the store, one-line errors, exit codes.

Exit codes, one rule for every command: success 0; one item given (a file, URL or MD5) that
failed, that error's own code (2 bad input, 3 unsupported, 4 corrupt, 5 not found, 6
storage, 7 catalog, 8 download); several items with some failing, 1; Ctrl-C, 130.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..errors import EXIT_INTERRUPTED, MediaStoreError
from ..settings import Settings, load_settings
from ..store import MediaStore

F = TypeVar("F", bound=Callable[..., Any])

#: The largest --limit: more rows than any catalog holds (a SQL integer is 64 bits).
MAX_LIMIT = 1 << 62
#: Exit status of a batch in which some items failed.
EXIT_SOME_FAILED = 1


def one_line(text: object) -> str:
    """``text`` with newlines, escapes and other unprintable characters escaped (``\\n``,
    ``\\x1b``, ``\\u202e``), so that a file name or URL never breaks or forges a line."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in str(text)
    )


def echo_error(message: object) -> None:
    """``error: ...`` on stderr, one line (above any progress bar)."""
    tqdm.write(f"error: {one_line(message)}", file=sys.stderr)


def echo_warning(message: object) -> None:
    tqdm.write(f"warning: {one_line(message)}", file=sys.stderr)


class CommandError(click.ClickException):
    """A library error shown as one ``error:`` line, exiting with the error's own code."""

    def __init__(self, exc: MediaStoreError) -> None:
        super().__init__(str(exc))
        self.exit_code = exc.exit_code  # type: ignore[misc]  # per instance, by design

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {one_line(self.format_message())}", err=True)


def fail(exc: MediaStoreError) -> NoReturn:
    raise CommandError(exc) from exc


def errors(func: F) -> F:
    """Library errors raised by a command become :class:`CommandError`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MediaStoreError as exc:
            raise CommandError(exc) from exc

    return wrapper  # type: ignore[return-value]


@dataclass
class CliState:
    """The global options, until a command asks for its settings."""

    root: Path
    db_url: str | None
    blob_url: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    warned: bool = False

    def settings(self, **flags: Any) -> Settings:
        """Defaults < ``<root>/mediastore.toml`` < ``MEDIASTORE_*`` < flags (see settings.py)."""
        loaded = load_settings(
            self.root, self.db_url, environ=os.environ, flags={**self.flags, **flags}
        )
        if not self.warned:
            for warning in loaded.warnings:
                echo_warning(warning)
            self.warned = True
        return loaded


def state(ctx: click.Context) -> CliState:
    found = ctx.find_object(CliState)
    assert found is not None, "the mediastore group sets it"
    return found


@contextmanager
def open_store(
    ctx: click.Context, *, create: bool = False, settings: Settings | None = None
) -> Iterator[MediaStore]:
    """The store of ``--root``/``--db``; only commands that add content create one."""
    cfg = (settings or state(ctx).settings()).config
    with MediaStore(config=cfg, create=create, blob_url=state(ctx).blob_url) as store:
        yield store


def with_private(settings: Settings, allow_private: bool) -> Settings:
    """``--allow-private`` given: the address policy is relaxed (never from the file)."""
    if not allow_private:
        return settings
    return replace(settings, config=replace(settings.config, allow_private_networks=True))


class Tally:
    """Items of a command and their failures: the exit code by the rule above.

    ``single`` says the user named exactly one item (a file, not a directory; one URL, not
    a list file): only then does a failure exit with its own code.
    """

    def __init__(self, *, single: bool = True) -> None:
        self.single = single
        self.items = 0
        self.codes: list[int] = []

    def ok(self) -> None:
        self.items += 1

    def failed(self, code: int) -> None:
        self.items += 1
        self.codes.append(code)

    @property
    def exit_code(self) -> int:
        if not self.codes:
            return 0
        return self.codes[0] if self.single and self.items == 1 else EXIT_SOME_FAILED

    def exit(self, ctx: click.Context) -> None:
        if self.exit_code:
            ctx.exit(self.exit_code)


def error_code(exc: BaseException | None) -> int:
    return exc.exit_code if isinstance(exc, MediaStoreError) else EXIT_SOME_FAILED


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@contextmanager
def interruptible(ctx: click.Context, how_far: Callable[[], str]) -> Iterator[None]:
    """A Ctrl-C ends the command with one stderr line saying how far it got, and exit 130.

    Wrap the whole ``with MediaStore(...)`` block: by the time the line is printed, the
    blocks inside have unwound (downloads cancelled, temp files discarded, store closed).
    """
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"interrupted: {how_far()}", err=True)
        ctx.exit(EXIT_INTERRUPTED)


class HowFar:
    """The last (done, total) a progress callback saw, for the line printed on Ctrl-C."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.done = 0
        self.total: int | None = None

    def track(self, progress: Callable[[int, int], None]) -> Callable[[int, int], None]:
        def tracked(done: int, total: int) -> None:
            self.done, self.total = done, total
            progress(done, total)

        return tracked

    def __call__(self) -> str:
        total = "?" if self.total is None else str(self.total)
        return f"{self.done} of {total} {self.unit}(s) done"


@contextmanager
def progress_bar(total: int | None, unit: str, desc: str) -> Iterator[tqdm[Any]]:
    """One bar on stderr, hidden when stderr is not a terminal; log lines don't break it."""
    with (
        logging_redirect_tqdm(),
        tqdm(total=total, unit=unit, desc=desc, disable=None, file=sys.stderr, leave=False) as bar,
    ):
        yield bar


@contextmanager
def bar_progress(
    desc: str, unit: str, total: int | None = None
) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total) drawing one bar on stderr."""
    with progress_bar(total, unit, desc) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


class Parsed(click.ParamType):  # type: ignore[type-arg]
    """A value read by one of :mod:`mediastore.units`' parsers (a bad one: a usage error)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # a default, or a value converted already
            return value
        try:
            return self.parse(value)
        except MediaStoreError as exc:
            self.fail(str(exc), param, ctx)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
