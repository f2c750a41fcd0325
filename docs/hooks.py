"""mkdocs hooks: the site's home page is the README, its ``docs/`` links made site links; and
the full benchmark results page embeds benchmarks/RESULTS.md, whose latency CDF link
(``results/latency.png``) is served from benchmarks/results/ as it is in the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent


def on_files(files: Files, config: Any) -> Files:
    png = ROOT / "benchmarks" / "results" / "latency.png"
    files.append(File.generated(config, "results/latency.png", abs_src_path=str(png)))
    return files


def on_page_read_source(page: Page, config: Any) -> str | None:
    if page.file.src_uri != "index.md":
        return None
    return (ROOT / "README.md").read_text().replace("](docs/", "](")
