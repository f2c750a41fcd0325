"""The last-known-good file on its own: an atomic, owner-only copy that reads back exactly, and
a failed write that leaves the previous copy and no temporary file behind."""

from __future__ import annotations

import stat
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from hotreload._lkg import Cached, load, save

CACHED = Cached(
    source="/etc/app/config.yaml",
    content="model: gpt-4\napi_key: sk-1234\n",
    content_sha256="c" * 64,
    config_hash="h" * 64,
    generation=7,
    saved_at=datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc),
)


def test_a_saved_copy_reads_back_exactly_and_only_the_owner_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "deeper" / "lkg.json"  # missing directories are made
    save(str(path), CACHED)
    assert load(str(path)) == CACHED
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["lkg.json"]


def test_a_save_replaces_the_previous_copy(tmp_path: Path) -> None:
    path = tmp_path / "lkg.json"
    save(str(path), CACHED)
    newer = msgspec.structs.replace(CACHED, generation=8, content="model: gpt-5\n")
    save(str(path), newer)
    assert load(str(path)) == newer
    assert [p.name for p in tmp_path.iterdir()] == ["lkg.json"]


def test_a_failed_save_keeps_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "lkg.json"
    target.mkdir()  # os.replace of a file onto a directory fails
    with pytest.raises(IsADirectoryError):
        save(str(target), CACHED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lkg.json"]
    assert target.is_dir()


def test_a_damaged_or_missing_copy_raises(tmp_path: Path) -> None:
    path = tmp_path / "lkg.json"
    with pytest.raises(FileNotFoundError):
        load(str(path))
    path.write_bytes(b'{"source": "x"')
    with pytest.raises(msgspec.DecodeError):
        load(str(path))
    path.write_bytes(b'{"source": "x"}')
    with pytest.raises(msgspec.ValidationError):
        load(str(path))
