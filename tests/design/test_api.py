"""The declared API: ``mediastore.__all__`` holds everything a public method of the store takes,
returns or raises, and nothing of the legacy ``media_cache`` functions."""

from __future__ import annotations

import inspect
import typing

import mediastore
from mediastore import MediaStore, compat, errors


def _mediastore_types(annotation: object) -> set[type]:
    """Classes defined in mediastore that an annotation names, however nested."""
    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("mediastore"):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _mediastore_types(arg)
    return found


def test_every_type_a_public_method_takes_or_returns_is_exported() -> None:
    """Each class of mediastore named in a public MediaStore method's signature (arguments and
    return) is in mediastore.__all__."""
    named: dict[str, set[str]] = {}
    for name, method in inspect.getmembers(MediaStore, inspect.isfunction):
        if name.startswith("_") and name != "__init__":
            continue
        hints = typing.get_type_hints(method)
        for hint in hints.values():
            for cls in _mediastore_types(hint):
                named.setdefault(cls.__name__, set()).add(name)
    assert named, "no mediastore type found in the signatures: the check reads nothing"
    assert {"MediaRecord", "StoreStats", "MediaFilter", "ExportReport", "MoveReport"} <= set(named)
    missing = {cls: sorted(where) for cls, where in named.items() if cls not in mediastore.__all__}
    assert not missing, f"types in public signatures but not exported: {missing}"


def test_every_error_is_exported_and_derives_from_the_root() -> None:
    """Each exception class of mediastore.errors is exported and is a MediaStoreError."""
    classes = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    ]
    assert len(classes) > 20
    for cls in classes:
        assert issubclass(cls, mediastore.MediaStoreError), cls
        assert cls.__name__ in mediastore.__all__, cls
        assert getattr(mediastore, cls.__name__) is cls


def test_the_legacy_functions_are_importable_but_not_the_api() -> None:
    """The legacy functions are compat's API, importable from mediastore for old scripts, and
    none of them is in mediastore.__all__."""
    assert "download_and_cache_media" in compat.__all__
    for name in compat.__all__:
        assert getattr(mediastore, name) is getattr(compat, name), name
        assert name not in mediastore.__all__, name


def test_every_exported_name_exists() -> None:
    """``from mediastore import *`` works: every name of __all__ is defined."""
    for name in mediastore.__all__:
        assert hasattr(mediastore, name), name
