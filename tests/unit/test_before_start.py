"""Reading a reloader before it started says how to start it (issue 24's rough edge)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from hotreload import HotReloader


class S(msgspec.Struct, frozen=True):
    a: int = 0


@pytest.mark.parametrize("name", ["config", "snapshot"])
def test_the_config_before_async_with_names_the_way_to_start(tmp_path: Path, name: str) -> None:
    r = HotReloader(tmp_path / "c.yaml", schema=S)
    with pytest.raises(AttributeError, match=r"not loaded yet.*`async with reloader:`") as caught:
        getattr(r, name)
    assert caught.value.name == name
    assert not hasattr(r, name)  # still an AttributeError: hasattr and getattr(..., None) work
    assert getattr(r, name, None) is None


def test_explain_before_async_with_names_the_way_to_start(tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="async with reloader"):
        HotReloader(tmp_path / "c.yaml", schema=S).explain()


def test_an_unknown_attribute_is_a_plain_attribute_error(tmp_path: Path) -> None:
    r = HotReloader(tmp_path / "c.yaml", schema=S)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        r.nope  # type: ignore[attr-defined]  # noqa: B018


async def test_after_async_with_the_config_is_there(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    async with HotReloader(path, schema=S, watch=False) as r:
        assert r.config == S(a=1)
