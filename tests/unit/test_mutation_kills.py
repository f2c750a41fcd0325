"""Inputs on which mutants once listed in ``mutation-equivalents.md`` behave differently.

Each test names the mutant (mutmut 3.8.1's name at the time) it kills; issue #23.
"""

from __future__ import annotations

import json
from typing import Annotated

import msgspec

from hotreload._errors import ConfigValidationError
from hotreload._fields import FieldPolicy, RestartRequired
from hotreload._outcome import ReloadResult
from hotreload._pipeline import Pipeline
from hotreload._provenance import Document, Origin


class Workers(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Valid alone in each version, but a restart-required value kept from the running version
    can make the effective config (running ``workers``, new ``per_worker``) invalid."""

    workers: Annotated[int, RestartRequired] = 4
    per_worker: int = 1

    def __post_init__(self) -> None:
        if self.per_worker > self.workers:
            raise ValueError("per_worker exceeds workers")


def workers_pipeline(decode: object = None) -> Pipeline[Workers]:
    return Pipeline(
        Workers,
        source="workers.yaml",
        fmt="yaml",
        max_bytes=4096,
        validators=(),
        policy=FieldPolicy(Workers),
        decode=decode,  # type: ignore[arg-type]
    )


# --- _pipeline: the second conversion (the effective config) ---------------------------------


def test_an_effective_config_that_fails_is_located_in_the_file() -> None:
    # Kills evaluate's `_convert(effective, None, document)`: the effective config need not
    # convert (a cross-field check between a kept and a new value), and then its error is
    # placed with the new file's node tree (the root, line 1), not left without a line.
    p = workers_pipeline()
    active = p.load(b"workers: 4\nper_worker: 2\n")
    evaluation = p.evaluate(b"workers: 8\nper_worker: 6\n", active)
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    error = evaluation.error
    assert isinstance(error, ConfigValidationError)
    assert (error.source, error.message, error.line, error.column) == (
        "workers.yaml",
        "per_worker exceeds workers",
        1,
        1,
    )


def test_an_effective_config_that_fails_is_located_in_its_layer() -> None:
    # Kills evaluate's `_convert(effective, node, None)`: a layered source places the error
    # with its document (the layer that supplied the root), not as the bundle without a line.
    def decode(raw: bytes) -> Document:
        return Document(json.loads(raw), "layers://workers", {(): Origin("base.yaml", 2, 1)}, {})

    p = workers_pipeline(decode)
    active = p.load(b'{"workers": 4, "per_worker": 2}')
    evaluation = p.evaluate(b'{"workers": 8, "per_worker": 6}', active)
    error = evaluation.error
    assert isinstance(error, ConfigValidationError)
    assert (error.source, error.message, error.line, error.column) == (
        "base.yaml",
        "per_worker exceeds workers",
        2,
        1,
    )
