"""The pure, synchronous part of a reload: bytes in, a verdict and a candidate out.

read (size cap) → sha256 → unchanged shortcut → parse → convert (``msgspec.convert``, strict,
or a pydantic model's validation: `hotreload._schema`) → unknown keys (named, or refused when
``strict``) → restart-required retention → validators → canonical hash. No I/O but
`Pipeline.read`, no event loop, no clock: every step is testable on its own and the reloader
stays the only writer.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import msgspec
import yaml

from ._diff import changed_paths, get_path, retain
from ._errors import ConfigError, ConfigReadError, ConfigRefusedError, ConfigValidationError
from ._fields import FieldPolicy, Path, format_path
from ._outcome import ReloadResult
from ._parsing import Format, locate_nodes, parse_node
from ._provenance import Document, Origin, Parsed, dotted, walk_yaml, whole
from ._schema import RICH, Schema, schema_for
from ._snapshot import canonical_json
from ._unknown import UnknownKey, UnknownKeys, describe, find_unknown

__all__ = [
    "Active",
    "Evaluation",
    "Pipeline",
    "Validator",
    "result_for",
    "sha256_hex",
]

T = TypeVar("T")
Validator = Callable[[T], object]


@dataclass(frozen=True, slots=True)
class Active(Generic[T]):
    """A validated config with what the pipeline needs to compare the next version to it."""

    config: T
    builtins: Any
    config_hash: str
    content_sha256: str
    document: Document | None = field(default=None, compare=False)
    """A layered source's merged document, with where each value came from."""
    raw: bytes | None = field(default=None, compare=False, repr=False)
    """A single file's bytes: its origins are worked out from them only when asked for
    (``explain``), so the config in force keeps no second, parsed copy of itself."""
    unknown: tuple[UnknownKey, ...] = field(default=(), compare=False)
    """Keys of the document the schema does not declare (only when it allows them)."""
    encoded: bytes = field(default=b"", compare=False, repr=False)
    """The canonical encoding ``config_hash`` is the hash of: made once per version, and read
    again (not remade) when the next version is compared with this one."""


@dataclass(frozen=True, slots=True)
class Evaluation(Generic[T]):
    """The verdict on one version of the source. ``candidate`` is set for ``config_changed``."""

    result: ReloadResult
    content_sha256: str
    candidate: Active[T] | None = None
    changed: tuple[str, ...] = ()
    restart_required: tuple[tuple[Path, str], ...] = ()
    """Restart-required fields the file wants changed, each with a digest of the wanted value."""
    error: ConfigError | None = None
    unknown: tuple[UnknownKey, ...] | None = None
    """The version's unknown keys; None when it was not parsed (same bytes, or unreadable)."""


def result_for(error: ConfigError) -> ReloadResult:
    """A file that cannot be read is an ``error``; content that is wrong fails validation."""
    if isinstance(error, ConfigReadError) and error.reason != "too_large":
        return ReloadResult.ERROR
    if isinstance(error, ConfigRefusedError):  # valid content that cannot apply live
        return ReloadResult.ERROR
    return ReloadResult.VALIDATION_FAILED


