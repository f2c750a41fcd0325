"""Lease-based election of one canary per config name (issue 26).

A contender grants itself an etcd lease, keeps it alive, and campaigns by creating
``<prefix>/<name>/canary`` with that lease in a transaction that fails when the key exists.
The winner is the canary; the others watch the key and campaign again when it goes (its holder
resigned, or its lease expired). A contender is canary only while its lease is surely alive:
it counts the lease's TTL from before the request that last refreshed it, so when etcd stops
answering it stops claiming before etcd can let anyone else in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from collections.abc import Callable, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from ._backoff import backoff_delay
from ._etcd_client import Compacted, EtcdClient, EtcdError, b64, describe, to_int
from ._logging import ContextLogger

if TYPE_CHECKING:
    import httpx

__all__ = ["Election", "ElectionError"]


class ElectionError(Exception):
    """The lease is gone or ran out before etcd refreshed it: this contender is not canary."""


class Election:
    """One contender, ``identity``, for the canary of config ``name``; `start` it, `close` it.

    ``ttl``: the lease's seconds (etcd's whole seconds, >= 1); it is refreshed every third of
    it. ``on_change(is_canary)`` is called on the loop at each change. The etcd options are
    `EtcdSource`'s.
    """

    def __init__(
        self,
        name: str,
        identity: str,
        *,
        prefix: str = "/hotreload",
        ttl: int = 5,
        on_change: Callable[[bool], None] | None = None,
        endpoints: Sequence[str] = ("127.0.0.1:2379",),
        ca_file: str | PathLike[str] | None = None,
        cert_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"the config name must be non-empty, without '/': {name!r}")
        if not identity:
            raise ValueError("identity must not be empty")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise ValueError(f"ttl is whole seconds >= 1, got {ttl!r}")
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("min_backoff must be > 0, max_backoff >= min_backoff")
        self._etcd = EtcdClient(
            endpoints,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            user=user,
            password=password,
            timeout=timeout,
        )
        self.name = name
        self.identity = identity
        self.key = f"{prefix.rstrip('/')}/{name}/canary".encode()
        self._ttl = ttl
        self._on_change = on_change
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._log = ContextLogger("hotreload.election", config=name, identity=identity)
        self._canary = False
        self._holder: str | None = None
        self._lease = 0  # the lease this contender holds now (0: none)
        self._deadline = -math.inf  # until when that lease is surely alive (loop time)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Election({self.key.decode(errors='replace')!r}, {self.identity!r}, {self._etcd!r})"

    @property
    def is_canary(self) -> bool:
        return self._canary

    @property
    def holder(self) -> str | None:
        """The identity of the canary as last seen (None: none seen, or etcd lost)."""
        return self._holder

    async def wait_for(self, canary: bool = True) -> None:
        """Return once `is_canary` is ``canary``."""
        await self.wait_until(lambda: self._canary == canary)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked at each change of `is_canary`/`holder`."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def start(self) -> None:
        """Start campaigning (on the running loop); idempotent."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Resign: stop claiming, then revoke the lease so another contender takes over now."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set(canary=False, holder=None)
        lease, self._lease = self._lease, 0
        if lease:
            try:
                async with self._etcd.new_http() as http:
                    await self._etcd.request(http, "/v3/lease/revoke", {"ID": lease})
            except EtcdError as exc:  # it expires on its own within ttl
                self._log.warning("canary_lease_not_revoked", error=str(exc))

    async def __aenter__(self) -> Election:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the campaign ----------------------------------------------------------------------

    async def _run(self) -> NoReturn:
        failures = 0
        async with self._etcd.new_http() as http:
            while True:
                try:
                    await self._session(http)
                except Exception as exc:  # noqa: BLE001 - whatever broke, start over
                    self._set(canary=False, holder=None)
                    failures += 1
                    delay = backoff_delay(
                        failures, self._min_backoff, self._max_backoff, jitter=True
                    )
                    log = self._log.warning if failures % 30 == 1 else self._log.debug
                    log("canary_session_lost", error=describe(exc), retry_in_s=round(delay, 3))
                    await asyncio.sleep(delay)
                else:  # pragma: no cover - a session only ends by raising
                    failures = 0

    async def _session(self, http: httpx.AsyncClient) -> None:
        """One lease: keep it alive and campaign with it until either fails (both raise)."""
        sent = anyio.current_time()
        reply = await self._etcd.request(http, "/v3/lease/grant", {"TTL": self._ttl})
        lease, ttl = to_int(reply.get("ID")), to_int(reply.get("TTL"))
        if not lease or ttl <= 0:
            raise ElectionError(f"etcd granted no lease: {reply.get('error') or reply}")
        self._lease, self._deadline = lease, sent + ttl
        tasks = [
            asyncio.ensure_future(self._keep_alive(http, lease, sent + ttl)),
            asyncio.ensure_future(self._campaign(http, lease)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        except Exception:
            self._lease = 0  # expired or out of reach: nothing to revoke
            raise
        finally:  # on close() too, which then revokes the lease
            self._set(canary=False, holder=None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_alive(self, http: httpx.AsyncClient, lease: int, deadline: float) -> NoReturn:
        """Refresh the lease every third of its TTL; raise once it may have run out."""
        failures = 0
        refreshed = anyio.current_time()
        while True:
            wait = self._ttl / 3 if not failures else self._min_backoff * failures
            await asyncio.sleep(max(0.0, min(refreshed + wait, deadline) - anyio.current_time()))
            sent = anyio.current_time()
            if sent >= deadline:
                raise ElectionError("the lease ran out before etcd refreshed it")
            try:
                with anyio.fail_after(deadline - sent):
                    reply = await self._etcd.request(http, "/v3/lease/keepalive", {"ID": lease})
            except TimeoutError:
                raise ElectionError("the lease ran out before etcd refreshed it") from None
            except EtcdError as exc:
                failures += 1
                self._log.debug("canary_keepalive_failed", error=str(exc))
                refreshed = sent
                continue
            ttl = to_int((reply.get("result") or reply).get("TTL"))
            if ttl <= 0:
                raise ElectionError("etcd says the lease expired")
            failures, refreshed, deadline = 0, sent, sent + ttl
            self._deadline = deadline
            self._log.debug("canary_lease_refreshed", ttl_s=ttl)

    async def _campaign(self, http: httpx.AsyncClient, lease: int) -> NoReturn:
        """Create the key with our lease, or learn who holds it; watch until it goes."""
        key = b64(self.key)
        body = {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
            "success": [
                {"request_put": {"key": key, "value": b64(self.identity.encode()), "lease": lease}}
            ],
            "failure": [{"request_range": {"key": key}}],
        }
        failures = 0
        while True:
            try:
                reply = await self._etcd.request(http, "/v3/kv/txn", body)
                revision = to_int(reply.get("header", {}).get("revision"))
                if reply.get("succeeded"):
                    self._set(canary=self._alive(), holder=self.identity)
                else:
                    responses = reply.get("responses") or [{}]
                    kvs = responses[0].get("response_range", {}).get("kvs") or []
                    if not kvs:
                        continue  # gone between the compare and now: campaign again
                    self._seen(kvs[0], lease)
                failures = 0
                await self._watch_until_gone(http, revision + 1, lease)
            except (EtcdError, Compacted) as exc:
                failures += 1
                delay = backoff_delay(failures, self._min_backoff, self._max_backoff, jitter=True)
                self._log.debug("canary_watch_lost", error=describe(exc), retry_in_s=delay)
                self._etcd.preferred = (self._etcd.preferred + 1) % len(self._etcd.endpoints)
                await asyncio.sleep(delay)

    async def _watch_until_gone(self, http: httpx.AsyncClient, start: int, lease: int) -> None:
        """Follow the key from ``start``; return when it is deleted (raise when the watch
        breaks: the campaign then asks etcd again)."""
        endpoint = self._etcd.endpoints[self._etcd.preferred]
        create = {"key": b64(self.key), "start_revision": str(start)}
        stream = self._etcd.watch_stream(http, endpoint, create)
        with anyio.CancelScope(deadline=anyio.current_time() + self._etcd.timeout) as scope:
            async with contextlib.aclosing(stream):
                async for result in stream:
                    if result.get("created"):
                        scope.deadline = math.inf
                    for event in result.get("events") or []:
                        if event.get("type") == "DELETE":
                            self._set(canary=False, holder=None)
                            return
                        self._seen(event.get("kv", {}), lease)
        if scope.cancelled_caught:
            raise EtcdError(f"etcd did not confirm the watch within {self._etcd.timeout} s")
        raise EtcdError("the watch stream ended", elsewhere=True)

    def _seen(self, kv: dict[str, Any], lease: int) -> None:
        holder = base64.b64decode(kv.get("value", "")).decode(errors="replace")
        self._set(canary=to_int(kv.get("lease")) == lease and self._alive(), holder=holder)

    def _alive(self) -> bool:
        """Our lease is surely alive now (the keep-alive ends the session soon otherwise)."""
        return anyio.current_time() < self._deadline

    def _set(self, *, canary: bool, holder: str | None) -> None:
        if (canary, holder) == (self._canary, self._holder):
            return
        self._changed.set()
        self._holder = holder
        if canary == self._canary:
            return
        self._canary = canary
        if canary:
            self._log.info("canary_elected")
        else:
            self._log.info("canary_resigned", holder=holder)
        if self._on_change is not None:
            self._on_change(canary)
