"""`Layers`: one config from several sources - base file, overlays, the environment - as one
validated snapshot.

``HotReloader(["base.yaml", "prod.yaml"], env_prefix="HOLMES_", schema=...)`` reads every
layer, deep-merges them in order (a later layer wins; lists, scalars and ``null`` replace
whole), adds ``HOLMES_LLM__MODEL``-style variables on top, and validates the result once. Any
layer changing gives one re-read of all of them and at most one commit.

Reading is in two steps so the pure part stays pure: `read` gathers every layer's bytes into
one *bundle* (what the reloader hashes, compares and caches as last-known-good), `document`
parses and merges a bundle, remembering where each value came from (`Origin`).

Files of one Kubernetes ConfigMap volume are read through one resolution of its ``..data``
link, so a kubelet update of two keys is never seen half applied: every key comes from the same
``..<timestamp>`` generation, or the read starts again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import anyio
import msgspec

from ._errors import ConfigParseError, ConfigReadError
from ._file_source import Attachment, FileSource, read_file
from ._options import settle_seconds
from ._parsing import Format, format_for, parse_node, parse_text
from ._provenance import Document, NodePath, Origin, Parsed, merge, nest, walk_yaml, whole
from ._source import Revision, Source, Wiring, wiring_for

__all__ = ["Layer", "LayerFormat", "LayerItem", "Layers", "env_layer", "source_for"]

#: A layer's format: a config document, or ``text`` (the whole file as one string value, for a
#: certificate or a prompt; give it a place with ``at=``).
LayerFormat = Literal["yaml", "json", "toml", "text"]

#: How often a read starts again when kubelet removed the generation it was reading from.
_GENERATION_RETRIES = 10


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer: a file path (or any `Source`, an `EtcdSource` key say) and how to use it.

    ``optional``: a missing file is skipped (a missing required one is an error naming it).
    ``format`` overrides the suffix; ``text`` makes the whole file one string. ``at`` places
    the document under a dotted key path (``Layer("tls.crt", format="text", at="tls.cert")``).
    ``fallible``: when the first version is invalid with this layer and no last-known-good
    copy serves, the reloader starts without it, ``degraded`` with the error, rather than not
    at all; afterwards a bad version of it is refused like any other, and a valid one ends the
    degraded state.
    """

    source: str | os.PathLike[str] | Source
    optional: bool = False
    format: LayerFormat | None = None
    at: str | None = None
    fallible: bool = False


#: What a list of layers may hold: paths, `Layer` objects, or any `Source`.
LayerItem: TypeAlias = "str | os.PathLike[str] | Layer | Source"


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    """One layer's bytes in a bundle: ``text`` (UTF-8) or ``raw`` (not UTF-8: the parser says
    where); neither for an optional layer that is missing, or a fallible one left out of a
    degraded start (``dropped``)."""

    uri: str
    text: str | None = None
    raw: bytes | None = None
    dropped: bool = False


class _Bundle(msgspec.Struct, array_like=True, frozen=True):
    layers: list[_Entry]
    env: list[tuple[str, str]] = []


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Bundle).decode


@dataclass(frozen=True, slots=True)
class _Spec:
    source: Source
    file: FileSource | None
    optional: bool
    format: LayerFormat
    at: NodePath
    fallible: bool