class Pipeline(Generic[T]):
    """Everything one reloader needs to turn bytes into a validated config."""

    def __init__(
        self,
        schema: type[T],
        *,
        source: str,
        fmt: Format,
        max_bytes: int,
        validators: Sequence[Validator[T]],
        policy: FieldPolicy,
        decode: Callable[[bytes], Document] | None = None,
        strict: bool = False,
    ) -> None:
        self.schema = schema
        self._schema: Schema[T] = schema_for(schema)
        self.decode = decode
        """Bytes to a `Document` for a layered source (parse, merge, origins); None: one
        document in ``fmt``, its origins worked out only when asked for."""
        self.source = source
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.validators = tuple(validators)
        self.policy = policy
        self.strict = strict

    def load(self, raw: bytes) -> Active[T]:
        """Parse, convert and validate ``raw`` as a first version: raises `ConfigError`."""
        data, document, node = self._document(raw)
        try:
            config = self._convert(data, node, document)
            unknown = self._unknown(data, node, document)
            self._validate(config, document)
        except ConfigValidationError as exc:
            node = None
            traceback.clear_frames(exc.__traceback__)  # the error must not pin the node tree
            raise self._redact(exc, data) from None
        node = None
        builtins, encoded = self._builtins(config)
        return self._active(
            config,
            builtins,
            encoded,
            sha=sha256_hex(raw),
            raw=raw,
            document=document,
            unknown=unknown,
        )

    def _active(
        self,
        config: T,
        builtins: Any,
        encoded: bytes,
        *,
        sha: str,
        raw: bytes,
        document: Document | None,
        unknown: tuple[UnknownKey, ...],
    ) -> Active[T]:
        kept = raw if document is None else None
        digest = sha256_hex(encoded)
        return Active(config, builtins, digest, sha, document, kept, unknown, encoded)

    def _document(self, raw: bytes) -> tuple[Any, Document | None, yaml.Node | None]:
        """The data to convert, and (a layered source) where its values came from, or (one
        YAML file) the node tree it was built from: where a value the schema refuses, or an
        unknown key, sits in the file, without composing the document a second time."""
        if self.decode is not None:
            document = self.decode(raw)
            return document.data, document, None
        data, node = parse_node(raw, self.fmt, self.source, max_text=self.max_bytes)
        return data, None, node

    def document_of(self, active: Active[T]) -> Document:
        """Where each value of ``active`` came from (a single file: worked out now)."""
        if active.document is not None:
            return active.document
        if active.raw is None:
            return Document(None, self.source, {}, {})
        return Document(
            None, self.source, lazy=partial(_origins_of, active.raw, self.fmt, self.source)
        )

    def evaluate(self, raw: bytes, active: Active[T], sha: str | None = None) -> Evaluation[T]:
        """Compare ``raw`` (whose sha256 the caller may already have) with the active version.

        Never raises for bad input.
        """
        sha = sha or sha256_hex(raw)
        if sha == active.content_sha256:
            return Evaluation(ReloadResult.CONFIG_UNCHANGED, sha)
        data: Any = None
        node: yaml.Node | None = None
        unknown: tuple[UnknownKey, ...] = ()
        try:
            data, document, node = self._document(raw)
            config = self._convert(data, node, document)
            unknown = self._unknown(data, node, document)
            builtins, encoded = self._builtins(config)
            changed = list(
                changed_paths(active.builtins, builtins, encoded=(active.encoded, encoded))
            )
            self._refuse(changed)
            effective, roots = retain(active.builtins, builtins, changed, self.policy)
            if roots:
                config = self._convert(effective, node, document)
                encoded = canonical_json(effective)
                changed = [p for p in changed if self.policy.restart_root(p) is None]
            node = None  # the tree is not needed past here, nor kept by the version
            self._validate(config, document)
        except ConfigError as exc:
            node = None  # an error kept past this change must not keep the node tree alive
            traceback.clear_frames(exc.__traceback__)
            if isinstance(exc, ConfigValidationError):
                exc = self._redact(exc, data)
            return Evaluation(result_for(exc), sha, error=exc)
        wanted = tuple((root, _digest(get_path(builtins, root))) for root in roots)
        if not changed:
            return Evaluation(
                ReloadResult.CONFIG_UNCHANGED, sha, restart_required=wanted, unknown=unknown
            )
        candidate = self._active(
            config, effective, encoded, sha=sha, raw=raw, document=document, unknown=unknown
        )
        return Evaluation(
            ReloadResult.CONFIG_CHANGED,
            sha,
            candidate=candidate,
            changed=tuple(format_path(p) for p in changed),
            restart_required=wanted,
            unknown=unknown,
        )

    def _builtins(self, config: T) -> tuple[Any, bytes]:
        """The config as builtins, and its canonical encoding (so hashing cannot fail).

        A safety net: what the parsers accept always has one (a lone surrogate is refused
        where it is read), but a `ConfigError` is the only way a version may fail.
        """
        try:
            builtins = self._schema.to_builtins(config)
        except TypeError:  # keys of several types (``{404: a, x: b}``) do not sort: file order
            builtins = msgspec.to_builtins(config, builtin_types=RICH)
        try:
            return builtins, canonical_json(builtins)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise ConfigValidationError(
                self.source, f"the config has no canonical form ({type(exc).__name__})"
            ) from None

    def _unknown(
        self, data: Any, node: yaml.Node | None, document: Document | None
    ) -> tuple[UnknownKey, ...]:
        """The document's unknown keys with where they are (a layered source: the layer that
        has them); with ``strict``, an error naming them all at the first one's position."""
        own = getattr(self._schema, "find_unknown", None)
        found = own(data) if own is not None else find_unknown(self.schema, data)
        if not found:
            return ()
        if document is not None:
            origins = [document.origin(list(k.path), at_key=True) for k in found]
            where = [(o.source, o.line, o.column) for o in origins]
        else:
            positions = locate_nodes(node, [list(k.path) for k in found], at_key=True)
            where = [(self.source, *(at or (None, None))) for at in positions]
        keys = UnknownKeys(
            UnknownKey(k.path, k.suggestion, line, column, source)
            for k, (source, line, column) in zip(found, where, strict=True)
        )
        if self.strict:
            first, *more = keys
            hint = "" if first.suggestion is None else f" (did you mean `{first.suggestion}`?)"
            message = f"unknown field `{first.path[-1]}`{hint}"
            if more:
                message += f", and {len(more)} more: {describe(more)}"
            raise ConfigValidationError(
                first.source or self.source,
                message,
                field_path=first.dotted,
                line=first.line,
                column=first.column,
                reason="unknown_key",
            )
        return keys

    def _refuse(self, changed: list[Path]) -> None:
        """Raise `ConfigRefusedError` if ``changed`` touches a field whose policy is refuse."""
        roots = dict.fromkeys(r for p in changed if (r := self.policy.refuse_root(p)) is not None)
        if roots:
            fields = tuple(format_path(r) for r in roots)
            raise ConfigRefusedError(
                self.source,
                f"{', '.join(fields)} changed and cannot change while running: "
                "the whole change is refused; restart the process to apply it",
                fields=fields,
            )

    def _redact(self, error: ConfigValidationError, data: Any) -> ConfigValidationError:
        """``error`` with every secret value of the document masked in its message.

        msgspec quotes a value it refuses for an enum, and a validator may quote the config
        it refuses: neither may carry a secret into a log line.
        """
        message = self.policy.scrub(error.message, data)
        if message != error.message:
            error.message = message
            error.args = (error.source, message)
        return error

    def _convert(self, data: Any, node: yaml.Node | None, document: Document | None) -> T:
        try:
            return self._schema.convert(data)
        except self._schema.errors as exc:
            problem = self._schema.problem(exc, data)
        path = dotted(problem.shown)
        if document is not None:  # layered: the layer (and line) that supplied the value
            origin = document.origin(problem.located, at_key=problem.at_key)
            raise ConfigValidationError(
                origin.source,
                problem.message,
                field_path=path,
                line=origin.line,
                column=origin.column,
            ) from None
        position = locate_nodes(node, [problem.located], at_key=problem.at_key)[0]
        line, column = position if position else (None, None)
        raise ConfigValidationError(
            self.source, problem.message, field_path=path, line=line, column=column
        ) from None

    def _validate(self, config: T, document: Document | None) -> None:
        for validator in self.validators:
            try:
                validator(config)
            except ConfigValidationError:
                raise
            except Exception as exc:  # noqa: BLE001 - a validator's refusal, whatever it raises
                name = getattr(validator, "__name__", type(validator).__name__)
                detail = str(exc) or type(exc).__name__
                field_path = getattr(exc, "field_path", "")
                origin = Origin(self.source)
                if document is not None and field_path:  # the layer that supplied it
                    origin = document.origin(field_path.split("."))
                raise ConfigValidationError(
                    origin.source,
                    f"rejected by validator {name}: {detail}",
                    field_path=field_path,
                    line=origin.line,
                    column=origin.column,
                    reason="validator",
                ) from None


def _origins_of(raw: bytes, fmt: Format, source: str) -> Parsed:
    """A single file's origins, worked out again from its bytes (only when asked for)."""
    data, node = parse_node(raw, fmt, source)
    return whole(data, Origin(source)) if node is None else walk_yaml(data, node, source)


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _digest(value: Any) -> str:
    try:
        encoded = canonical_json(value)
    except (TypeError, msgspec.EncodeError):  # the field was removed from the file
        encoded = b"<absent>"
    return hashlib.sha256(encoded).hexdigest()[:16]
