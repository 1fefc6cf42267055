"""One configuration: MediaStore() without arguments and the legacy functions' default store
read the same MEDIASTORE_* variables and <root>/mediastore.toml as the command; arguments win."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import run_cli

from mediastore import FileTooLargeError, MediaStore, compat
from mediastore import testing as t


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MEDIASTORE_ROOT names a store whose mediastore.toml caps files at 1K; the working
    directory is elsewhere (and empty)."""
    root = tmp_path / "store"
    root.mkdir()
    (root / "mediastore.toml").write_text('max_file_size = "1K"\n')
    for name in ("MEDIASTORE_DB_URL", "MEDIASTORE_BLOB_URL", "MEDIASTORE_MAX_FILE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDIASTORE_ROOT", str(root))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return root


def test_a_store_without_arguments_reads_the_commands_settings(configured: Path) -> None:
    """MediaStore() opens MEDIASTORE_ROOT and applies its mediastore.toml (a 2 KB file is
    refused as the command refuses it); nothing is made in the working directory."""
    big = t.noisy_jpeg((64, 64), seed=9)
    assert len(big) > 1024
    with MediaStore() as store:
        assert store.root == configured.resolve()
        assert store.config.max_file_size == 1024
        with pytest.raises(FileTooLargeError):
            store.add_bytes(big)
    assert list(Path.cwd().iterdir()) == []
    (configured / "big.jpg").write_bytes(big)
    command = run_cli("add", str(configured / "big.jpg"), env={"MEDIASTORE_ROOT": str(configured)})
    assert command.returncode == 3


def test_arguments_win_over_settings(configured: Path) -> None:
    """An explicit max_file_size beats the file's; an explicit root is used as given."""
    with MediaStore(max_file_size=1 << 20) as store:
        assert store.root == configured.resolve() and store.config.max_file_size == 1 << 20
        store.add_bytes(t.noisy_jpeg((64, 64), seed=9))
    with MediaStore(configured.parent / "other") as other:
        assert other.root == (configured.parent / "other").resolve()


def test_the_legacy_default_store_is_the_configured_one(configured: Path) -> None:
    """get_cache_stats() counts the files of MEDIASTORE_ROOT's store, and creates no ./cache."""
    with MediaStore(max_file_size=1 << 20) as store:
        store.add_bytes(t.image_bytes("PNG", color="navy"))
    assert compat.get_cache_stats()["total_files"] == 1
    assert compat.default_store().root == configured.resolve()
    assert list(Path.cwd().iterdir()) == []
