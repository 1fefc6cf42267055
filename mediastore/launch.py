"""The ``mediastore`` command's entry point (``python -m mediastore`` too).

The command's modules import SQLAlchemy, Pillow and requests, which takes a good part of a
second: a Ctrl-C in that time would end in a traceback. They are imported here under a guard,
so an interrupt at any moment ends the same way: one ``interrupted`` line and exit 130.
"""

from __future__ import annotations

import os
import sys

from .errors import EXIT_INTERRUPTED


def main() -> None:
    """Import the command, then run it."""
    try:
        from .cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        # Nothing is open yet, so nothing to clean up; a normal exit was seen to end in the
        # signal's own death now and then (exit -2 instead of 130).
        os._exit(EXIT_INTERRUPTED)
    command()
