"""The installed version of mediastore."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mediastore")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