class Layers:
    """An ordered list of layers plus an optional environment prefix, as one `Source`.

    Items are paths, `Layer` objects or `Source` objects; later ones win. ``env_prefix``
    (``"HOLMES_"``) adds every variable starting with it, last: the rest of the name, lower
    case, split on ``__``, is the key path (``HOLMES_LLM__MODEL`` -> ``llm.model``) and the
    value is read as YAML (``8080`` is a number, ``true`` a bool, ``[a, b]`` a list, an empty
    value the empty string). The environment is read on every re-check (``reload()``), not
    watched. ``environ`` replaces ``os.environ`` (tests). The watcher options are those of
    `FileSource`, for every layer given as a path; ``settle_ms`` is one quiet period for the
    whole list (an event of any layer starts it again), or the longest a layer's own source
    asks for if that is longer.
    """

    def __init__(
        self,
        *layers: LayerItem,
        env_prefix: str | None = None,
        environ: Mapping[str, str] | None = None,
        debounce_ms: int = 50,
        step_ms: int = 10,
        force_polling: bool | None = None,
        poll_delay_ms: int = 300,
        settle_ms: float | None = None,
    ) -> None:
        if not layers and not env_prefix:
            raise ValueError("Layers needs at least one layer or an env_prefix")
        self._settle = settle_seconds(settle_ms)
        self.settle_ms = settle_ms
        self.env_prefix = env_prefix or None
        self._environ = environ
        options = {
            "debounce_ms": debounce_ms,
            "step_ms": step_ms,
            "force_polling": force_polling,
            "poll_delay_ms": poll_delay_ms,
        }
        self._specs = [_spec(item, options) for item in layers]
        names = [s.source.uri for s in self._specs]
        if self.env_prefix:
            names.append(f"${self.env_prefix}*")
        self._uri = " + ".join(names)
        self._cache: dict[int, tuple[str | bytes, Parsed]] = {}
        self._max_text: int | None = None
        """The size cap of the last read: each layer's aliases may expand to no more text."""
        self._env_cache: tuple[list[tuple[str, str]], Parsed] | None = None
        self._empty: str | None = None
        self._last_read: tuple[list[_Entry], list[tuple[str, str]]] | None = None
        """The entries of the last read (a degraded start rebuilds the bundle from them)."""
        self.on_watch_restart: Callable[[], None] = _nothing

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def format(self) -> Format | None:
        return None

    @property
    def layers(self) -> tuple[Source, ...]:
        """The layers' sources, in order (a path became a `FileSource`)."""
        return tuple(s.source for s in self._specs)

    # -- reading ---------------------------------------------------------------------------------

    async def read(self, max_bytes: int) -> Revision:
        """Every layer's current bytes as one bundle (empty while a layer file is empty)."""
        self._max_text = max_bytes
        entries: list[_Entry | None] = [None] * len(self._specs)
        versions: list[str | None] = [None] * len(self._specs)
        for index, spec in enumerate(self._specs):
            if spec.file is None:
                entries[index], versions[index] = await _read_source(spec, max_bytes)
        self._read_files(max_bytes, entries)
        return self._bundle(entries, versions)

    def read_now(self, max_bytes: int) -> Revision:
        """`read`, for layers that are all files, without an event loop (the CLI)."""
        if any(s.file is None for s in self._specs):
            raise TypeError("read_now reads files only; use `await read()`")
        self._max_text = max_bytes
        entries: list[_Entry | None] = [None] * len(self._specs)
        self._read_files(max_bytes, entries)
        return self._bundle(entries, [None] * len(self._specs))

    def _read_files(self, max_bytes: int, entries: list[_Entry | None]) -> None:
        """Fill in the file layers' entries, every file of one ConfigMap volume from one
        ``..data`` generation: if kubelet removes the generation mid-read, start again."""
        for _ in range(_GENERATION_RETRIES):
            generations: dict[str, str | None] = {}
            try:
                for index, spec in enumerate(self._specs):
                    if spec.file is not None:
                        entries[index] = _read_file(spec, spec.file, max_bytes, generations)
            except _GenerationGone:
                continue
            return
        raise ConfigReadError(self._uri, "the ConfigMap volume kept changing while being read")

    def _bundle(self, entries: Sequence[_Entry | None], versions: Sequence[str | None]) -> Revision:
        pairs = zip(entries, self._specs, strict=True)
        done = [e if e is not None else _Entry(s.source.uri) for e, s in pairs]
        env = sorted(_env_items(self._environ_now(), self.env_prefix)) if self.env_prefix else []
        self._last_read = (done, env)
        self._empty = next((e.uri for e in done if e.text == "" or e.raw == b""), None)
        if self._empty is not None:
            return Revision(b"", None)
        version = None if all(v is None for v in versions) else ",".join(v or "-" for v in versions)
        return Revision(_encode(_Bundle(done, env)), version)

    def _environ_now(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def without_fallible(self, raw: bytes) -> tuple[bytes, tuple[str, ...]] | None:
        """The bundle ``raw`` with its ``fallible`` layers left out, and their uris; None when
        none of them is there to leave out. What a degraded start tries."""
        if raw:
            try:
                bundle = _decode(raw)
            except msgspec.DecodeError:
                return None
            entries, env = bundle.layers, bundle.env
        elif self._last_read is not None:  # a layer was empty: the read kept its entries
            entries, env = self._last_read
        else:
            return None
        if len(entries) != len(self._specs):
            return None
        kept: list[_Entry] = []
        dropped: list[str] = []
        for spec, entry in zip(self._specs, entries, strict=True):
            present = entry.text is not None or entry.raw is not None
            if spec.fallible and present:
                kept.append(_Entry(entry.uri, dropped=True))
                dropped.append(entry.uri)
            else:
                kept.append(entry)
        if not dropped or any(e.text == "" or e.raw == b"" for e in kept):
            return None
        return _encode(_Bundle(kept, env)), tuple(dropped)

    # -- parsing and merging (pure) ------------------------------------------------------------

    def document(self, raw: bytes) -> Document:
        """Parse and merge a bundle `read` returned: raises `ConfigParseError` naming the layer
        (and line) at fault. Layers whose bytes did not change are not parsed again."""
        if not raw:
            where = self._empty or self._uri
            raise ConfigParseError(where, "the document is empty", line=1, column=1)
        try:
            bundle = _decode(raw)
        except msgspec.DecodeError:
            raise ConfigParseError(self._uri, "not a layered-config bundle") from None
        if len(bundle.layers) != len(self._specs):
            raise ConfigParseError(self._uri, "the bundle has a different set of layers")
        parsed: list[Parsed | None] = []
        for index, (spec, entry) in enumerate(zip(self._specs, bundle.layers, strict=True)):
            content = entry.text if entry.text is not None else entry.raw
            if content is None:
                parsed.append(None)  # an optional layer that is missing, or a dropped one
                continue
            cached = self._cache.get(index)
            if cached is None or cached[0] != content:
                cached = (content, _parse_layer(spec, content, self._max_text))
                self._cache[index] = cached
            parsed.append(cached[1])
        env: Parsed | None = None
        if self.env_prefix:
            if self._env_cache is None or self._env_cache[0] != bundle.env:
                env_parsed = env_layer(bundle.env, self.env_prefix, max_text=self._max_text)
                self._env_cache = (bundle.env, env_parsed)
            env = self._env_cache[1]
        dropped = tuple(entry.dropped for entry in bundle.layers)
        return self._combine(parsed, dropped, env)

    def _combine(
        self, parsed: Sequence[Parsed | None], dropped: Sequence[bool], env: Parsed | None
    ) -> Document:
        """Merge the layers (None: missing, or ``dropped`` by a degraded start) and the
        environment. A subclass that merges as some service of its own did overrides this."""
        layers = [p for p in parsed if p is not None]
        return merge(layers if env is None else [*layers, env], self._uri)

    # -- watching --------------------------------------------------------------------------------

    @property
    def attach(self) -> Callable[[Callable[[str], None], Callable[[], None]], _Attachments] | None:
        """Subscribe every file layer to the watcher hub (no task), when all layers are files;
        None otherwise (the reloader then runs `watch` in a task)."""
        if any(s.file is None for s in self._specs):
            return None
        return self._attach

    def _attach(
        self, notify: Callable[[str], None], on_restart: Callable[[], None]
    ) -> _Attachments:
        return _Attachments([s.file.attach(notify, on_restart) for s in self._specs if s.file])

    async def watch(self, notify: Callable[[str], None], ready: Callable[[], None]) -> None:
        """Watch every layer: files through the hub, other sources with their own watch."""
        files = _Attachments(
            [s.file.attach(notify, self.on_watch_restart) for s in self._specs if s.file]
        )
        others = [s.source for s in self._specs if s.file is None]
        waiting = {id(s) for s in others}
        files_ready = False

        def check() -> None:
            if files_ready and not waiting:
                ready()

        def one_ready(source: Source) -> Callable[[], None]:
            def done() -> None:
                waiting.discard(id(source))
                check()

            return done

        try:
            async with anyio.create_task_group() as group:
                for source in others:
                    group.start_soon(source.watch, notify, one_ready(source))
                await asyncio.shield(files.ready)
                files_ready = True
                check()
        finally:
            with anyio.CancelScope(shield=True):
                await files.detach()

    def warnings(self) -> list[tuple[str, str]]:
        """Known ways a layer will not be kept current (a ``subPath`` mount, say)."""
        found: list[tuple[str, str]] = []
        for spec in self._specs:
            more = wiring_for(spec.source).warnings()
            found.extend((event, f"{spec.source.uri}: {detail}") for event, detail in more)
        return found

    def _wiring(self) -> Wiring:
        # An empty file is most often an in-place write caught between truncate and write.
        fallible = any(s.fallible for s in self._specs)
        return Wiring(
            attach=self.attach,
            decode=self.document,
            warnings=self.warnings,
            empty_may_be_mid_write=True,
            settle=max([self._settle, *(wiring_for(s.source).settle for s in self._specs)]),
            degrade=self.without_fallible if fallible else None,
        )

    def __repr__(self) -> str:
        return f"Layers({self._uri!r})"


class _Attachments:
    """Several hub subscriptions as one: ready once all are, detached together."""

    def __init__(self, parts: list[Attachment]) -> None:
        self.parts = parts
        self.ready: asyncio.Future[None] = asyncio.ensure_future(_all([p.ready for p in parts]))

    @property
    def joined(self) -> asyncio.Future[None]:
        """Layers wait for every file to be watched (``ready``), busy hub or not."""
        return self.ready

    async def detach(self) -> None:
        self.ready.cancel()
        for part in self.parts:
            await part.detach()


async def _all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        await asyncio.shield(future)


class _GenerationGone(Exception):
    """The ``..data`` generation a read went through was removed: read everything again."""


def _spec(item: LayerItem, file_options: dict[str, Any]) -> _Spec:
    layer = item if isinstance(item, Layer) else Layer(item)
    given = layer.source
    source: Source
    if isinstance(given, (str, os.PathLike)):
        source = FileSource(given, **file_options)
    elif isinstance(given, Source):
        source = given
    else:
        raise TypeError(f"a layer is a path, a Layer or a hotreload.Source, not {given!r}")
    fmt: LayerFormat = layer.format or source.format or format_for(source.uri)
    at = tuple(layer.at.split(".")) if layer.at else ()
    file = source if isinstance(source, FileSource) else None
    return _Spec(source, file, layer.optional, fmt, at, layer.fallible)


def _generation(directory: str) -> str | None:
    """The ``..<timestamp>`` directory ``..data`` points at now, or None (not a ConfigMap)."""
    try:
        return os.path.join(directory, os.readlink(os.path.join(directory, "..data")))
    except OSError:
        return None


def _read_file(
    spec: _Spec, file: FileSource, max_bytes: int, generations: dict[str, str | None]
) -> _Entry | None:
    directory, name = os.path.split(file.resolved)
    if directory not in generations:
        generations[directory] = _generation(directory)
    generation = generations[directory]
    path = file.resolved
    if generation is not None and _links_through_data(file.resolved, name):
        path = os.path.join(generation, name)
    try:
        data = read_file(path, max_bytes, file.uri)
    except ConfigReadError as exc:
        if exc.reason != "missing":
            raise
        if path != file.resolved and _generation(directory) != generation:
            raise _GenerationGone from None
        if spec.optional:
            return None
        raise
    try:
        return _Entry(file.uri, text=data.decode("utf-8"))
    except UnicodeDecodeError:
        return _Entry(file.uri, raw=data)


def _links_through_data(path: str, name: str) -> bool:
    """kubelet's layout: the visible key is a symlink to ``..data/<key>``."""
    try:
        return os.readlink(path) == f"..data/{name}"
    except OSError:
        return False


async def _read_source(spec: _Spec, max_bytes: int) -> tuple[_Entry | None, str | None]:
    try:
        revision = await spec.source.read(max_bytes)
    except ConfigReadError as exc:
        if spec.optional and exc.reason == "missing":
            return None, None
        raise
    try:
        return _Entry(spec.source.uri, text=revision.content.decode("utf-8")), revision.version
    except UnicodeDecodeError:
        return _Entry(spec.source.uri, raw=revision.content), revision.version


def _parse_layer(spec: _Spec, content: str | bytes, max_text: int | None) -> Parsed:
    uri = spec.source.uri
    raw = content.encode() if isinstance(content, str) else content
    if spec.format == "text":
        if isinstance(content, bytes):
            parse_node(content, "yaml", uri)  # raises: says where the bad UTF-8 is
        return nest(whole(content, Origin(uri, 1, 1)), spec.at)
    data, node = parse_node(raw, spec.format, uri, max_text=max_text)
    parsed = whole(data, Origin(uri)) if node is None else walk_yaml(data, node, uri)
    return nest(parsed, spec.at)


def _env_items(environ: Mapping[str, str], prefix: str | None) -> Iterable[tuple[str, str]]:
    if not prefix:
        return []
    return [(k, v) for k, v in environ.items() if k.startswith(prefix) and len(k) > len(prefix)]


def env_layer(
    items: Iterable[tuple[str, str]], prefix: str, *, max_text: int | None = None
) -> Parsed:
    """Variables as a layer: ``PREFIX_A__B=v`` is ``{"a": {"b": v}}``, ``v`` read as YAML.

    Each value is read under the limits a file is (``max_text``: the size cap), so a value
    a file would be refused for (an alias bomb, a key given twice) raises `ConfigParseError`
    naming the variable (``$PREFIX_A__B``).

    Sorted by name, so ``HOLMES_LLM`` and ``HOLMES_LLM__MODEL`` always resolve the same way
    (the nested one wins). Only leaves get an origin: the maps above them are the files'.
    """
    data: dict[str, Any] = {}
    values: dict[NodePath, Origin] = {}
    for name, text in sorted(items):
        path = tuple(p for p in name[len(prefix) :].lower().split("__"))
        if not all(path):
            continue  # HOLMES___X, HOLMES_A__: no key to put it under
        node = data
        for depth, key in enumerate(path[:-1]):
            if not isinstance(node.get(key), dict):
                node[key] = {}
                values.pop(path[: depth + 1], None)  # HOLMES_LLM gave way to HOLMES_LLM__X
            node = node[key]
        node[path[-1]] = _scalar(text, f"${name}", max_text)
        values[path] = Origin(f"${name}")
    return Parsed(data, values)


def _scalar(text: str, source: str, max_text: int | None) -> Any:
    """A variable's value read as YAML (``8080`` -> 8080, ``true`` -> True) by the parser
    files go through, with its limits; text that is not valid YAML, or an empty value, stays
    the string it is."""
    return parse_text(text, source, max_text=max_text)


def _nothing() -> None:
    pass


def source_for(
    source: str | os.PathLike[str] | Sequence[LayerItem] | Source | None,
    *,
    env_prefix: str | None,
) -> Source:
    """The source a `HotReloader` reads: a `Source` as given, one path as a `FileSource`
    (the fast path), anything else (several layers, ``env_prefix``) as `Layers`."""
    if isinstance(source, Source):
        if env_prefix and not isinstance(source, FileSource):
            raise TypeError("env_prefix goes with paths; for a source, give Layers(env_prefix=...)")
        if env_prefix:  # one file source plus the environment: still two layers
            return Layers(source, env_prefix=env_prefix)
        return source
    if source is None and not env_prefix:
        raise TypeError("give HotReloader a source: a path, a list of layers or a Source")
    if isinstance(source, (str, os.PathLike)) and not env_prefix:  # one file: the fast path
        return FileSource(source)
    if isinstance(source, (str, os.PathLike)):
        return Layers(source, env_prefix=env_prefix)
    if source is not None and not isinstance(source, Sequence):
        raise TypeError(
            f"source must be a path, a list of layers or a hotreload.Source, got {source!r}"
        )
    return Layers(*(source or ()), env_prefix=env_prefix)
