"""Environment variables are read under the limits files are.

``PREFIX_*`` values were read with a bare safe loader: no node limit, no text limit, no
duplicate-key check. An alias bomb a file is refused for was accepted from a variable, and
expanded by whatever walked the config next (a 262-byte one cost tens of seconds at start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import ConfigParseError, HotReloader, Layers
from hotreload._layers import env_layer
from tests.hardening.conftest import watcher_up
from tests.hardening.test_hostile_input import billion_laughs, wide_fan_out


class Free(msgspec.Struct, frozen=True, kw_only=True):
    """A schema that takes anything under ``extra``: nothing refuses a bomb but the parser."""

    model: str
    extra: Any = None


def bomb(levels: int) -> str:
    """`billion_laughs` as a variable's value (a mapping; nine times more nodes a level)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_the_billion_laughs_in_a_variable_is_refused_naming_it() -> None:
    """The hostile-input suite's bomb, as a variable's value. Not through a reloader: were
    it accepted again, converting and hashing it would exhaust the test machine's memory."""
    with pytest.raises(ConfigParseError) as info:
        env_layer([("HARD_EXTRA", billion_laughs().decode())], "HARD_", max_text=1 << 20)
    assert info.value.source == "$HARD_EXTRA"
    assert "aliases expand to more than 100000 nodes" in info.value.message
    assert info.value.line is not None


@pytest.mark.parametrize(
    "value",
    [
        bomb(6),  # 190 bytes, half a million nodes once expanded
        wide_fan_out().decode(),
    ],
    ids=["small-bomb", "wide-fan-out"],
)
async def test_an_alias_bomb_in_a_variable_is_refused_naming_it(
    value: str, config_path: Path, registry: CollectorRegistry
) -> None:
    environ = {"HARD_MODEL": "gpt-5"}
    source = Layers(config_path, env_prefix="HARD_", environ=environ)
    async with HotReloader(
        source=source, schema=Free, name="hard", registry=registry, poll_interval=0
    ) as r:
        await watcher_up(r)
        before = r.snapshot
        assert r.config == Free(model="gpt-5")
        environ["HARD_EXTRA"] = value
        outcome = await r.reload()
        error = outcome.error
        assert isinstance(error, ConfigParseError), outcome
        assert error.source == "$HARD_EXTRA"
        assert "alias" in error.message
        assert error.line is not None
        assert str(error).startswith(f"$HARD_EXTRA:{error.line}:{error.column}: ")
        assert not outcome.applied
        assert r.snapshot is before
        del environ["HARD_EXTRA"]  # and the reloader still works
        environ["HARD_MODEL"] = "gpt-6"
        assert (await r.reload()).applied
        assert r.config == Free(model="gpt-6")


async def test_a_bomb_in_a_variable_at_start_up_is_refused_naming_it(
    config_path: Path, registry: CollectorRegistry
) -> None:
    environ = {"HARD_EXTRA": bomb(6)}
    source = Layers(config_path, env_prefix="HARD_", environ=environ)
    with pytest.raises(ConfigParseError) as info:
        async with HotReloader(
            source=source, schema=Free, name="hard", registry=registry, poll_interval=0
        ):
            pass  # pragma: no cover - the first load fails
    assert info.value.source == "$HARD_EXTRA"
    assert "alias" in info.value.message


def test_a_variable_has_the_size_cap_on_its_text() -> None:
    """A variable cannot expand past the text a file may have (``max_text``)."""
    value = "[" + ", ".join(["*a"] * 50) + "]"
    with pytest.raises(ConfigParseError) as info:
        env_layer([("P_X", f"{{a: &a {'x' * 100}, b: {value}}}")], "P_", max_text=1000)
    assert info.value.source == "$P_X"
    assert "more than 1000 bytes of text" in info.value.message


@pytest.mark.parametrize(
    ("value", "message", "where"),
    [
        ("{a: 1, a: 2}", "found duplicate key 'a'", (1, 8)),
        ("[" * 300 + "]" * 300, "nesting is deeper than 200 levels", None),
    ],
    ids=["duplicate-key", "too-deep"],
)
def test_a_variable_is_refused_for_what_a_file_is(
    value: str, message: str, where: tuple[int, int] | None
) -> None:
    with pytest.raises(ConfigParseError) as info:
        env_layer([("P_X", value)], "P_", max_text=1 << 20)
    assert info.value.source == "$P_X"
    assert message in info.value.message
    if where is not None:
        assert (info.value.line, info.value.column) == where


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8080", 8080),
        ("true", True),
        ("[a, b]", ["a", "b"]),
        ("{k: v}", {"k": "v"}),
        ("gpt: [5", "gpt: [5"),  # not YAML: the string it is
        ("!shell echo hi", "!shell echo hi"),  # a tag the safe loader does not know
        ("!!int abc", "!!int abc"),  # a value its tag cannot hold
        ("*nothing", "*nothing"),  # an alias to no anchor
        ("null", None),
        ("# only a comment", None),
        ("", ""),
        ("   ", "   "),
    ],
)
def test_a_variable_that_breaks_no_limit_reads_as_before(value: str, expected: Any) -> None:
    parsed = env_layer([("P_X", value)], "P_", max_text=1 << 20)
    assert parsed.data == {"x": expected}


async def test_the_reloader_reads_variables_with_its_size_cap(
    config_path: Path, registry: CollectorRegistry
) -> None:
    """``max_bytes`` is the text a variable may expand to, as it is a file's."""
    environ = {"HARD_MODEL": "gpt-5"}
    source = Layers(config_path, env_prefix="HARD_", environ=environ)
    async with HotReloader(
        source=source, schema=Free, name="hard", registry=registry, poll_interval=0, max_bytes=4096
    ) as r:
        environ["HARD_EXTRA"] = "{a: &a " + "x" * 1000 + ", b: [*a, *a, *a, *a, *a]}"
        outcome = await r.reload()
        assert isinstance(outcome.error, ConfigParseError)
        assert outcome.error.source == "$HARD_EXTRA"
        assert "more than 4096 bytes of text (max_bytes)" in outcome.error.message
