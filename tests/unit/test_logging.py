"""Log-level hot reload helpers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from hotreload._logging import (
    ContextLogger,
    apply_log_level,
    filter_by_stdlib_level,
    level_number,
    render,
)

LOGGER_NAMES = ("", "hotreload.test.a", "hotreload.test.b", "hotreload.test.filter")


@pytest.fixture
def restore_levels() -> Iterator[None]:
    """Put every logger these tests touch back to the level it had before."""
    saved = {name: logging.getLogger(name or None).level for name in LOGGER_NAMES}
    yield
    for name, level in saved.items():
        logging.getLogger(name or None).setLevel(level)


# --- level_number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("debug", logging.DEBUG),
        ("DEBUG", logging.DEBUG),
        (" Info ", logging.INFO),
        ("warning", logging.WARNING),
        ("warn", logging.WARNING),
        ("Error", logging.ERROR),
        ("critical", logging.CRITICAL),
        ("fatal", logging.CRITICAL),
        ("notset", logging.NOTSET),
        (10, 10),
        (25, 25),
        (0, 0),
    ],
)
def test_level_number_accepts(value: object, expected: int) -> None:
    assert level_number(value) == expected


@pytest.mark.parametrize(
    "value",
    ["verbose", "", "  ", "INFO2", True, False, None, 10.0, ["DEBUG"]],
)
def test_level_number_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="level"):
        level_number(value)


# --- apply_log_level -------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_levels")
def test_apply_log_level_sets_named_loggers() -> None:
    untouched = logging.getLogger("hotreload.test.b")
    untouched.setLevel(logging.CRITICAL)
    assert apply_log_level("debug", ["hotreload.test.a"]) == logging.DEBUG
    assert logging.getLogger("hotreload.test.a").level == logging.DEBUG
    assert untouched.level == logging.CRITICAL


@pytest.mark.usefixtures("restore_levels")
def test_apply_log_level_empty_name_is_root() -> None:
    assert apply_log_level("ERROR", ["", "hotreload.test.b"]) == logging.ERROR
    assert logging.getLogger().level == logging.ERROR
    assert logging.getLogger("hotreload.test.b").level == logging.ERROR


@pytest.mark.usefixtures("restore_levels")
def test_apply_log_level_rejects_bad_level_without_touching_loggers() -> None:
    logger = logging.getLogger("hotreload.test.a")
    logger.setLevel(logging.WARNING)
    with pytest.raises(ValueError, match="verbose"):
        apply_log_level("verbose", ["hotreload.test.a"])
    assert logger.level == logging.WARNING


@pytest.mark.usefixtures("restore_levels")
def test_apply_log_level_changes_effective_level() -> None:
    logger = logging.getLogger("hotreload.test.a")
    apply_log_level("WARNING", ["hotreload.test.a"])
    assert not logger.isEnabledFor(logging.INFO)
    apply_log_level(" info ", ["hotreload.test.a"])
    assert logger.isEnabledFor(logging.INFO)


# --- filter_by_stdlib_level ------------------------------------------------------------------


@pytest.mark.usefixtures("restore_levels")
@pytest.mark.parametrize(
    ("level", "method"),
    [
        (logging.INFO, "debug"),
        (logging.WARNING, "info"),
        (logging.WARNING, "debug"),
        (logging.ERROR, "warning"),
        (logging.CRITICAL, "error"),
        (logging.CRITICAL, "exception"),
    ],
)
def test_filter_drops_events_below_the_level(level: int, method: str) -> None:
    logging.getLogger("hotreload.test.filter").setLevel(level)
    processor = filter_by_stdlib_level("hotreload.test.filter")
    with pytest.raises(structlog.DropEvent):
        processor(None, method, {"event": "x"})


@pytest.mark.usefixtures("restore_levels")
@pytest.mark.parametrize("method", ["info", "warning", "error", "critical", "exception"])
def test_filter_passes_events_at_or_above_the_level(method: str) -> None:
    logging.getLogger("hotreload.test.filter").setLevel(logging.INFO)
    processor = filter_by_stdlib_level("hotreload.test.filter")
    event: dict[str, Any] = {"event": "x", "k": 1}
    assert processor(None, method, event) is event


@pytest.mark.usefixtures("restore_levels")
def test_filter_at_error_level() -> None:
    logging.getLogger("hotreload.test.filter").setLevel(logging.ERROR)
    processor = filter_by_stdlib_level("hotreload.test.filter")
    for method in ("debug", "info", "warning"):
        with pytest.raises(structlog.DropEvent):
            processor(None, method, {"event": method})
    # "exception" logs at ERROR.
    assert processor(None, "exception", {"event": "boom"}) == {"event": "boom"}
    assert processor(None, "error", {"event": "e"}) == {"event": "e"}


@pytest.mark.usefixtures("restore_levels")
def test_filter_follows_later_level_changes() -> None:
    logger = logging.getLogger("hotreload.test.filter")
    logger.setLevel(logging.WARNING)
    processor = filter_by_stdlib_level("hotreload.test.filter")
    with pytest.raises(structlog.DropEvent):
        processor(None, "info", {"event": "x"})
    apply_log_level("DEBUG", ["hotreload.test.filter"])
    assert processor(None, "debug", {"event": "x"}) == {"event": "x"}
    apply_log_level("ERROR", ["hotreload.test.filter"])
    with pytest.raises(structlog.DropEvent):
        processor(None, "warning", {"event": "x"})


@pytest.mark.usefixtures("restore_levels")
def test_filter_default_is_the_root_logger() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    processor = filter_by_stdlib_level()
    with pytest.raises(structlog.DropEvent):
        processor(None, "info", {"event": "x"})
    assert processor(None, "warning", {"event": "x"}) == {"event": "x"}


# --- ContextLogger: stdlib when nobody configured structlog, structlog when someone did ------


@pytest.mark.usefixtures("structlog_unconfigured")
def test_unconfigured_events_go_to_the_stdlib_logger(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    log = ContextLogger("hotreload.test.a", config="api")
    with caplog.at_level(logging.DEBUG, logger="hotreload"):
        log.debug("config_unchanged", trigger="rescan")
        log.info("Configuration hot-reloaded successfully", changed=["model"], generation=2)
    [debug, info] = caplog.records
    assert (debug.name, debug.levelno) == ("hotreload.test.a", logging.DEBUG)
    assert debug.getMessage() == "config_unchanged config=api trigger=rescan"
    assert info.levelno == logging.INFO
    assert info.getMessage() == (
        "Configuration hot-reloaded successfully changed=['model'] config=api generation=2"
    )
    assert debug.filename == info.filename == "test_logging.py"  # the caller, not _logging.py
    assert capsys.readouterr().out == ""  # structlog's default would have printed both here


@pytest.mark.usefixtures("structlog_unconfigured", "restore_levels")
def test_unconfigured_events_below_the_stdlib_level_are_dropped(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    log = ContextLogger("hotreload.test.a")
    logging.getLogger("hotreload.test.a").setLevel(logging.WARNING)
    with caplog.at_level(logging.DEBUG):  # the handler takes anything: the logger decides
        log.debug("quiet")
        log.info("quiet too")
        log.warning("watcher_restarting", attempt=1)
        log.error("Failed to apply new configuration - keeping previous", reason="parse")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "watcher_restarting attempt=1"),
        (logging.ERROR, "Failed to apply new configuration - keeping previous reason=parse"),
    ]
    assert capsys.readouterr() == ("", "")


@pytest.mark.usefixtures("structlog_unconfigured", "restore_levels")
def test_unconfigured_events_follow_a_level_set_later(caplog: pytest.LogCaptureFixture) -> None:
    """The log-level switch (FR-4) sets the root level: the library's events obey it."""
    log = ContextLogger("hotreload.test.b")
    with caplog.at_level(logging.NOTSET):
        apply_log_level("WARNING", [""])
        log.debug("before")
        apply_log_level("DEBUG", [""])
        log.debug("after")
    assert [r.getMessage() for r in caplog.records if r.name == "hotreload.test.b"] == ["after"]


