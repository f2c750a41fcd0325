"""The project is MIT-licensed (pyproject says so) and the distribution ships the text."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_mit() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_installed_distribution_ships_it() -> None:
    """CI installs from scratch (``pip install -e .``): the same metadata a wheel carries."""
    dist = importlib.metadata.distribution("hotreload-engine")
    assert dist.metadata["License-Expression"] == "MIT"
    assert dist.metadata.get_all("License-File") == ["LICENSE"]
    shipped = [f for f in dist.files or () if f.name == "LICENSE"]
    assert len(shipped) == 1
    assert Path(str(dist.locate_file(shipped[0]))).read_text() == (ROOT / "LICENSE").read_text()
