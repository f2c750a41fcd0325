"""SIGHUP makes every open reloader in the process re-check its source (trigger ``signal``).

What ``systemctl reload`` (``ExecReload=kill -HUP $MAINPID``), nginx and Prometheus users
expect. Opt-in: ``reload_on_sighup()`` installs the handler and returns the function that
removes it. A handler the application or server installed before is chained (called after
ours), never dropped; one that an event loop owns (``loop.add_signal_handler``) cannot be
reached from here, so that case is refused rather than silently replaced.

With a running loop on the main thread the handler goes through ``loop.add_signal_handler``
(it then runs as a loop callback, not between two arbitrary bytecodes); otherwise it is a plain
``signal.signal`` handler that only hands the work to each reloader's loop, thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from ._logging import ContextLogger

__all__ = ["reload_on_sighup", "reload_on_sighup_if_possible", "track", "untrack"]

_log = ContextLogger("hotreload.sighup")

TRIGGER = "signal"

Handler = Callable[[int, FrameType | None], Any] | int | None


class _Recheckable(Protocol):
    _loop: asyncio.AbstractEventLoop | None

    def _notify_threadsafe(self, kind: str) -> None: ...


_open: weakref.WeakSet[_Recheckable] = weakref.WeakSet()


def track(reloader: _Recheckable) -> None:
    """A reloader opened: SIGHUP re-checks it from now on."""
    _open.add(reloader)


def untrack(reloader: _Recheckable) -> None:
    _open.discard(reloader)


def recheck_all() -> int:
    """Ask every open reloader to re-check (any thread; never blocks). How many were asked."""
    reloaders = list(_open)
    for reloader in reloaders:
        reloader._notify_threadsafe(TRIGGER)
    return len(reloaders)


@dataclass(eq=False)
class _Installed:
    previous: Handler
    loop: asyncio.AbstractEventLoop | None
    users: int = 0


_installed: _Installed | None = None
_lock = threading.Lock()


def reload_on_sighup() -> Callable[[], None]:
    """On SIGHUP, every open `HotReloader` in the process re-checks its source, as if
    ``reload()`` were called (the outcome's trigger is ``"signal"``).

    Idempotent: calling it again while installed adds a user of the same handler. Returns
    ``undo()``, which removes the handler (restoring the previous one) once every caller has
    undone. A handler installed before is called after ours. Call it on the main thread.
    """
    global _installed  # noqa: PLW0603 - one handler per process, by nature
    sig = _sighup()
    with _lock:
        if _installed is not None and _installed.loop is not None and _installed.loop.is_closed():
            _installed = None  # a closed loop took its signal handlers with it
        if _installed is None:
            _installed = _install(sig)
        installed = _installed
        installed.users += 1
    done = False

    def undo() -> None:
        nonlocal done
        if not done:
            done = True
            _release(sig, installed)

    return undo


def reload_on_sighup_if_possible() -> Callable[[], None]:
    """`reload_on_sighup`, or a warning and a no-op ``undo`` where no handler can be installed:
    off the main thread (a test client running the app in a portal thread), a loop-owned
    handler, no SIGHUP on this platform. For the ASGI lifespan, which must not fail over it."""
    try:
        return reload_on_sighup()
    except RuntimeError as exc:
        _log.warning("sighup_reload_not_installed", reason=str(exc))
        return _nothing


def _nothing() -> None:
    pass


def _sighup() -> int:
    sig = getattr(signal, "SIGHUP", None)
    if sig is None:  # pragma: no cover - Windows
        raise RuntimeError("this platform has no SIGHUP: use reloader.reload() instead")
    return int(sig)


def _install(sig: int) -> _Installed:
    previous: Handler = signal.getsignal(sig)
    if getattr(previous, "__module__", "").startswith("asyncio"):
        raise RuntimeError(
            "SIGHUP is already handled through an event loop's add_signal_handler, which "
            "cannot be chained from here: call hotreload.reload_on_sighup() before installing "
            "that handler, so ours is chained instead"
        )
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("reload_on_sighup() must be called on the main thread")
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    installed = _Installed(previous, loop)
    if loop is not None:
        try:
            loop.add_signal_handler(sig, _on_loop, sig, installed)
        except (NotImplementedError, RuntimeError):  # a loop without signal support
            installed.loop = None
        else:
            return installed
    signal.signal(sig, _on_signal)
    return installed


def _on_loop(sig: int, installed: _Installed) -> None:
    """SIGHUP, as a callback of the loop that installed the handler."""
    _handle(sig, None, installed.previous)


def _on_signal(sig: int, frame: FrameType | None) -> None:
    """SIGHUP, as a plain Python signal handler: runs between two bytecodes of the main
    thread, so it only hands the work to each reloader's loop (``call_soon_threadsafe``)."""
    installed = _installed
    for loop in {r._loop for r in list(_open) if r._loop is not None}:
        with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
            loop.call_soon_threadsafe(_recheck_on, loop)
    if installed is not None and callable(installed.previous):
        installed.previous(sig, frame)


def _recheck_on(loop: asyncio.AbstractEventLoop) -> None:
    reloaders = [r for r in list(_open) if r._loop is loop]
    for reloader in reloaders:
        reloader._notify_threadsafe(TRIGGER)
    _log.info("sighup_received", reloaders=len(reloaders))


def _handle(sig: int, frame: FrameType | None, previous: Handler) -> None:
    _log.info("sighup_received", reloaders=recheck_all())
    if callable(previous):
        previous(sig, frame)


def _release(sig: int, installed: _Installed) -> None:
    global _installed  # noqa: PLW0603 - see reload_on_sighup
    with _lock:
        installed.users -= 1
        if installed.users > 0 or _installed is not installed:
            return
        _installed = None
        previous = installed.previous if installed.previous is not None else signal.SIG_DFL
        loop = installed.loop
        if loop is not None:
            if not loop.is_closed():
                loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
        elif signal.getsignal(sig) is _on_signal:  # never undo a handler installed since
            signal.signal(sig, previous)
