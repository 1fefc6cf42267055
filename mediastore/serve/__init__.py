"""Serving a store over HTTP: files, thumbnails, a JSON API and a web gallery.

Needs the ``serve`` extra (``pip install 'mediastore[serve]'``: aiohttp). :func:`make_app`
returns the application, to mount in a server of one's own; :func:`run` serves it with the
limits ``mediastore serve`` uses (:class:`Limits`).
"""

from __future__ import annotations

from .app import make_app
from .server import Limits, is_loopback, run

__all__ = ["Limits", "is_loopback", "make_app", "run"]
