"""The package's records under a server's logging (uvicorn's dictConfig) when the application
configured none: through the server's handlers, and only then (issue 24)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from hotreload._logging import ContextLogger


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def unconfigured() -> Iterator[None]:
    """The root without handlers, as in an application that configured no logging (pytest's
    own capture handler is put on the root around each test's call, so it is taken off here)."""
    saved = logging.root.handlers[:]
    logging.root.handlers.clear()
    try:
        yield
    finally:
        logging.root.handlers[:] = saved


@pytest.fixture
def uvicorn_error() -> Iterator[Lines]:
    """``uvicorn.error`` as uvicorn's LOGGING_CONFIG leaves it: INFO, a handler (on
    ``uvicorn``, which does not propagate); the root without handlers."""
    parent, child = logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")
    own = logging.getLogger("hotreload")
    saved = (
        parent.handlers[:],
        parent.level,
        parent.propagate,
        child.level,
        logging.root.handlers[:],
        logging.root.level,
        own.level,
    )
    logging.root.handlers.clear()
    # Python's defaults, whatever an earlier test's log-level switch left on them.
    logging.root.setLevel(logging.WARNING)
    own.setLevel(logging.NOTSET)
    lines = Lines()
    parent.handlers[:] = [lines]
    parent.setLevel(logging.INFO)
    parent.propagate = False
    child.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        parent.handlers[:], parent.level, parent.propagate, child.level = saved[:4]
        logging.root.handlers[:] = saved[4]
        logging.root.setLevel(saved[5])
        own.setLevel(saved[6])


def test_records_go_through_uvicorns_handlers_keeping_their_name(uvicorn_error: Lines) -> None:
    with unconfigured():
        ContextLogger("hotreload.worker", config="default").info("config_loaded", generation=1)
        ContextLogger("hotreload.worker").debug("config_unchanged")
    [record] = uvicorn_error.records
    assert (record.name, record.levelno) == ("hotreload.worker", logging.INFO)
    assert record.getMessage() == "config_loaded config=default generation=1"
    assert record.funcName == "test_records_go_through_uvicorns_handlers_keeping_their_name"


def test_uvicorns_log_level_applies_unless_the_switch_set_a_lower_one(
    uvicorn_error: Lines,
) -> None:
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # uvicorn --log-level warning
    with unconfigured():
        ContextLogger("hotreload").info("commit")
        ContextLogger("hotreload").error("failure")
    assert [r.getMessage() for r in uvicorn_error.records] == ["failure"]
    own = logging.getLogger("hotreload")
    own.setLevel(logging.DEBUG)  # a log-level switch aimed at the package
    try:
        with unconfigured():
            ContextLogger("hotreload").debug("detail")
    finally:
        own.setLevel(logging.NOTSET)
    assert [r.getMessage() for r in uvicorn_error.records] == ["failure", "detail"]


def test_an_application_that_configured_logging_keeps_its_routing(uvicorn_error: Lines) -> None:
    mine = Lines()
    with unconfigured():
        logging.root.addHandler(mine)
        ContextLogger("hotreload").warning("watch_missed_event")
    assert uvicorn_error.records == []
    assert [r.getMessage() for r in mine.records] == ["watch_missed_event"]


def test_exception_records_carry_the_exception(uvicorn_error: Lines) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        with unconfigured():
            ContextLogger("hotreload").exception("reload_worker_error")
    [record] = uvicorn_error.records
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
