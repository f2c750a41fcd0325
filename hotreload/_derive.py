"""Derived resources: what a service builds from its config, kept in step with it.

An LLM or HTTP client built from ``llm.endpoint``, a pool, a TLS context: `Derived` rebuilds
it inside the commit when a key path it depends on changes (a failed build refuses the change,
like an apply hook), swaps it together with the snapshot, and lets each request or session keep
the one it started with. The replaced one is closed exactly once, in the background, when its
last pin ends, so a slow close never delays a swap or the next reload.

Everything here runs on the reloader's event loop: pins are taken by `session()` and the ASGI
middleware, swaps by the worker, so plain counters need no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import anyio

from ._fields import Path, _split
from ._snapshot import Snapshot  # at runtime: get_type_hints(HotReloader) resolves Deriving
from ._tasks import TaskSet

if TYPE_CHECKING:
    from ._logging import ContextLogger
    from ._metrics import ReloaderMetrics

__all__ = ["Derived", "DerivedSet", "Deriving"]

R = TypeVar("R")
T = TypeVar("T")

#: The resources pinned for the request or session being served, per `Derived`.
_pinned: contextvars.ContextVar[Mapping[Derived[Any], _Held[Any]] | None] = contextvars.ContextVar(
    "hotreload_derived", default=None
)


class _Held(Generic[R]):
    """One built resource and its life: how many pins hold it, whether it was replaced, and
    whether its close has been started (at most once)."""

    __slots__ = ("closing", "generation", "pins", "resource", "retired")

    def __init__(self, resource: R, generation: int) -> None:
        self.resource = resource
        self.generation = generation
        self.pins = 0
        self.retired = False
        self.closing = False


class Derived(Generic[R]):
    """A resource built from the config, rebuilt when a key path under ``on`` changes.

    ``current`` is the resource in force (a plain attribute, as cheap to read as
    ``reloader.config``); `get` is the one pinned for the request or session being served
    (the current one outside any). ``generation`` is the config generation it was built for.
    """

    __slots__ = (
        "__weakref__",
        "_build",
        "_close",
        "_drained",
        "_draining",
        "_held",
        "_patterns",
        "current",
        "generation",
        "name",
        "on",
    )

    current: R
    generation: int

    def __init__(
        self,
        build: Callable[[Any], R | Awaitable[R]],
        *,
        on: Sequence[str],
        close: Callable[[R], object] | None,
        name: str,
    ) -> None:
        self._build = build
        self._close = close
        self.name = name
        self.on: tuple[str, ...] = tuple(on)
        self._patterns: tuple[Path, ...] = tuple(map(_split, self.on))
        self._held: _Held[R] | None = None
        self._draining: set[_Held[R]] = set()
        self._drained: asyncio.Event | None = None
        self.generation = 0

    def get(self) -> R:
        """The resource pinned for this request or session, else the current one."""
        pinned = _pinned.get()
        if pinned is not None:
            held = pinned.get(self)
            if held is not None:
                return held.resource  # type: ignore[no-any-return]
        return self.current

    @property
    def draining(self) -> int:
        """Replaced resources not closed yet: still pinned by a request or session, or closing."""
        return len(self._draining)

    async def wait_drained(self, *, timeout: float | None = None) -> None:
        """Wait until every replaced resource is closed (``draining == 0``); TimeoutError
        after ``timeout`` s. For tests and orderly shutdowns."""
        with anyio.fail_after(timeout):
            while self._draining:
                if self._drained is None:
                    self._drained = asyncio.Event()
                await self._drained.wait()

    def _depends_on(self, changed: Sequence[Path]) -> bool:
        if not self._patterns:
            return True  # ``on=()``: every change rebuilds
        for pattern in self._patterns:
            for path in changed:
                n = min(len(pattern), len(path))
                if all(p in ("*", s) for p, s in zip(pattern[:n], path[:n], strict=True)):
                    return True
        return False

    def __repr__(self) -> str:
        return f"<Derived {self.name!r} generation={self.generation} draining={self.draining}>"


class DerivedSet:
    """A reloader's derived resources: builds, swaps, pins and background closes."""

    __slots__ = ("_closing", "_idle", "_items", "_log", "_pins", "metrics", "timeout")

    def __init__(self, log: ContextLogger, timeout: float) -> None:
        self.timeout = timeout
        """Bound of each build and each close (the reloader's ``hook_timeout``)."""
        self._items: tuple[Derived[Any], ...] = ()  # the shared empty tuple until one is added
        self._log = log
        self._closing: set[asyncio.Task[None]] | None = None  # made at the first close
        self._pins = 0
        self._idle: asyncio.Event | None = None
        self.metrics: ReloaderMetrics | None = None

    @property
    def items(self) -> tuple[Derived[Any], ...]:
        return self._items

    def add(self, derived: Derived[Any]) -> None:
        self._check_name(derived)
        self._items = (*self._items, derived)

    def _check_name(self, derived: Derived[Any]) -> None:
        if any(d.name == derived.name for d in self._items):
            raise ValueError(f"a derived resource named {derived.name!r} exists already")

    def default_name(self, build: Callable[..., object]) -> str:
        """``build``'s name (``derived`` for a lambda), made unique among these resources."""
        base = str(getattr(build, "__name__", "derived"))
        base = "derived" if base == "<lambda>" else base
        taken = {d.name for d in self._items}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name

    def affected(self, changed: Sequence[str]) -> list[Derived[Any]]:
        """The resources a change of these dotted key paths must rebuild."""
        paths = [tuple(p.split(".")) for p in changed]
        return [d for d in self._items if d._depends_on(paths)]

    # -- build and swap (the worker) ------------------------------------------------------------

    async def build(
        self,
        items: Sequence[Derived[Any]],
        config: Any,
        generation: int,
        *,
        own_cancel: Callable[[], bool],
    ) -> tuple[dict[Derived[Any], _Held[Any]], tuple[Derived[Any], BaseException] | None]:
        """Build ``items`` for ``config`` (an async build's await bounded by ``timeout``). On
        the first failure the ones already built are closed (in the background) and the
        failure is returned."""
        built: dict[Derived[Any], _Held[Any]] = {}
        try:
            for derived in items:
                try:
                    resource = derived._build(config)
                    if inspect.isawaitable(resource):  # only an await can be timed out
                        with anyio.fail_after(self.timeout):
                            resource = await resource
                except asyncio.CancelledError as exc:
                    if own_cancel():  # the worker's own cancellation (the reloader closing)
                        raise
                    # A future the build awaited was cancelled by someone else: a build
                    # failure like any other, as for an apply hook (never a hung caller).
                    self.discard(built)
                    return {}, (derived, exc)
                except Exception as exc:  # noqa: BLE001 - any build failure refuses the change
                    self.discard(built)
                    return {}, (derived, exc)
                built[derived] = _Held(resource, generation)
        except BaseException:  # the worker is cancelled (shutdown): nothing built survives
            self.discard(built)
            raise
        return built, None

    def swap(self, built: Mapping[Derived[Any], _Held[Any]]) -> None:
        """Put freshly built resources in force (part of the commit's swap); the replaced ones
        are closed as soon as no pin holds them."""
        for derived, fresh in built.items():
            old, held = derived._held, fresh
            same = _holding(derived, fresh.resource)
            if same is not None:  # a cached or pooled object: it stays in force, never closed
                same.retired = False
                same.generation = fresh.generation
                if same is not old:
                    derived._draining.discard(same)
                    self._set_draining(derived)
                held = same
            derived._held = held
            derived.current = held.resource
            derived.generation = held.generation
            if old is not None and old is not held:
                old.retired = True
                derived._draining.add(old)
                self._set_draining(derived)
                if old.pins == 0:
                    self._close_later(derived, old)

    def discard(self, built: Mapping[Derived[Any], _Held[Any]]) -> None:
        """Close resources built for a change that was refused; nothing ever used them."""
        for derived, held in built.items():
            if _holding(derived, held.resource) is None:  # not an object still in use
                held.retired = True
                self._close_later(derived, held)

    def add_running(self, derived: Derived[Any], config: Any, generation: int) -> None:
        """Build a resource derived while the reloader runs (sync builds only)."""
        self._check_name(derived)  # before building: nothing to close if it is taken
        resource = derived._build(config)
        if inspect.isawaitable(resource):
            if inspect.iscoroutine(resource):
                resource.close()
            raise RuntimeError(
                f"derive({derived.name!r}): an async build can only be derived before "
                "`async with` starts the reloader (it is built then, and awaited)"
            )
        self.add(derived)
        self.swap({derived: _Held(resource, generation)})

    # -- pins (sessions, requests) ----------------------------------------------------------------

    def pinning(self) -> contextlib.AbstractContextManager[None]:
        """Pin every resource in force until the block ends; `Derived.get` returns them."""
        return _Pin(self) if self._items else _NO_PIN  # every request pins: keep "none" free

    # -- closing -------------------------------------------------------------------------------

    def _close_later(self, derived: Derived[Any], held: _Held[Any]) -> None:
        """Start closing ``held`` (once) right after the current step: a swap only queues it,
        so neither the close nor making its task is part of the commit."""
        if held.closing:
            return
        held.closing = True
        asyncio.get_running_loop().call_soon(self._start_close, derived, held)

    def _start_close(self, derived: Derived[Any], held: _Held[Any]) -> None:
        task = asyncio.get_running_loop().create_task(
            self._close(derived, held), name=f"hotreload-derived-close[{derived.name}]"
        )
        if self._closing is None:
            self._closing = set()
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, derived: Derived[Any], held: _Held[Any]) -> None:
        try:
            with anyio.fail_after(self.timeout):
                await _close_resource(held.resource, derived._close)
        except Exception as exc:  # noqa: BLE001 - a close error is reported, never raised
            if self.metrics is not None:
                self.metrics.derived_close_errors.labels(derived.name).inc()
            self._log.error(
                "derived_close_failed",
                resource=derived.name,
                generation=held.generation,
                error_type=type(exc).__name__,
            )
        else:
            self._log.debug("derived_closed", resource=derived.name, generation=held.generation)
        finally:
            derived._draining.discard(held)
            self._set_draining(derived)
            if not derived._draining and derived._drained is not None:
                derived._drained.set()
                derived._drained = None

    def _set_draining(self, derived: Derived[Any]) -> None:
        if self.metrics is not None:
            self.metrics.derived_draining.labels(derived.name).set(derived.draining)

    async def aclose(self, max_wait: float) -> None:
        """Close everything: the pinned ones once their pins end (at most ``max_wait``), then
        wait for every close to finish."""
        if self._pins:
            self._idle = asyncio.Event()
            with anyio.move_on_after(max_wait):
                await self._idle.wait()
            if self._pins:
                self._log.warning("derived_closed_while_pinned", pins=self._pins, waited_s=max_wait)
        for derived in self._items:
            for held in [*derived._draining, derived._held]:
                if held is not None:
                    held.retired = True
                    self._close_later(derived, held)
            derived._held = None
        await asyncio.sleep(0)  # sleep-ok: the closes queued above start their tasks
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
            await asyncio.sleep(0)  # sleep-ok: closes queued meanwhile start theirs
        self._idle = None


