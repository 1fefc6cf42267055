"""mediastore.settings and the CLI's use of it: <root>/mediastore.toml, MEDIASTORE_*, flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mediastore import MediaStore, errors
from mediastore import testing as t
from mediastore.cli import main
from mediastore.settings import load_settings

CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None, "MEDIASTORE_MAX_FILE_SIZE": None,
             "MEDIASTORE_WORKERS": None, "MEDIASTORE_ALLOW_PRIVATE": None}  # fmt: skip


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    (tmp_path / "mediastore.toml").write_text(
        'max_file_size = "10M"\nworkers = 4\nper_host = 2\ntimeout = 5\n'
    )
    s = load_settings(tmp_path, None, environ={"MEDIASTORE_WORKERS": "8"}, flags={"per_host": 3})
    assert s.config.max_file_size == 10 << 20 and s.workers == 8 and s.config.per_host == 3
    assert s.timeout == 5.0
    assert s.sources["workers"] == "environment (MEDIASTORE_WORKERS)"
    assert s.sources["per_host"] == "flag" and s.sources["max_file_size"].endswith(".toml")
    defaults = load_settings(tmp_path / "none", None, environ={})
    assert defaults.workers == 16 and defaults.config.max_file_size == 1 << 30


def test_allow_private_never_from_the_file(tmp_path: Path) -> None:
    """A store's settings file that relaxes the address policy is ignored with a warning;
    the environment and the flag may relax it."""
    (tmp_path / "mediastore.toml").write_text("allow_private = true\nworkers = 2\n")
    s = load_settings(tmp_path, None, environ={})
    assert s.config.allow_private_networks is False and s.workers == 2
    assert any("allow_private ignored" in w for w in s.warnings)
    env = load_settings(tmp_path, None, environ={"MEDIASTORE_ALLOW_PRIVATE": "1"})
    assert env.config.allow_private_networks is True


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("workers = 0\n", {}, "workers"), ("bogus = 1\n", {}, "unknown setting"),
        ("max_file_size = [\n", {}, "not valid TOML"), ("", {"MEDIASTORE_WORKERS": "many"}, "many"),
        ("", {"MEDIASTORE_MAX_FILE_SIZE": "huge"}, "not a size"),
        ("", {"MEDIASTORE_ALLOW_PRIVATE": "perhaps"}, "perhaps"),
    ],
)  # fmt: skip
def test_bad_settings_are_invalid_input(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    (tmp_path / "mediastore.toml").write_text(text)
    with pytest.raises(errors.InvalidInputError, match=message):
        load_settings(tmp_path, None, environ=env)


def _cli(root: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(main, ["--root", str(root), *args])


def test_cli_max_file_size_from_each_source(tmp_path: Path) -> None:
    """The limit from the file refuses a big file (exit 3); the environment overrides the
    file, the flag overrides both."""
    root = tmp_path / "store"
    MediaStore(root).close()
    big = tmp_path / "big.jpg"
    big.write_bytes(t.noisy_jpeg(size=(400, 300), seed=4))
    assert big.stat().st_size > 2048
    (root / "mediastore.toml").write_text('max_file_size = "2K"\n')
    refused = _cli(root, "add", str(big))
    assert refused.exit_code == 3 and "maximum file size of 2048" in refused.stderr
    assert _cli(root, "add", str(big), env={"MEDIASTORE_MAX_FILE_SIZE": "1K"}).exit_code == 3
    ok = _cli(
        root, "--max-file-size", "10M", "add", str(big), env={"MEDIASTORE_MAX_FILE_SIZE": "1K"}
    )
    assert ok.exit_code == 0
    allowed = _cli(root, "add", str(big), env={"MEDIASTORE_MAX_FILE_SIZE": "1M"})
    assert allowed.exit_code == 0


def test_cli_warns_once_about_allow_private_in_the_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    MediaStore(root).close()
    (root / "mediastore.toml").write_text("allow_private = true\n")
    result = _cli(root, "stats", "--json")
    assert result.exit_code == 0
    assert result.stderr.count("allow_private ignored") == 1
    assert json.loads(result.stdout)["total_files"] == 0


def test_cli_bad_settings_file_is_one_line_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "store"
    MediaStore(root).close()
    (root / "mediastore.toml").write_text("workers = 'x\n")
    result = _cli(root, "stats")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: settings file") and len(result.stderr.splitlines()) == 1
