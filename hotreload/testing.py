"""Helpers for testing services that use hotreload: the update styles a config file meets.

Each writes the way a real tool does, so a test exercises the same file-system events:

* `write_in_place`: open, truncate, write (``echo > file``, most scripts);
* `write_atomic`: write a temp file in the same directory, then rename it over the file
  (editors, ``kubectl cp``-style deploy tools, config management);
* `ConfigMapVolume`: kubelet's update of a mounted ConfigMap, step for step as its
  ``AtomicWriter`` does it: a new ``..<timestamp>`` directory, a ``..data_tmp`` symlink to it
  renamed over ``..data``, then the old directory removed. ``config.yaml`` is a symlink to
  ``..data/config.yaml`` and is itself never touched.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ConfigMapVolume", "write_atomic", "write_in_place"]


def write_in_place(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Truncate and rewrite ``path`` in place, then flush it to the OS."""
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as f:
        f.write(data)
        f.flush()


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write a sibling temp file and rename it over ``path`` (readers see old or new, whole)."""
    data = text.encode() if isinstance(text, str) else text
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ConfigMapVolume:
    """A directory laid out and updated exactly like a kubelet-mounted ConfigMap volume."""

    _serial = itertools.count(1)

    def __init__(self, directory: str | os.PathLike[str], files: Mapping[str, str | bytes]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._current: Path | None = None
        self.update(files)

    def path(self, name: str) -> Path:
        """The user-visible path of a key (a symlink through ``..data``)."""
        return self.directory / name

    def update(self, files: Mapping[str, str | bytes]) -> None:
        """Publish a new version of every key, as one atomic ``..data`` swap."""
        stamp = self.directory / f"..2026_11_24_00_00_00.{next(self._serial):09d}"
        stamp.mkdir()
        for name, text in files.items():
            data = text.encode() if isinstance(text, str) else text
            (stamp / name).write_bytes(data)
        tmp_link = self.directory / "..data_tmp"
        os.symlink(stamp.name, tmp_link)
        os.replace(tmp_link, self.directory / "..data")
        for name in files:
            visible = self.directory / name
            if not visible.is_symlink():
                os.symlink(f"..data/{name}", visible)
        if self._current is not None:
            shutil.rmtree(self._current)
        self._current = stamp
