"""mediastore's version: the one place it is written (``pyproject.toml`` reads it from here).

A constant rather than a lookup in the installed metadata: ``importlib.metadata`` costs tens
of milliseconds, and the package is imported first thing by the command.
"""

__version__ = "0.1.0"
