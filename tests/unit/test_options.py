"""HotReloader's constructor reads at a glance: one keyword per concern, grouped options
that check themselves, and watch options that belong to the file source."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

import hotreload
from hotreload import Failures, Fields, FileSource, HotReloader, Layers, LogLevel

ENGINE = Path(hotreload.__file__).parent


class Settings(msgspec.Struct, frozen=True):
    model: str = "gpt-4o"
    log_level: str = "INFO"
    api_key: str = ""


def test_the_constructor_takes_a_source_and_at_most_19_keywords() -> None:
    params = inspect.signature(HotReloader.__init__).parameters
    keywords = [p for p in params.values() if p.kind is p.KEYWORD_ONLY]
    assert [p for p in params if p not in {k.name for k in keywords}] == ["self", "source"]
    assert len(keywords) <= 19, [k.name for k in keywords]  # 17, probation (25), rollout (26)
    watch_options = {
        "debounce_ms",
        "step_ms",
        "force_polling",
        "poll_delay_ms",
        "settle_ms",
        "format",
    }
    assert not watch_options & set(params)  # the file source's, not the reloader's


def test_the_parts_stand_side_by_side() -> None:
    # HotReloader's own bases, each directly on Generic/object: no chain of mixins.
    depth = max(len(base.__mro__) for base in HotReloader.__bases__)
    assert depth <= 3, [b.__mro__ for b in HotReloader.__bases__]


def test_the_grouped_options_hold_their_values_and_check_them() -> None:
    assert Fields(secrets=["a.b"]).secrets == ("a.b",)
    assert (Failures().threshold, Failures().cooldown) == (3, 60.0)
    assert LogLevel().loggers == ("",)
    with pytest.raises(TypeError, match="not one string"):
        Fields(secrets="api_key")
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        Failures(threshold=0)
    with pytest.raises(ValueError, match="threshold must be >= 1"):
        Failures(threshold=True)
    with pytest.raises(ValueError, match="cooldown must be >= 0"):
        Failures(cooldown=-1)
    with pytest.raises(AttributeError):
        Failures().threshold = 5  # type: ignore[misc]


async def test_the_groups_reach_the_parts_they_configure(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: a\nlog_level: WARNING\napi_key: sk-live-0123456789\n")
    reloader = HotReloader(
        FileSource(path, debounce_ms=70, step_ms=7),
        schema=Settings,
        registry=CollectorRegistry(),
        fields=Fields(secrets=["model"], refuse_changes=["api_key"]),
        failures=Failures(threshold=2, cooldown=5.0),
        log_level=LogLevel(loggers=["tests.options"]),
        poll_interval=0,
    )
    async with reloader:
        assert (reloader._failures.ledger.threshold, reloader._failures.ledger.cooldown) == (2, 5.0)
        assert reloader.policy.is_secret(("model",))
        assert reloader._loggers == ("tests.options",)
        source = reloader.source
        assert isinstance(source, FileSource)
        assert (source.debounce_ms, source.step_ms) == (70, 7)
        path.write_text("model: a\nlog_level: WARNING\napi_key: sk-live-other-98765\n")
        outcome = await reloader.reload()
        assert not outcome.applied  # refuse_changes took effect


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), True, "200", [200]])
def test_settle_ms_is_checked_where_it_is_given(tmp_path: Path, value: object) -> None:
    for make in (FileSource, Layers):
        with pytest.raises(ValueError, match=r"settle_ms must be None or .*>= 0, got"):
            make(tmp_path / "c.yaml", settle_ms=value)  # type: ignore[arg-type]


def test_settle_ms_is_off_by_default_and_reaches_the_reloader(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    registry = CollectorRegistry()
    for source in (path, FileSource(path), FileSource(path, settle_ms=0), Layers(path)):
        assert HotReloader(source, schema=Settings, registry=registry)._settle == 0
    for settle_ms, seconds in ((250, 0.25), (12.5, 0.0125)):
        source = FileSource(path, settle_ms=settle_ms)
        assert source.settle_ms == settle_ms
        assert HotReloader(source, schema=Settings, registry=registry)._settle == seconds
    # Layers: one quiet period for the list, the longest any of its sources asks for.
    assert HotReloader(Layers(path, settle_ms=200), schema=Settings)._settle == 0.2
    longest = Layers(path, FileSource(path, settle_ms=900), settle_ms=200)
    assert HotReloader(longest, schema=Settings)._settle == 0.9


async def test_log_level_none_leaves_logging_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("log_level: DEBUG\n")
    reloader = HotReloader(path, schema=Settings, registry=CollectorRegistry(), log_level=None)
    assert reloader._log_level_field is None
    layered = HotReloader([path], schema=Settings, registry=CollectorRegistry())
    assert isinstance(layered.source, Layers)


def test_engine_modules_speak_of_configs_not_of_one_customer() -> None:
    customer = re.compile(r"BR-[A-Z]+-\d+|\bHolmes\b|HolmesGPT")
    presets = {
        "holmes.py",
        "holmesgpt.py",
        "_holmesgpt_upstream.py",
        "_holmesgpt_live.py",
        "_holmes_sdk.py",
        "_demo.py",
    }
    offenders = [
        f"{p.name}:{n}"
        for p in sorted(ENGINE.glob("_*.py"))
        if p.name not in presets
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if customer.search(line)
    ]
    assert offenders == []
