"""The pipeline's ``refuse`` policy and a single file's origins, on their own (the layered and
Holmes tests reach them through a running reloader; mutation testing asked for these)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Annotated

import msgspec
import pytest

from hotreload import (
    ConfigRefusedError,
    ConfigValidationError,
    ReloadResult,
    RestartRequired,
    Secret,
)
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline, result_for
from hotreload._provenance import Document, Origin


class Llm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    provider: Annotated[str, RestartRequired("refuse")] = "openai"
    model: str = "gpt-4"
    region: Annotated[str, RestartRequired] = "eu"


def pipeline(fmt: str = "yaml", **policy: object) -> Pipeline[Llm]:
    return Pipeline(
        Llm,
        source="llm.cfg",
        fmt=fmt,  # type: ignore[arg-type]
        max_bytes=4096,
        validators=[],
        policy=FieldPolicy(Llm, **policy),  # type: ignore[arg-type]
    )


def test_the_refuse_marker_is_named_and_checked() -> None:
    assert repr(RestartRequired("refuse")) == "hotreload.RestartRequired('refuse')"
    assert repr(RestartRequired("keep")) == "hotreload.RestartRequired"
    assert RestartRequired("refuse").mode == "refuse"
    with pytest.raises(ValueError, match="must be 'keep' or 'refuse', got 'drop'"):
        RestartRequired("drop")


def test_refuse_wins_over_keep_and_patterns_add_to_markers() -> None:
    policy = FieldPolicy(Llm, refuse_changes=["region"], restart_required=["region", "model"])
    assert policy.refused == (("provider",), ("region",))
    assert policy.restart_required == (("model",),)
    assert policy.refuse_root(("provider", "x")) == ("provider",)
    assert policy.refuse_root(("model",)) is None


def test_a_change_to_a_refuse_field_refuses_the_whole_version() -> None:
    p = pipeline()
    active = p.load(b"provider: openai\nmodel: gpt-4\n")
    evaluation = p.evaluate(b"provider: azure\nmodel: gpt-5\n", active)
    err = evaluation.error
    assert isinstance(err, ConfigRefusedError)
    assert err.fields == ("provider",)
    assert err.field_path == "provider"
    assert err.source == "llm.cfg"
    assert err.message == (
        "provider changed and cannot change while running: "
        "the whole change is refused; restart the process to apply it"
    )
    assert evaluation.result is ReloadResult.ERROR
    assert result_for(err) is ReloadResult.ERROR
    assert evaluation.candidate is None


def test_two_refuse_fields_are_named_together_and_a_keep_field_alone_applies() -> None:
    p = pipeline(refuse_changes=["model"])
    active = p.load(b"provider: openai\nmodel: gpt-4\n")
    err = p.evaluate(b"provider: azure\nmodel: gpt-5\n", active).error
    assert isinstance(err, ConfigRefusedError)
    assert err.fields == ("model", "provider")
    assert err.message.startswith("model, provider changed and cannot change while running")
    kept = p.evaluate(b"provider: openai\nmodel: gpt-4\nregion: us\n", active)
    assert kept.error is None
    assert kept.result is ReloadResult.CONFIG_UNCHANGED
    assert [root for root, _ in kept.restart_required] == [("region",)]


def test_a_single_files_origins_are_worked_out_from_its_bytes_when_asked() -> None:
    p = pipeline()
    active = p.load(b"# llm\nprovider: openai\nmodel: gpt-4\n")
    assert active.raw == b"# llm\nprovider: openai\nmodel: gpt-4\n"
    assert active.document is None
    document = p.document_of(active)
    assert document.source == "llm.cfg"
    assert document.origin(["model"]) == Origin("llm.cfg", 3, 8)
    assert document.origin(["model"], at_key=True) == Origin("llm.cfg", 3, 1)
    assert document.origin(["provider"]) == Origin("llm.cfg", 2, 11)
    newer = p.evaluate(b"provider: openai\nmodel: gpt-5\n", active).candidate
    assert newer is not None
    assert newer.raw == b"provider: openai\nmodel: gpt-5\n"  # kept for its origins
    assert p.document_of(newer).origin(["model"]) == Origin("llm.cfg", 2, 8)


def test_json_origins_name_the_file_without_a_position() -> None:
    p = pipeline("json")
    active = p.load(b'{"model": "gpt-5"}')
    document = p.document_of(active)
    assert document.origin(["model"]) == Origin("llm.cfg")
    assert document.values[("model",)] == Origin("llm.cfg")


def test_a_config_without_its_bytes_has_no_origins_but_its_source() -> None:
    p = pipeline()
    active = p.load(b"model: gpt-4\n")
    bare = dataclasses.replace(active, raw=None)
    document = p.document_of(bare)
    assert dict(document.values) == {}
    assert document.origin(["model"]) == Origin("llm.cfg")


# -- a layered source: the pipeline is handed a Document -----------------------------------------

BASE = Origin("base.yaml", 3, 8)
OVERLAY = Origin("$LLM_MODEL")


def layered(data: dict[str, object]) -> Document:
    """What a layered source decodes to: merged data, and the layer each value came from."""
    return Document(
        data,
        "layers://llm",
        {
            (): Origin("base.yaml", 1, 1),
            ("model",): OVERLAY,
            ("provider",): BASE,
            ("extra",): Origin("base.yaml", 4, 8),
        },
        {
            ("model",): Origin("$LLM_MODEL"),
            ("provider",): Origin("base.yaml", 3, 1),
            ("extra",): Origin("base.yaml", 4, 1),
        },
    )


def layered_pipeline(validators: list[object] | None = None) -> Pipeline[Llm]:
    return Pipeline(
        Llm,
        source="layers://llm",
        fmt="yaml",
        max_bytes=4096,
        validators=validators or [],  # type: ignore[arg-type]
        policy=FieldPolicy(Llm),
        decode=lambda raw: layered(json.loads(raw)),
    )


def test_a_layered_version_keeps_its_document_and_not_its_bytes() -> None:
    p = layered_pipeline()
    active = p.load(b'{"model": "gpt-5"}')
    assert active.raw is None
    assert active.document is not None
    assert active.document.data == {"model": "gpt-5"}
    assert p.document_of(active) is active.document
    changed = p.evaluate(b'{"model": "gpt-6"}', active)
    assert changed.candidate is not None
    assert changed.candidate.config.model == "gpt-6"
    assert changed.candidate.raw is None
    assert changed.candidate.document is not None
    assert changed.candidate.document.data == {"model": "gpt-6"}


def test_a_schema_error_in_a_layer_names_that_layer_and_line() -> None:
    p = layered_pipeline()
    with pytest.raises(ConfigValidationError) as info:
        p.load(b'{"provider": 3}')
    err = info.value
    assert (err.source, err.message, err.field_path, err.line, err.column) == (
        "base.yaml",
        "Expected `str`, got `int`",
        "provider",
        3,
        8,
    )
    active = p.load(b'{"model": "gpt-5"}')
    failed = p.evaluate(b'{"model": 5}', active).error
    assert isinstance(failed, ConfigValidationError)
    assert (failed.source, failed.field_path, failed.line) == ("$LLM_MODEL", "model", None)


def test_an_unknown_field_in_a_layer_points_at_its_key() -> None:
    p = layered_pipeline()
    with pytest.raises(ConfigValidationError) as info:
        p.load(b'{"provider": "x", "extra": 1}')
    err = info.value
    assert (err.source, err.field_path, err.line, err.column) == ("base.yaml", "extra", 4, 1)


def test_a_validator_refusal_names_the_layer_of_its_field() -> None:
    def no_gpt3(c: Llm) -> None:
        if c.model == "gpt-3":
            exc = ValueError("too old")
            exc.field_path = "model"  # type: ignore[attr-defined]
            raise exc
        if c.model == "gpt-2":  # blamed on the provider's name, which has no origin of its own
            exc = ValueError("unknown provider")
            exc.field_path = "provider.name"  # type: ignore[attr-defined]
            raise exc

    p = layered_pipeline([no_gpt3])
    with pytest.raises(ConfigValidationError) as info:
        p.load(b'{"model": "gpt-3"}')
    err = info.value
    assert (err.source, err.message, err.line) == (
        "$LLM_MODEL",
        "rejected by validator no_gpt3: too old",
        None,
    )
    active = p.load(b'{"model": "gpt-4"}')
    refused = p.evaluate(b'{"model": "gpt-2"}', active).error
    assert isinstance(refused, ConfigValidationError)
    assert (refused.source, refused.field_path, refused.line, refused.column) == (
        "base.yaml",
        "provider.name",
        3,
        8,
    )


class Outer(msgspec.Struct, frozen=True):
    maybe: Llm | None = None
    by_name: dict[str, Annotated[str, RestartRequired("refuse")]] = {}
    hidden: Annotated[Llm, Secret] = Llm()


def test_refuse_markers_are_found_through_optionals_mappings_and_annotations() -> None:
    assert FieldPolicy(Outer).refused == (
        ("maybe", "provider"),
        ("by_name", "*"),
        ("hidden", "provider"),
    )


class Loose(msgspec.Struct, frozen=True):
    model: str = "gpt-4"


def loose_pipeline(decode: Callable[[bytes], Document], *, strict: bool = False) -> Pipeline[Loose]:
    return Pipeline(
        Loose,
        source="layers://llm",
        fmt="yaml",
        max_bytes=4096,
        validators=[],
        policy=FieldPolicy(Loose),
        decode=decode,
        strict=strict,
    )


def test_unknown_keys_of_a_layered_version_name_their_layer_and_are_kept_with_it() -> None:
    extra = Origin("overlay.yaml", 4, 1)
    document = Document(
        {"model": "gpt-5", "modle": "x"},
        "layers://llm",
        {(): Origin("base.yaml", 1, 1), ("modle",): Origin("overlay.yaml", 4, 8)},
        {("modle",): extra},
    )
    p = loose_pipeline(
        lambda raw: document if raw == b"typo" else Document({}, "layers://llm", {}, {})
    )
    assert p.strict is False  # unknown keys are named, not refused, unless asked
    [key] = p.load(b"typo").unknown
    assert (key.path, key.suggestion, key.source, key.line, key.column) == (
        ("modle",),
        "model",
        "overlay.yaml",
        4,
        1,
    )
    active = p.load(b"clean")
    assert active.unknown == ()
    changed = p.evaluate(b"typo", active)
    assert changed.candidate is not None
    assert [k.path for k in changed.candidate.unknown] == [("modle",)]
    assert changed.unknown is not None
    assert [(k.path, k.source, k.line) for k in changed.unknown] == [
        (("modle",), "overlay.yaml", 4)
    ]
    same = p.evaluate(b"typo", p.load(b"typo"))
    assert same.result is ReloadResult.CONFIG_UNCHANGED
    assert same.unknown is None  # the same bytes are not parsed again


def test_strict_refuses_an_unknown_key_at_its_layer_with_or_without_a_suggestion() -> None:
    def decode(raw: bytes) -> Document:
        key = raw.decode()
        return Document(
            {key: 1},
            "layers://llm",
            {(): Origin("base.yaml", 1, 1)},
            {(key,): Origin("overlay.yaml", 2, 1)},
        )

    p = loose_pipeline(decode, strict=True)
    with pytest.raises(ConfigValidationError) as info:
        p.load(b"zzzzzz")
    err = info.value
    assert (err.source, err.message, err.field_path, err.line, err.column) == (
        "overlay.yaml",
        "unknown field `zzzzzz`",
        "zzzzzz",
        2,
        1,
    )
    with pytest.raises(ConfigValidationError) as info:
        p.load(b"modle")
    assert info.value.message == "unknown field `modle` (did you mean `model`?)"