def _holding(derived: Derived[Any], resource: object) -> _Held[Any] | None:
    """The life record of ``resource`` if ``derived`` already holds it (in force, or replaced
    but not closing yet): a build may return the object in force (a cache, a pool), and that
    object must not be closed while it is still current."""
    for held in (derived._held, *derived._draining):
        if held is not None and held.resource is resource and not held.closing:
            return held
    return None


_NO_PIN: contextlib.AbstractContextManager[None] = contextlib.nullcontext()


class _Pin:
    """``with derived_set.pinning():`` a class, not a generator: it runs on every request."""

    __slots__ = ("_held", "_set", "_token")

    def __init__(self, owner: DerivedSet) -> None:
        self._set = owner
        self._held: dict[Derived[Any], _Held[Any]] = {}
        self._token: contextvars.Token[Mapping[Derived[Any], _Held[Any]] | None] | None = None

    def __enter__(self) -> None:
        owner = self._set
        held = {d: h for d in owner._items if (h := d._held) is not None}
        if not held:
            return
        for h in held.values():
            h.pins += 1
        owner._pins += 1
        self._held = held
        outer = _pinned.get()
        self._token = _pinned.set(held if outer is None else {**outer, **held})

    def __exit__(self, *exc_info: object) -> None:
        token, held = self._token, self._held
        if token is None:
            return
        _pinned.reset(token)
        owner = self._set
        owner._pins -= 1
        for derived, h in held.items():
            h.pins -= 1
            if h.pins == 0 and h.retired:
                owner._close_later(derived, h)
        if owner._pins == 0 and owner._idle is not None:
            owner._idle.set()


