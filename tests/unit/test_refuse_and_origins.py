"""The pipeline's ``refuse`` policy and a single file's origins, on their own (the layered and
Holmes tests reach them through a running reloader; mutation testing asked for these)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import msgspec
import pytest

from hotreload import ConfigRefusedError, ReloadResult, RestartRequired
from hotreload._fields import FieldPolicy
from hotreload._pipeline import Pipeline, result_for
from hotreload._provenance import Origin


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


def test_json_origins_name_the_file_without_a_position() -> None:
    p = pipeline("json")
    active = p.load(b'{"model": "gpt-5"}')
    assert p.document_of(active).origin(["model"]) == Origin("llm.cfg")


def test_a_config_without_its_bytes_has_no_origins_but_its_source() -> None:
    p = pipeline()
    active = p.load(b"model: gpt-4\n")
    bare = dataclasses.replace(active, raw=None)
    document = p.document_of(bare)
    assert dict(document.values) == {}
    assert document.origin(["model"]) == Origin("llm.cfg")
