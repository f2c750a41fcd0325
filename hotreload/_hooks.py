"""Apply hooks: run before a change is put in force; one that fails refuses it, and the hooks
that already ran are called again with the roles swapped, to undo. Each is bounded by
``hook_timeout``, and a hook can neither hang the worker nor stop it by accident. The derived
resources a change affects are built just before the hooks, and refuse it the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._derive import Derived, DerivedSet, _Held
from ._errors import ConfigApplyError, ConfigBuildError
from ._fields import FieldPolicy
from ._logging import ContextLogger
from ._pipeline import Active
from ._snapshot import Snapshot
from ._tasks import TaskSet

__all__ = ["HOOK_SLOTS", "ApplyHook", "Hooks"]

#: The state this part owns: slots of the `HotReloader` façade (a part has none of its own,
#: so parts stand side by side as bases instead of stacked in a chain).
HOOK_SLOTS = ("_hooks", "hook_timeout")

T = TypeVar("T")

ApplyHook = Callable[[Snapshot[T], Snapshot[T]], Awaitable[None]]
"""``async def hook(new, old)``: runs before a change is put in force; raising refuses it."""


class Hooks(Generic[T]):
    """The reloader's hook runner (a mixin: the worker calls it, with the reloader's state)."""

    if not TYPE_CHECKING:  # mypy would refuse assigning the façade's slots from here
        __slots__ = ()  # its state's slots are the façade's: see HOOK_SLOTS

    path: str
    policy: FieldPolicy
    hook_timeout: float
    _hooks: list[ApplyHook[T]]
    _derived: DerivedSet
    _active: Active[T]
    _log: ContextLogger
    _tasks: TaskSet | None

    async def _run_hooks(
        self, new: Snapshot[T], old: Snapshot[T], active: Active[T]
    ) -> ConfigApplyError | None:
        done: list[ApplyHook[T]] = []
        for hook in list(self._hooks):
            exc = await self._call_hook(hook, new, old)
            if exc is None:
                done.append(hook)
                continue
            name = _hook_name(hook)
            message = self._failure_text(f"apply hook {name}", exc, active, self._active)
            self._log.error(
                "apply_hook_failed",
                hook=name,
                error_type=type(exc).__name__,
                rolled_back=len(done),
                config_hash=new.config_hash,
            )
            for undo in reversed(done):
                undo_exc = await self._call_hook(undo, old, new)
                if undo_exc is not None:  # best effort, reported
                    self._log.error(
                        "apply_hook_rollback_failed",
                        hook=_hook_name(undo),
                        error_type=type(undo_exc).__name__,
                    )
            return ConfigApplyError(self.path, message, hook=name)
        return None

    async def _build_derived(
        self, new: Snapshot[T], active: Active[T], changed: tuple[str, ...]
    ) -> tuple[Mapping[Derived[Any], _Held[Any]], ConfigBuildError | None]:
        """Build the derived resources this change affects, before the apply hooks run. A
        build that fails or times out refuses the change like a hook: nothing is swapped."""
        affected = self._derived.affected(changed)
        if not affected:
            return {}, None
        built, failed = await self._derived.build(
            affected, new.config, new.generation, own_cancel=self._worker_cancelled
        )
        if failed is None:
            return built, None
        derived, exc = failed
        self._log.error(
            "derived_build_failed",
            resource=derived.name,
            error_type=type(exc).__name__,
            config_hash=new.config_hash,
        )
        message = self._failure_text(f"derived resource {derived.name}", exc, active, self._active)
        return {}, ConfigBuildError(self.path, message, resource=derived.name)

    def _failure_text(self, what: str, exc: BaseException, *configs: Active[T]) -> str:
        """``what failed: Type: text``, with the secrets of these configs masked."""
        text = "timed out" if isinstance(exc, TimeoutError) else f"{exc}" or "cancelled"
        message = f"{what} failed: {type(exc).__name__}: {text}"
        for config in configs:
            message = self.policy.scrub(message, config.builtins)
        return message

    async def _call_hook(
        self, hook: ApplyHook[T], new: Snapshot[T], old: Snapshot[T]
    ) -> BaseException | None:
        """Run one hook, bounded by ``hook_timeout``; what it raised, or None.

        A `CancelledError` that is not the worker's own cancellation (the hook awaited a
        future someone else cancelled) is a hook failure like any other: swallowing the
        worker's own would keep a closing reloader running, re-raising a foreign one would
        leave its callers waiting forever.
        """
        try:
            with anyio.fail_after(self.hook_timeout):
                await hook(new, old)
        except asyncio.CancelledError as exc:
            if self._worker_cancelled():
                raise
            return exc
        except Exception as exc:  # noqa: BLE001 - any hook failure refuses the change
            return exc
        return None

    def _worker_cancelled(self) -> bool:
        """Whether a `CancelledError` just caught is the running task's own cancellation (the
        reloader closing), not a future it awaited that someone else cancelled."""
        cancelling = getattr(asyncio.current_task(), "cancelling", None)
        if cancelling is not None:  # Python >= 3.11 counts the task's own cancellations
            return bool(cancelling() > 0)
        return self._tasks is None  # 3.10: only closing the reloader cancels its worker


def _hook_name(hook: Callable[..., object]) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)