async def _close_resource(resource: Any, close: Callable[[Any], object] | None) -> None:
    """``close(resource)`` if given, else ``resource.aclose()`` or ``resource.close()``."""
    if close is None:
        close = getattr(resource, "aclose", None) or getattr(resource, "close", None)
        if close is None:
            return
        result = close()
    else:
        result = close(resource)
    if inspect.isawaitable(result):
        await result


class Deriving(Generic[T]):
    """`HotReloader`'s derived-resource API, kept next to what it drives."""

    __slots__ = ()

    config: T
    snapshot: Snapshot[T]
    _derived: DerivedSet
    _tasks: TaskSet | None

    @overload
    def derive(
        self,
        build: Callable[[T], Awaitable[R]],
        *,
        on: Sequence[str] = ...,
        close: Callable[[R], object] | None = ...,
        name: str | None = ...,
    ) -> Derived[R]: ...
    @overload
    def derive(
        self,
        build: Callable[[T], R],
        *,
        on: Sequence[str] = ...,
        close: Callable[[R], object] | None = ...,
        name: str | None = ...,
    ) -> Derived[R]: ...
    def derive(
        self,
        build: Callable[[T], R | Awaitable[R]],
        *,
        on: Sequence[str] = ("llm",),
        close: Callable[[R], object] | None = None,
        name: str | None = None,
    ) -> Derived[R]:
        """Keep ``build(config)`` (sync or async) in step with the config: built at start and
        again, inside the commit, whenever a key path under ``on`` changes (``on=()``: any
        change). A build that raises, or an async one that exceeds ``hook_timeout``, refuses
        the change like an apply hook. ``derived.current`` is the resource in force;
        ``derived.get()`` the one pinned by the session or request being served. A replaced
        resource is closed once, in the background, when no pin holds it: ``close(r)`` if
        given, else ``r.aclose()`` or ``r.close()``; errors are logged and counted, never
        raised. On exit every resource is closed, the pinned ones after their pins end (at
        most ``max_drain_wait``).

        Derive before ``async with`` (any build), or while running with a sync build.
        ``name`` (unique per reloader) labels logs, metrics and ``/-/config``; by default the
        build's ``__name__`` (``derived`` for a lambda), suffixed ``-2``, ``-3``... if taken.
        """
        label = name if name is not None else self._derived.default_name(build)
        derived: Derived[R] = Derived(build, on=on, close=close, name=label)
        if self._tasks is None:
            self._derived.add(derived)
        else:
            self._derived.add_running(derived, self.config, self.snapshot.generation)
        return derived

    @property
    def derived_resources(self) -> tuple[Derived[Any], ...]:
        """Every resource `derive` keeps, in the order they were derived."""
        return self._derived.items

    def pin_resources(self) -> contextlib.AbstractContextManager[None]:
        """Pin the derived resources in force until the block ends, so ``derived.get()`` in it
        returns them even if a change swaps them meanwhile; `session` and
        ``hotreload.asgi.HotReloadMiddleware`` do this for you. Use on the event loop."""
        return self._derived.pinning()
