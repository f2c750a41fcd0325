"""Under uvicorn's default logging, a commit and a failure each show one line (issue 24).

uvicorn's dictConfig gives handlers to ``uvicorn``, ``uvicorn.error`` and ``uvicorn.access``
only: the ``hotreload`` records used to reach no handler (INFO, below the root's WARNING) or
only Python's last-resort handler. The app below configures no logging at all, as a newcomer's
first app does, and the server is started with no logging options.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port, run_server

WAIT = 8.0  # each step; the test's own timeout is 30 s

APP = """\
import os

import msgspec

from hotreload import HotReloader


class Settings(msgspec.Struct, frozen=True):
    model: str


reloader = HotReloader(os.environ["LOGGING_APP_CONFIG"], schema=Settings)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await reloader.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await reloader.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        body = reloader.config.model.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
"""


def wait_for(predicate: object, what: str, output: object) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)  # sleep-ok: another process's output, nothing to wait on but polling
    pytest.fail(f"{what} did not show:\n{output()}")  # type: ignore[operator]


def served(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return None


def test_a_commit_and_a_failure_each_show_a_line_in_uvicorns_output(tmp_path: Path) -> None:
    (tmp_path / "logging_app.py").write_text(APP)
    config = tmp_path / "config.yaml"
    config.write_text("model: gpt-4\n")
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "logging_app:app", "--port", str(port)]
    argv += ["--host", "127.0.0.1", "--app-dir", str(tmp_path)]
    os.environ["LOGGING_APP_CONFIG"] = str(config)
    try:
        with run_server(argv, config, port, tmp_path / "server.log") as server:
            wait_for(lambda: served(server.url) == "gpt-4", "the first config", server.output)
            config.write_text("model: gpt-4o\n")
            wait_for(lambda: served(server.url) == "gpt-4o", "the commit", server.output)
            wait_for(lambda: "hot-reloaded" in server.output(), "the commit line", server.output)
            config.write_text("model: [\n")
            wait_for(lambda: "keeping previous" in server.output(), "the failure", server.output)
            assert served(server.url) == "gpt-4o"
    finally:
        del os.environ["LOGGING_APP_CONFIG"]
    lines = server.output().splitlines()
    [commit] = [line for line in lines if "hot-reloaded" in line]
    [failure] = [line for line in lines if "keeping previous" in line]
    assert re.match(r"INFO: +Configuration hot-reloaded successfully ", commit), commit
    assert "changed=['model']" in commit
    assert re.match(r"ERROR: +Failed to apply new configuration - keeping previous ", failure)
    assert "reason=parse" in failure or "result=validation_failed" in failure, failure
    assert any(re.match(r"INFO: +Uvicorn running on", line) for line in lines)
