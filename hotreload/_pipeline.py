"""The pure, synchronous part of a reload: bytes in, a verdict and a candidate out.

read (size cap) → sha256 → unchanged shortcut → parse → convert (``msgspec.convert``, strict,
or a pydantic model's validation: `hotreload._schema`) →
restart-required retention → validators → canonical hash. No I/O but `Pipeline.read`, no
event loop, no clock: every step is testable on its own and the reloader stays the only writer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from ._diff import changed_paths, get_path, retain
from ._errors import ConfigError, ConfigReadError, ConfigValidationError
from ._fields import FieldPolicy, Path, format_path
from ._outcome import ReloadResult
from ._parsing import Format, locate, parse
from ._schema import Schema, schema_for
from ._snapshot import canonical_hash

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


def result_for(error: ConfigError) -> ReloadResult:
    """A file that cannot be read is an ``error``; content that is wrong fails validation."""
    if isinstance(error, ConfigReadError) and error.reason != "too_large":
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
    ) -> None:
        self.schema = schema
        self._schema: Schema[T] = schema_for(schema)
        self.source = source
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.validators = tuple(validators)
        self.policy = policy

    def load(self, raw: bytes) -> Active[T]:
        """Parse, convert and validate ``raw`` as a first version: raises `ConfigError`."""
        data = parse(raw, self.fmt, self.source)
        try:
            config = self._convert(data, raw)
            self._validate(config)
        except ConfigValidationError as exc:
            raise self._redact(exc, data) from None
        builtins = self._schema.to_builtins(config)
        return Active(config, builtins, canonical_hash(builtins), sha256_hex(raw))

    def evaluate(self, raw: bytes, active: Active[T], sha: str | None = None) -> Evaluation[T]:
        """Compare ``raw`` (whose sha256 the caller may already have) with the active version.

        Never raises for bad input.
        """
        sha = sha or sha256_hex(raw)
        if sha == active.content_sha256:
            return Evaluation(ReloadResult.CONFIG_UNCHANGED, sha)
        data: Any = None
        try:
            data = parse(raw, self.fmt, self.source)
            config = self._convert(data, raw)
            builtins = self._schema.to_builtins(config)
            changed = list(changed_paths(active.builtins, builtins))
            effective, roots = retain(active.builtins, builtins, changed, self.policy)
            if roots:
                config = self._convert(effective, raw)
                changed = [p for p in changed if self.policy.restart_root(p) is None]
            self._validate(config)
        except ConfigError as exc:
            if isinstance(exc, ConfigValidationError):
                exc = self._redact(exc, data)
            return Evaluation(result_for(exc), sha, error=exc)
        wanted = tuple((root, _digest(get_path(builtins, root))) for root in roots)
        if not changed:
            return Evaluation(ReloadResult.CONFIG_UNCHANGED, sha, restart_required=wanted)
        candidate = Active(config, effective, canonical_hash(effective), sha)
        return Evaluation(
            ReloadResult.CONFIG_CHANGED,
            sha,
            candidate=candidate,
            changed=tuple(format_path(p) for p in changed),
            restart_required=wanted,
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

    def _convert(self, data: Any, raw: bytes) -> T:
        try:
            return self._schema.convert(data)
        except self._schema.errors as exc:
            problem = self._schema.problem(exc, data)
        position = locate(raw, self.fmt, problem.located, at_key=problem.at_key)
        line, column = position if position else (None, None)
        path = _dotted(problem.shown)
        raise ConfigValidationError(
            self.source, problem.message, field_path=path, line=line, column=column
        ) from None

    def _validate(self, config: T) -> None:
        for validator in self.validators:
            try:
                validator(config)
            except ConfigValidationError:
                raise
            except Exception as exc:  # noqa: BLE001 - a validator's refusal, whatever it raises
                name = getattr(validator, "__name__", type(validator).__name__)
                detail = str(exc) or type(exc).__name__
                raise ConfigValidationError(
                    self.source,
                    f"rejected by validator {name}: {detail}",
                    field_path=getattr(exc, "field_path", ""),
                    reason="validator",
                ) from None


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _digest(value: Any) -> str:
    try:
        encoded = msgspec.json.encode(value, order="sorted")
    except (TypeError, msgspec.EncodeError):  # the field was removed from the file
        encoded = b"<absent>"
    return hashlib.sha256(encoded).hexdigest()[:16]


def _dotted(segments: list[str | int]) -> str:
    out = ""
    for seg in segments:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out
