"""Apply hooks that turn on their reloader (issue 17, items 3 and 4) and a relative path with a
later ``chdir`` (item 7): through the public API, real files, the real watcher."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from prometheus_client import CollectorRegistry

from hotreload import ConfigApplyError, Failures, HotReloader, ReloadResult, Snapshot
from hotreload.testing import write_in_place
from tests.hardening.conftest import WAIT, open_reloader, our_threads
from tests.hardening.test_shutdown import nothing_left_behind
from tests.integration.conftest import Settings


async def test_closing_the_reloader_from_its_own_apply_hook_is_refused_and_never_hangs(
    config_path: Path, registry: CollectorRegistry
) -> None:
    refused: list[BaseException] = []

    async with nothing_left_behind():
        async with open_reloader(config_path, registry) as r:

            @r.add_apply_hook
            async def close_me(new: Snapshot[Settings], old: Snapshot[Settings]) -> None:
                try:
                    await r.__aexit__(None, None, None)
                except RuntimeError as exc:
                    refused.append(exc)
                    raise

            write_in_place(config_path, "model: gpt-5\n")
            with anyio.fail_after(WAIT):
                outcome = await r.reload()
            assert outcome.result is ReloadResult.ERROR
            assert isinstance(outcome.error, ConfigApplyError)
            assert "cannot be closed from inside its own apply hook" in str(outcome.error)
            assert r.config == Settings(model="gpt-4")
            assert our_threads() != []
        assert len(refused) == 1
    assert our_threads() == []


async def test_a_process_whose_hook_closes_its_reloader_exits(tmp_path: Path) -> None:
    """The whole process, as the issue saw it spin: it must end, and on its own."""
    path = tmp_path / "config.yaml"
    path.write_text("model: gpt-4\n")
    script = tmp_path / "service.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, threading
            from prometheus_client import CollectorRegistry
            from hotreload import HotReloader
            from tests.integration.conftest import Settings

            async def main():
                async with HotReloader({str(path)!r}, schema=Settings,
                                       registry=CollectorRegistry(), poll_interval=0) as r:
                    @r.add_apply_hook
                    async def close_me(new, old):
                        await r.__aexit__(None, None, None)
                    with open({str(path)!r}, "w") as f:
                        f.write("model: gpt-5\\n")
                    outcome = await r.reload()
                    print(outcome.result.value)
                assert not [t for t in threading.enumerate() if t.name.startswith("hotreload")]

            asyncio.run(main())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, str(script)], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines()[-1] == "error"  # after any log lines


async def test_an_apply_hook_ending_in_cancelled_error_is_refused_and_undone(
    config_path: Path, registry: CollectorRegistry
) -> None:
    calls: list[tuple[str, str]] = []

    async def rebuild(new: Snapshot[Settings], old: Snapshot[Settings]) -> None:
        calls.append(("rebuild", new.config.model))

    async def wait_for_shared(new: Snapshot[Settings], old: Snapshot[Settings]) -> None:
        calls.append(("shared", new.config.model))
        shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(shared.cancel)  # someone else gives up on it
        await shared

    async with open_reloader(
        config_path, registry, on_apply=(rebuild, wait_for_shared), failures=Failures(threshold=2)
    ) as r:
        write_in_place(config_path, "model: gpt-5\n")
        seen = await r.wait_for_outcome(ReloadResult.ERROR, timeout=WAIT)
        assert isinstance(seen.error, ConfigApplyError)
        assert "CancelledError" in str(seen.error)
        assert r.config == Settings(model="gpt-4")
        assert r.snapshot.generation == 1
        # Refused and undone: the hook that had run is called again with the roles swapped.
        assert calls == [("rebuild", "gpt-5"), ("shared", "gpt-5"), ("rebuild", "gpt-4")]

        # A caller's reload() retries the version, and returns.
        with anyio.fail_after(WAIT):
            again = await r.reload()
        assert again.result is ReloadResult.ERROR
        assert len(calls) == 6

        # A forced re-check settles, and does not run the hooks again for the same version.
        r.record_failure("kubernetes", "ConnectionError", "refused")
        r.record_failure("kubernetes", "ConnectionError", "refused")
        with anyio.fail_after(WAIT):
            await r.failures_settled()
        assert r.last_outcome is not None
        assert r.last_outcome.trigger == "auto_reload"
        assert r.last_outcome.result is ReloadResult.ERROR
        assert len(calls) == 6
        assert r.config == Settings(model="gpt-4")

        # The next version goes in once the hook's future is no longer cancelled.
        r._hooks.remove(wait_for_shared)
        write_in_place(config_path, "model: claude\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.config == Settings(model="claude")


async def test_a_relative_path_is_resolved_once_at_construction(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for directory, model in ((here, "gpt-4"), (elsewhere, "not-ours")):
        directory.mkdir()
        (directory / "config.yaml").write_text(f"model: {model}\n")
    monkeypatch.chdir(here)
    reloader = HotReloader("config.yaml", schema=Settings, registry=registry, poll_interval=0)
    assert reloader.path == "config.yaml"  # as given: it names the file in logs and errors
    monkeypatch.chdir(elsewhere)
    async with reloader as r:
        assert r.config == Settings(model="gpt-4")
        assert r.source.resolved == str(here / "config.yaml")  # type: ignore[attr-defined]
        assert (await r.reload()).result is ReloadResult.CONFIG_UNCHANGED
        write_in_place(here / "config.yaml", "model: gpt-5\n")
        await r.wait_for_generation(2, timeout=WAIT)
        assert r.config == Settings(model="gpt-5")
