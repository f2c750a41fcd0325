"""holmesgpt 0.45's own built-in toolset files pass ``--schema holmesgpt``, whoever decides.

``data/builtin/`` holds verbatim copies of the 13 ``holmes/plugins/toolsets/*.yaml`` of the
``holmesgpt==0.45.0`` wheel, so the hand model is checked on them without the package; with the
package installed, the files are also enumerated from it (and must be the same 13). Four were
refused before 0.45's models were followed: ``cilium.yaml`` (``args``), ``inspektor_gadget.yaml``
(``default``), ``kubernetes.yaml`` and ``kubernetes_logs.yaml`` (``expose_remotely``).
"""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path

import pytest

from hotreload.cli import main
from tests.holmesgpt.conftest import need_upstream

COPIES = sorted((Path(__file__).parent / "data" / "builtin").glob("*.yaml"))
NAMES = [path.name for path in COPIES]

# Keys holmesgpt 0.45 reads past in its own files: named (so --strict refuses them).
IGNORED_BY_HOLMESGPT = {"cilium.yaml": "args", "inspektor_gadget.yaml": "default"}


def installed() -> list[Path]:
    import holmes.plugins.toolsets

    return sorted(Path(holmes.plugins.toolsets.__file__).parent.glob("*.yaml"))


def check(path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["check", str(path), "--schema", "holmesgpt", "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_the_copies_are_the_13_files_of_the_package() -> None:
    assert len(COPIES) == 13
    assert "cilium.yaml" in NAMES


def test_the_copies_are_the_installed_packages_files() -> None:
    need_upstream()
    files = installed()
    assert [path.name for path in files] == NAMES
    for copy, original in zip(COPIES, files, strict=True):
        assert copy.read_bytes() == original.read_bytes(), copy.name


@pytest.mark.parametrize("name", NAMES)
def test_each_builtin_file_passes(
    name: str, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(COPIES[NAMES.index(name)], capsys)
    assert code == 0, report
    ignored = {entry["path"].rsplit(".", 1)[-1] for entry in report["unknown"]}
    assert ignored == ({IGNORED_BY_HOLMESGPT[name]} if name in IGNORED_BY_HOLMESGPT else set())


def test_each_builtin_file_of_the_installed_package_passes(
    upstream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert upstream == "0.45.0"
    files = installed()
    assert len(files) == 13
    for path in files:
        code, report = check(path, capsys)
        assert code == 0, (path.name, report)


@pytest.mark.parametrize("name", sorted(IGNORED_BY_HOLMESGPT))
def test_strict_refuses_the_keys_holmesgpt_ignores_in_its_own_files(
    name: str, authority: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(COPIES[NAMES.index(name)], capsys, "--strict")
    assert code == 1
    assert report["reason"] == "unknown_key"
    assert report["field_path"].endswith(f".{IGNORED_BY_HOLMESGPT[name]}")
    assert isinstance(report["line"], int)


def test_loading_the_builtin_names_leaves_no_resource_warning_behind() -> None:
    """holmesgpt reads its templates with ``open(path).read()``: under warnings-as-errors those
    warnings surfaced as unraisable errors in whichever test ran next."""
    need_upstream()
    from hotreload._holmesgpt_upstream import builtin_names

    builtin_names.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = builtin_names()
        gc.collect()
    assert "kubernetes/core" in names
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
