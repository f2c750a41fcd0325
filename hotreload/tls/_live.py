"""`ServerTLS` and `ClientTLS`: an `ssl.SSLContext` kept current by a `HotReloader`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .._derive import Derived
from .._layers import Layer, Layers
from .._logging import ContextLogger
from .._options import Fields
from .._reloader import HotReloader
from .._snapshot import Snapshot
from ._checks import (
    CertificateInfo,
    TLSCertificateError,
    TLSFiles,
    check_pair,
    client_context,
    load_pair,
    parse_bundle,
)

__all__ = ["ClientTLS", "Generation", "ServerTLS", "servers"]

R = TypeVar("R")
PathLike = str | os.PathLike[str]
Configure = Callable[[ssl.SSLContext], None]
#: ServerTLS/ClientTLS options that belong to the file layers' watcher, not the reloader.
_WATCH_OPTIONS = ("debounce_ms", "step_ms", "force_polling", "poll_delay_ms")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _keep(_: object) -> None:
    """An `ssl.SSLContext` has nothing to close: connections made from it hold it alive."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One validated pair in force: its own context (never modified after it is built) and
    the leaf's info (``None`` for a client context without a certificate)."""

    context: ssl.SSLContext
    info: CertificateInfo | None


class _Files:
    """The reloader over the files: cert, key and CA read as ONE bundle (one ``..data``
    generation of each volume), validated, and turned into a `Generation` inside the commit."""

    def __init__(
        self,
        kind: str,
        items: list[tuple[str, PathLike | None]],
        *,
        name: str,
        registry: CollectorRegistry | None,
        namespace: str,
        warn_days: float,
        clock: Callable[[], datetime.datetime],
        options: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.paths = {field: os.fspath(p) for field, p in items if p is not None}
        layers = [Layer(p, format="text", at=f) for f, p in self.paths.items()]
        options = dict(options)
        watching = {k: options.pop(k) for k in _WATCH_OPTIONS if k in options}
        self.layers = Layers(*layers, **watching)
        self.warn_days = warn_days
        self.clock = clock
        self.max_bytes: int = options.get("max_bytes", 1 << 20)
        self.logged: set[tuple[str, str]] = set()
        self.log = ContextLogger("hotreload.tls", config=name)
        self.reloader: HotReloader[TLSFiles] = HotReloader(
            schema=TLSFiles,
            source=self.layers,
            name=name,
            registry=registry,
            namespace=namespace,
            validators=[self.check],
            fields=Fields(secrets=["key"]),
            log_level=None,
            **options,
        )

    def check(self, files: TLSFiles) -> None:
        """The validator: raises `TLSCertificateError` naming the file at fault."""
        now = self.clock()
        if "cert" in self.paths:
            info = check_pair(
                files,
                cert_source=self.paths["cert"],
                key_source=self.paths["key"],
                ca_source=self.paths.get("ca"),
                now=now,
            )
            self.warn(info, now)
        if "ca" in self.paths:
            parse_bundle(files.ca, self.paths["ca"], "ca")

    def warn(self, info: CertificateInfo, now: datetime.datetime) -> None:
        """``tls_certificate_expiring``, once per certificate, under ``warn_days`` left."""
        days = info.days_left(now)
        if days < self.warn_days and ("expiring", info.serial) not in self.logged:
            self.logged.add(("expiring", info.serial))
            self.log.warning(
                "tls_certificate_expiring",
                serial=info.serial,
                not_after=info.not_after.isoformat(),
                days_left=round(days, 2),
                source=self.paths.get("cert"),
            )

    def read_now(self) -> TLSFiles:
        """One synchronous read and check, before the reloader runs (server factories)."""
        document = self.layers.document(self.layers.read_now(self.max_bytes).content)
        files = msgspec.convert(document.data, TLSFiles, strict=True)
        self.check(files)
        return files

    def info_of(self, files: TLSFiles) -> CertificateInfo | None:
        if "cert" not in self.paths:
            return None
        return check_pair(
            files,
            cert_source=self.paths["cert"],
            key_source=self.paths["key"],
            ca_source=None,
            now=self.clock(),
        )


class _Live:
    """What the server and client share: the reloader's life and the derived generation."""

    _files: _Files
    _derived: Derived[Generation]
    _preloaded: Generation | None = None
    _background: asyncio.Task[None] | None = None

    @property
    def reloader(self) -> HotReloader[TLSFiles]:
        """The engine underneath: ``snapshot``, ``wait_for_generation``, ``outcomes()``,
        ``reload()``; give it to ``hotreload.asgi`` for ``/-/config`` and ``/metrics``."""
        return self._files.reloader

    @property
    def in_force(self) -> Generation:
        """The pair in force (a plain read: safe from any thread)."""
        try:
            return self._derived.current
        except AttributeError:
            if self._preloaded is None:
                raise RuntimeError("not loaded yet: use `async with` or start()") from None
            return self._preloaded

    @property
    def info(self) -> CertificateInfo | None:
        return self.in_force.info

    async def __aenter__(self: _L) -> _L:
        await self._files.reloader.__aenter__()
        _collector_for(self._files.reloader.registry, self._namespace).add(self)
        _open.append(self)
        self._expiry = asyncio.get_running_loop().create_task(
            self._watch_expiry(), name="hotreload-tls-expiry"
        )
        return self

    _expiry: asyncio.Task[None] | None = None

    def check_expiry(self) -> float | None:
        """Log ``tls_certificate_expiring`` (a warning, once per certificate) when the one in
        force has fewer than ``warn_days`` left, and ``tls_certificate_expired`` (an error,
        once) when it has expired in force; the seconds until the next of those moments
        (``None``: none left). Runs by itself while open: at those moments, and on each
        change."""
        info = self.info
        if info is None:
            return None
        files, now = self._files, self._files.clock()
        warn_at = info.not_after - datetime.timedelta(days=files.warn_days)
        if now >= info.not_after:
            if ("expired", info.serial) not in files.logged:
                files.logged.add(("expired", info.serial))
                files.log.error(
                    "tls_certificate_expired",
                    serial=info.serial,
                    not_after=info.not_after.isoformat(),
                    source=files.paths.get("cert"),
                )
            return None
        if now >= warn_at:
            files.warn(info, now)
            return (info.not_after - now).total_seconds()
        return (warn_at - now).total_seconds()

    async def _watch_expiry(self) -> None:
        changes = self._files.reloader.changes()
        # asyncio.wait, not wait_for: on 3.10/3.11 wait_for swallows a cancel that lands in the
        # same loop turn as the change it waits for, and this task would outlive `__aexit__`.
        change: asyncio.Task[Snapshot[TLSFiles]] | None = None
        try:
            while True:
                delay = self.check_expiry()
                # At most an hour: a suspended VM or a clock step is caught within the hour.
                timeout = 3600.0 if delay is None else min(max(delay, 0.0) + 0.001, 3600.0)
                waiting = change or asyncio.ensure_future(anext(changes))
                done, _ = await asyncio.wait({waiting}, timeout=timeout)
                change = None if done else waiting
                if done:
                    waiting.result()
        except StopAsyncIteration:
            return  # the reloader closed
        finally:
            if change is not None:
                change.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _collector_for(self._files.reloader.registry, self._namespace).remove(self)
        with contextlib.suppress(ValueError):
            _open.remove(self)
        task, self._expiry = self._expiry, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._files.reloader.__aexit__(exc_type, exc, tb)

    _namespace: str = "hotreload"

    def start(self) -> None:
        """Load now, synchronously (a bad pair raises `TLSCertificateError`: fail fast), and
        run the reloader in a background task of the running loop until the loop ends or
        `aclose` is awaited. For server hooks that are plain functions called on the server's
        loop (uvicorn's ``ssl_context_factory``, hypercorn's ``create_ssl_context``)."""
        loop = asyncio.get_running_loop()
        files = self._files.read_now()
        self._preloaded = self._build(files)
        started = threading.Event()

        async def run() -> None:
            try:
                async with self:
                    started.set()
                    await asyncio.Event().wait()  # until cancelled (loop shutdown, aclose)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged: the preloaded pair stays
                self._files.log.error("tls_reloader_failed", error=str(exc))

        self._background = loop.create_task(run(), name=f"hotreload-tls-{self._files.kind}")

    async def aclose(self) -> None:
        """Stop what `start` started."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _build(self, files: TLSFiles) -> Generation:
        raise NotImplementedError


_L = TypeVar("_L", bound=_Live)


class ServerTLS(_Live):
    """A server `ssl.SSLContext` (``context``) whose certificate follows the files.

    ``cert`` (the chain, leaf first), ``key`` and the optional ``ca`` (client CAs: mTLS, with
    ``verify_mode`` ``CERT_REQUIRED`` unless given) are read as one bundle, so a kubelet swap of
    ``tls.crt`` and ``tls.key`` is one generation and a key is never paired with another
    generation's certificate. A pair is checked before it goes into force (see
    `TLSCertificateError`); a bad one leaves the previous pair serving, counted in
    ``config_reload_failures_total{reason="tls_..."}`` and logged. ``warn_days``: log
    ``tls_certificate_expiring`` when a new certificate has fewer days left. ``configure`` is
    applied to every context built (ciphers, ALPN, minimum version). The watch keywords
    (``debounce_ms``, ``step_ms``, ``force_polling``, ``poll_delay_ms``) go to the files'
    `Layers`, the others (``poll_interval``, ``max_bytes`` ...) to the `HotReloader`.

    ``context`` never changes: give it to the server once. Its ``sni_callback`` hands every
    new handshake the context of the generation in force (``current``); a connection keeps
    the certificate it was made with.
    """

    def __init__(
        self,
        cert: PathLike,
        key: PathLike,
        ca: PathLike | None = None,
        *,
        verify_mode: ssl.VerifyMode | None = None,
        configure: Configure | None = None,
        name: str = "tls",
        registry: CollectorRegistry | None = None,
        namespace: str = "hotreload",
        warn_days: float = 30.0,
        clock: Callable[[], datetime.datetime] = _utcnow,
        **options: Any,
    ) -> None:
        self._namespace = namespace
        self._configure = configure
        self.verify_mode = (
            verify_mode
            if verify_mode is not None
            else (ssl.CERT_REQUIRED if ca is not None else ssl.CERT_NONE)
        )
        self._files = _Files(
            "server",
            [("cert", cert), ("key", key), ("ca", ca)],
            name=name,
            registry=registry,
            namespace=namespace,
            warn_days=warn_days,
            clock=clock,
            options=options,
        )
        self._derived = self._files.reloader.derive(
            self._build, on=(), close=_keep, name="ssl_context"
        )
        self.context = self._new_context()
        self.context.sni_callback = self._select

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = self.verify_mode
        if self._configure is not None:
            self._configure(context)
        return context

    def _select(self, connection: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        # Runs in OpenSSL's ClientHello (servername) callback, which OpenSSL calls for every
        # handshake, with or without SNI: the connection takes the generation's SSL_CTX, and
        # with it that generation's certificate, key and client-CA store, all or nothing.
        connection.context = self.in_force.context

    def _build(self, files: TLSFiles) -> Generation:
        context = self._new_context()
        load_pair(context, files.cert, files.key)
        if files.ca:
            context.load_verify_locations(cadata=files.ca)
        return Generation(context, self._files.info_of(files))

    @property
    def current(self) -> ssl.SSLContext:
        """The context of the generation in force (what the next handshake gets)."""
        return self.in_force.context

    def uvicorn_factory(self, config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """uvicorn's ``ssl_context_factory`` for a `ServerTLS` already open on uvicorn's loop
        (``uvicorn.Server(Config(..., ssl_context_factory=tls.uvicorn_factory)).serve()``)."""
        return self.context


class ClientTLS(_Live):
    """A client `ssl.SSLContext` that trusts exactly the CA bundle in ``ca`` (and presents
    ``cert``/``key`` for mTLS, if given), rebuilt whenever the files change.

    A client context has no per-handshake hook, and an HTTP client keeps the context it was
    made with, so rotation is a new context per generation (``context``), and `derive` keeps
    a client built from it in step: ``client = tls.derive(lambda ctx: httpx.AsyncClient(
    verify=ctx))``; ``client.current`` is the client in force, the old one is closed once its
    requests are done. A CA dropped from the bundle is no longer trusted by new clients (a
    context's trust store can only grow: ``load_verify_locations`` never removes a CA).
    """

    def __init__(
        self,
        ca: PathLike,
        *,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        configure: Configure | None = None,
        name: str = "tls-client",
        registry: CollectorRegistry | None = None,
        namespace: str = "hotreload",
        warn_days: float = 30.0,
        clock: Callable[[], datetime.datetime] = _utcnow,
        **options: Any,
    ) -> None:
        if (cert is None) != (key is None):
            raise ValueError("give both cert and key, or neither")
        self._namespace = namespace
        self._configure = configure
        self._files = _Files(
            "client",
            [("cert", cert), ("key", key), ("ca", ca)],
            name=name,
            registry=registry,
            namespace=namespace,
            warn_days=warn_days,
            clock=clock,
            options=options,
        )
        self._derived = self._files.reloader.derive(
            self._build, on=(), close=_keep, name="ssl_context"
        )

    def _build(self, files: TLSFiles) -> Generation:
        context = client_context(
            files.ca, cert=files.cert, key=files.key, configure=self._configure
        )
        return Generation(context, self._files.info_of(files))

    @property
    def context(self) -> ssl.SSLContext:
        """The client context of the generation in force."""
        return self.in_force.context

    def derive(
        self,
        build: Callable[[ssl.SSLContext], R],
        *,
        close: Callable[[R], object] | None = None,
        name: str | None = None,
    ) -> Derived[R]:
        """Keep ``build(context)`` (an HTTP client) in step with the CA bundle (see
        `HotReloader.derive`: built inside the commit, the old one closed when unpinned)."""

        def from_files(files: TLSFiles) -> R:
            return build(self._build(files).context)

        return self._files.reloader.derive(from_files, on=(), close=close, name=name)


#: Every `ServerTLS`/`ClientTLS` open in this process, in the order they were opened.
_open: list[_Live] = []


def servers() -> tuple[ServerTLS, ...]:
    """The `ServerTLS` objects open in this process: how an app served by ``uvicorn.run(...,
    ssl_context_factory=UvicornTLS(...), workers=N)`` reaches its worker's one (for
    ``HotReloadAdmin(servers()[0].reloader)``, say), which uvicorn made, not the app."""
    return tuple(live for live in _open if isinstance(live, ServerTLS))


# -- the expiry gauge --------------------------------------------------------------------------


class _Collector(Collector):
    """``<ns>_tls_certificate_not_after_seconds{config}``: the leaf's expiry (Unix time) of the
    pair in force, one series per open `ServerTLS`/`ClientTLS` with a certificate."""

    def __init__(self, namespace: str) -> None:
        self.name = f"{namespace}_tls_certificate_not_after_seconds"
        self.live: weakref.WeakSet[_Live] = weakref.WeakSet()

    def add(self, live: _Live) -> None:
        self.live.add(live)

    def remove(self, live: _Live) -> None:
        self.live.discard(live)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self.name,
            "Expiry (not_after, Unix time) of the TLS certificate in force",
            labels=["config"],
        )

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = self._family()
        for live in list(self.live):
            try:
                info = live.info
            except RuntimeError:
                continue
            if info is not None:
                family.add_metric([live.reloader.name], info.not_after.timestamp())
        return [family]


_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Collector]] = (
    weakref.WeakKeyDictionary()
)


def _collector_for(registry: CollectorRegistry | None, namespace: str) -> _Collector:
    registry = REGISTRY if registry is None else registry
    with _lock:
        per_ns = _collectors.setdefault(registry, {})
        found = per_ns.get(namespace)
        if found is None:
            found = _Collector(namespace)
            registry.register(found)
            per_ns[namespace] = found
        return found


__all__ += ["TLSCertificateError"]