@pytest.mark.usefixtures("structlog_unconfigured")
def test_unconfigured_exception_carries_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = ContextLogger("hotreload.test.a")
    with caplog.at_level(logging.DEBUG, logger="hotreload"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("apply_hook_failed", hook="h")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError


def test_configured_structlog_gets_the_events_and_stdlib_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def keep(_: Any, method: str, event_dict: Any) -> Any:
        seen.append((method, dict(event_dict)))
        raise structlog.DropEvent

    log = ContextLogger("hotreload.test.a", config="api")  # made before the configuration
    structlog.configure(processors=[keep])
    with caplog.at_level(logging.DEBUG):
        log.debug("config_unchanged", trigger="rescan")
        log.warning("watcher_restarting", attempt=2)
    assert seen == [
        ("debug", {"event": "config_unchanged", "config": "api", "trigger": "rescan"}),
        ("warning", {"event": "watcher_restarting", "config": "api", "attempt": 2}),
    ]
    assert not [r for r in caplog.records if r.name.startswith("hotreload")]


def test_the_assembled_structlog_logger_follows_a_later_configuration() -> None:
    """The bound logger is assembled once per configuration, not per event (the lazy proxy's
    cost), yet a ``configure`` or ``capture_logs`` made later is obeyed from the next event."""
    first: list[str] = []
    second: list[str] = []

    def into(seen: list[str]) -> Any:
        def keep(_: Any, __: str, event_dict: Any) -> Any:
            seen.append(event_dict["event"])
            raise structlog.DropEvent

        return keep

    log = ContextLogger("hotreload.test.b", config="api")
    structlog.configure(processors=[into(first)])
    log.info("one")
    log.info("two")
    structlog.configure(processors=[into(second)])
    log.info("three")
    with structlog.testing.capture_logs() as captured:
        log.info("four")
    log.info("five")
    assert first == ["one", "two"]
    assert second == ["three", "five"]
    assert [e["event"] for e in captured] == ["four"]


def test_a_print_logger_made_without_a_file_writes_to_the_stdout_of_the_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``PrintLoggerFactory()`` binds ``sys.stdout`` when a logger is made: a stream swapped
    since (pytest's capture, a redirect) gets the next event, as with structlog's own proxy."""
    import io

    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    log = ContextLogger("hotreload.test.b", config="api")
    before, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", before)
    log.info("one")
    monkeypatch.setattr("sys.stdout", after)
    log.info("two")
    assert '"one"' in before.getvalue()
    assert '"two"' not in before.getvalue()
    assert '"two"' in after.getvalue()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("api", "api"),
        ("a b", "'a b'"),
        ("", "''"),
        ("k=v", "'k=v'"),
        ('say "x"', "'say \"x\"'"),
        (None, "None"),
        (2, "2"),
        (["model"], "['model']"),
    ],
)
def test_render_shows_each_value_unambiguously(value: object, shown: str) -> None:
    assert render("e", {"k": value}) == f"e k={shown}"
