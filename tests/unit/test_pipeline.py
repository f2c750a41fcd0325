"""`Pipeline`: read, load and evaluate, with no event loop involved."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

from hotreload._errors import (
    ConfigError,
    ConfigParseError,
    ConfigReadError,
    ConfigValidationError,
)
from hotreload._fields import FieldPolicy, RestartRequired
from hotreload._file_source import read_file
from hotreload._outcome import ReloadResult
from hotreload._parsing import Format
from hotreload._pipeline import Active, Pipeline, Validator, result_for
from hotreload._snapshot import canonical_hash
from tests.hardening.test_fs_faults import NOBODY, effective_user

SOURCE = "conf/settings.yaml"


class LLM(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    temperature: float = 0.7


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    weight: int = 1


class Database(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str
    pool: int = 5


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    llm: LLM
    items: list[Item] = []
    port: Annotated[int, RestartRequired] = 8080
    db: Database | None = None


BASE = b"""\
llm:
  model: gpt-4
  temperature: 0.5
port: 8080
db:
  url: postgres://db-a
items:
  - name: first
  - name: second
"""
BASE_BUILTINS = {
    "llm": {"model": "gpt-4", "temperature": 0.5},
    "port": 8080,
    "db": {"url": "postgres://db-a", "pool": 5},
    "items": [{"name": "first", "weight": 1}, {"name": "second", "weight": 1}],
}


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def digest(encoded_json: bytes) -> str:
    """The 16-hex-digit digest the pipeline reports for a wanted restart-required value."""
    return hashlib.sha256(encoded_json).hexdigest()[:16]


def make_pipeline(
    *,
    fmt: Format = "yaml",
    max_bytes: int = 4096,
    validators: Sequence[Validator[Settings]] = (),
    restart_required: Sequence[str] = ("db.*",),
    source: str = SOURCE,
) -> Pipeline[Settings]:
    return Pipeline(
        Settings,
        source=source,
        fmt=fmt,
        max_bytes=max_bytes,
        validators=validators,
        policy=FieldPolicy(Settings, restart_required=restart_required),
    )


@pytest.fixture
def pipeline() -> Pipeline[Settings]:
    return make_pipeline()


@pytest.fixture
def active(pipeline: Pipeline[Settings]) -> Active[Settings]:
    return pipeline.load(BASE)


def schema_error(pipeline: Pipeline[Any], raw: bytes) -> ConfigValidationError:
    """The `ConfigValidationError` that loading ``raw`` raises."""
    with pytest.raises(ConfigValidationError) as info:
        pipeline.load(raw)
    return info.value


# --- load ------------------------------------------------------------------------------------


def test_load_gives_active_with_hashes(pipeline: Pipeline[Settings]) -> None:
    active = pipeline.load(BASE)
    assert active.config == Settings(
        llm=LLM(model="gpt-4", temperature=0.5),
        items=[Item(name="first"), Item(name="second")],
        port=8080,
        db=Database(url="postgres://db-a"),
    )
    assert active.builtins == BASE_BUILTINS
    assert active.config_hash == canonical_hash(active.builtins)
    assert active.config_hash == canonical_hash(BASE_BUILTINS)
    assert active.content_sha256 == sha256(BASE)


def test_load_applies_defaults(pipeline: Pipeline[Settings]) -> None:
    active = pipeline.load(b"llm:\n  model: m\n")
    assert active.config == Settings(llm=LLM(model="m"))
    assert active.builtins == {
        "llm": {"model": "m", "temperature": 0.7},
        "items": [],
        "port": 8080,
        "db": None,
    }


def test_load_is_strict_about_types(pipeline: Pipeline[Settings]) -> None:
    # strict=True: a quoted number is a string, not an int.
    err = schema_error(pipeline, b"llm:\n  model: m\nport: '8080'\n")
    assert err.field_path == "port"
    assert (err.line, err.column) == (3, 7)


def test_load_raises_parse_error_for_bad_yaml(pipeline: Pipeline[Settings]) -> None:
    with pytest.raises(ConfigParseError) as info:
        pipeline.load(b"llm: [\n")
    assert info.value.source == SOURCE
    assert info.value.line == 2


# --- evaluate: unchanged / changed -----------------------------------------------------------


def test_identical_bytes_are_unchanged(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    evaluation = pipeline.evaluate(BASE, active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert evaluation.content_sha256 == active.content_sha256
    assert evaluation.candidate is None
    assert evaluation.changed == ()
    assert evaluation.restart_required == ()
    assert evaluation.error is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(BASE + b"# a comment\n", id="comment-added"),
        pytest.param(b"# header\n" + BASE.replace(b"gpt-4\n", b"gpt-4  # pinned\n"), id="comments"),
        pytest.param(BASE.replace(b"\n", b"\n\n"), id="blank-lines"),
        pytest.param(BASE.replace(b"  ", b"    "), id="indentation"),
        pytest.param(
            b"items: [{name: first}, {name: second}]\n"
            b"db: {url: 'postgres://db-a'}\n"
            b"port: 8080\n"
            b"llm: {temperature: 0.5, model: gpt-4}\n",
            id="key-order-and-flow-style",
        ),
        pytest.param(BASE.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(BASE + b"  \n", id="trailing-whitespace"),
        pytest.param(
            BASE.replace(b"  - name: second\n", b"  - {name: second, weight: 1}\n"),
            id="explicit-default",
        ),
    ],
)
def test_formatting_only_edit_is_unchanged_with_same_config_hash(
    pipeline: Pipeline[Settings], active: Active[Settings], raw: bytes
) -> None:
    assert raw != BASE
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert evaluation.error is None
    assert evaluation.candidate is None
    assert evaluation.content_sha256 == sha256(raw)
    assert evaluation.content_sha256 != active.content_sha256
    reloaded = pipeline.load(raw)
    assert reloaded.config_hash == active.config_hash
    assert reloaded.content_sha256 != active.content_sha256


def test_real_change_is_changed_with_dotted_path(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"gpt-4", b"gpt-5")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.error is None
    assert evaluation.changed == ("llm.model",)
    assert evaluation.restart_required == ()
    assert evaluation.content_sha256 == sha256(raw)
    candidate = evaluation.candidate
    assert candidate is not None
    assert candidate.config.llm.model == "gpt-5"
    assert candidate.builtins["llm"]["model"] == "gpt-5"
    assert candidate.content_sha256 == sha256(raw)
    assert candidate.config_hash == canonical_hash(candidate.builtins)
    assert candidate.config_hash != active.config_hash
    # The candidate is what a fresh load of the same bytes gives.
    assert candidate == pipeline.load(raw)


def test_several_changes_are_all_named(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = (
        BASE.replace(b"temperature: 0.5", b"temperature: 0.9")
        .replace(b"  - name: second\n", b"")
        .replace(b"gpt-4", b"gpt-5")
    )
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    # Lists are compared whole: the path is the list itself.
    assert set(evaluation.changed) == {"llm.model", "llm.temperature", "items"}


def test_evaluate_does_not_mutate_active(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    before = msgspec.json.encode(active.builtins, order="sorted")
    pipeline.evaluate(BASE.replace(b"gpt-4", b"gpt-5").replace(b"8080", b"9090"), active)
    assert msgspec.json.encode(active.builtins, order="sorted") == before
    assert active.config.llm.model == "gpt-4"


# --- schema errors ---------------------------------------------------------------------------


def test_wrong_type_names_field_and_position(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE.replace(b"temperature: 0.5", b"temperature: hot"))
    assert err.field_path == "llm.temperature"
    assert (err.line, err.column) == (3, 16)
    assert err.reason == "schema"
    assert err.source == SOURCE
    assert "Expected `float`, got `str`" in err.message
    assert str(err) == f"{SOURCE}:3:16: {err.message} at `llm.temperature`"
    assert "hot" not in str(err)


def test_wrong_type_via_evaluate_is_validation_failed(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"temperature: 0.5", b"temperature: hot")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert evaluation.candidate is None
    assert evaluation.content_sha256 == sha256(raw)
    assert isinstance(evaluation.error, ConfigValidationError)
    assert evaluation.error.field_path == "llm.temperature"
    assert (evaluation.error.line, evaluation.error.column) == (3, 16)


def test_unknown_nested_field_points_at_the_key(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE.replace(b"  temperature: 0.5", b"  temprature: 0.5"))
    assert err.field_path == "llm.temprature"
    assert (err.line, err.column) == (3, 3)
    assert "unknown field" in err.message


def test_unknown_top_level_field_points_at_the_key(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE + b"colour: red\n")
    assert err.field_path == "colour"
    assert (err.line, err.column) == (10, 1)


def test_missing_required_field_is_named(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE.replace(b"  model: gpt-4\n", b""))
    assert err.field_path == "llm.model"
    assert "missing required field `model`" in err.message
    # Points at the mapping the field is missing from.
    assert err.line == 2


def test_missing_required_top_level_field(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, b"port: 8080\n")
    assert err.field_path == "llm"
    assert "`llm`" in err.message


def test_list_index_in_field_path(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE.replace(b"name: second", b"name: 3"))
    assert err.field_path == "items[1].name"
    assert (err.line, err.column) == (9, 11)


def test_unknown_field_inside_a_list_item(pipeline: Pipeline[Settings]) -> None:
    err = schema_error(pipeline, BASE.replace(b"  - name: second", b"  - nme: second"))
    assert err.field_path == "items[1].nme"
    assert (err.line, err.column) == (9, 5)


def test_comment_only_document_is_rejected(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    evaluation = pipeline.evaluate(b"# everything was deleted\n", active)
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert evaluation.candidate is None
    assert evaluation.error is not None


def test_parse_error_via_evaluate_is_validation_failed(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    evaluation = pipeline.evaluate(b"llm: {model: a\n", active)
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert isinstance(evaluation.error, ConfigParseError)
    assert evaluation.error.reason == "parse"


@pytest.mark.parametrize(
    ("fmt", "raw"),
    [
        ("json", b'{"llm": {"model": "m", "temperature": "hot"}}'),
        ("toml", b'[llm]\nmodel = "m"\ntemperature = "hot"\n'),
    ],
)
def test_json_and_toml_schema_errors_name_the_field(fmt: Format, raw: bytes) -> None:
    err = schema_error(make_pipeline(fmt=fmt), raw)
    assert err.field_path == "llm.temperature"
    assert "Expected `float`, got `str`" in err.message
    assert err.line is None


@pytest.mark.parametrize(
    ("fmt", "raw"),
    [
        ("json", b'{"llm": {"model": "m"}, "colour": "red"}'),
        ("toml", b'colour = "red"\n[llm]\nmodel = "m"\n'),
    ],
)
def test_json_and_toml_unknown_field(fmt: Format, raw: bytes) -> None:
    err = schema_error(make_pipeline(fmt=fmt), raw)
    assert err.field_path == "colour"


@pytest.mark.parametrize(
    ("fmt", "raw"),
    [
        ("json", b'{"llm": {"model": "m", "temperature": 0.1}, "port": 9000}'),
        ("toml", b'port = 9000\n[llm]\nmodel = "m"\ntemperature = 0.1\n'),
    ],
)
def test_json_and_toml_load(fmt: Format, raw: bytes) -> None:
    active = make_pipeline(fmt=fmt).load(raw)
    assert active.config == Settings(llm=LLM(model="m", temperature=0.1), port=9000)


# --- validators ------------------------------------------------------------------------------


def no_gpt5(config: Settings) -> None:
    if config.llm.model == "gpt-5":
        raise ValueError("gpt-5 is not approved yet")


def test_validator_refusal_is_validation_failed(active: Active[Settings]) -> None:
    pipeline = make_pipeline(validators=[no_gpt5])
    evaluation = pipeline.evaluate(BASE.replace(b"gpt-4", b"gpt-5"), active)
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert evaluation.candidate is None
    err = evaluation.error
    assert isinstance(err, ConfigValidationError)
    assert err.reason == "validator"
    assert "gpt-5 is not approved yet" in err.message
    assert "no_gpt5" in err.message
    assert err.source == SOURCE


def test_validator_refusal_on_load_raises() -> None:
    pipeline = make_pipeline(validators=[no_gpt5])
    with pytest.raises(ConfigValidationError) as info:
        pipeline.load(BASE.replace(b"gpt-4", b"gpt-5"))
    assert info.value.reason == "validator"
    assert "gpt-5 is not approved yet" in info.value.message


def test_validator_that_accepts_lets_the_change_through(active: Active[Settings]) -> None:
    seen: list[str] = []

    def record(config: Settings) -> None:
        seen.append(config.llm.model)

    pipeline = make_pipeline(validators=[record, no_gpt5])
    evaluation = pipeline.evaluate(BASE.replace(b"gpt-4", b"gpt-4o"), active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert seen == ["gpt-4o"]


def test_validator_exception_without_message_uses_its_type(active: Active[Settings]) -> None:
    def refuse(config: Settings) -> None:
        raise RuntimeError

    evaluation = make_pipeline(validators=[refuse]).evaluate(BASE + b"# x\n", active)
    # Formatting-only change: the validator still runs (the content hash differs).
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert evaluation.error is not None
    assert "RuntimeError" in evaluation.error.message


def test_validator_raising_config_validation_error_passes_through(
    active: Active[Settings],
) -> None:
    mine = ConfigValidationError(SOURCE, "pool too small", field_path="db.pool")

    def strict(config: Settings) -> None:
        raise mine

    evaluation = make_pipeline(validators=[strict]).evaluate(
        BASE.replace(b"gpt-4", b"gpt-5"), active
    )
    assert evaluation.result is ReloadResult.VALIDATION_FAILED
    assert evaluation.error is mine


def test_validators_are_not_run_for_identical_bytes(active: Active[Settings]) -> None:
    calls: list[Settings] = []
    evaluation = make_pipeline(validators=[calls.append]).evaluate(BASE, active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert calls == []


# --- restart-required fields -----------------------------------------------------------------


def test_restart_required_annotated_field_is_kept_running(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"gpt-4", b"gpt-5").replace(b"port: 8080", b"port: 9090")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.changed == ("llm.model",)
    assert evaluation.restart_required == ((("port",), digest(b"9090")),)
    candidate = evaluation.candidate
    assert candidate is not None
    assert candidate.config.port == 8080
    assert candidate.config.llm.model == "gpt-5"
    assert candidate.builtins["port"] == 8080
    assert candidate.config_hash == canonical_hash(candidate.builtins)
    assert candidate.content_sha256 == sha256(raw)


def test_restart_required_pattern_field_is_kept_running(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"gpt-4", b"gpt-5").replace(b"postgres://db-a", b"postgres://db-b")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.changed == ("llm.model",)
    assert evaluation.restart_required == (
        (("db",), digest(b'{"pool":5,"url":"postgres://db-b"}')),
    )
    candidate = evaluation.candidate
    assert candidate is not None
    assert candidate.config.db == Database(url="postgres://db-a")
    assert candidate.builtins["db"] == {"url": "postgres://db-a", "pool": 5}


def test_restart_required_pattern_without_star() -> None:
    pipeline = make_pipeline(restart_required=["db"])
    active = pipeline.load(BASE)
    raw = BASE.replace(b"gpt-4", b"gpt-5").replace(b"postgres://db-a", b"postgres://db-b")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.changed == ("llm.model",)
    assert [root for root, _ in evaluation.restart_required] == [("db",)]


def test_only_restart_required_change_is_unchanged(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"port: 8080", b"port: 9090")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert evaluation.candidate is None
    assert evaluation.changed == ()
    assert evaluation.restart_required == ((("port",), digest(b"9090")),)
    assert evaluation.error is None


def test_both_restart_required_fields_changed_alone(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"port: 8080", b"port: 9090").replace(
        b"  url: postgres://db-a\n", b"  url: postgres://db-a\n  pool: 9\n"
    )
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert dict(evaluation.restart_required) == {
        ("db",): digest(b'{"pool":9,"url":"postgres://db-a"}'),
        ("port",): digest(b"9090"),
    }


def test_restart_required_digest_differs_per_wanted_value(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    first = pipeline.evaluate(BASE.replace(b"port: 8080", b"port: 9090"), active)
    second = pipeline.evaluate(BASE.replace(b"port: 8080", b"port: 9091"), active)
    assert first.restart_required[0][1] != second.restart_required[0][1]


def test_restart_required_field_removed_from_file(active: Active[Settings]) -> None:
    pipeline = make_pipeline()
    raw = BASE.replace(b"db:\n  url: postgres://db-a\n", b"").replace(b"gpt-4", b"gpt-5")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.changed == ("llm.model",)
    assert [root for root, _ in evaluation.restart_required] == [("db",)]
    assert evaluation.candidate is not None
    assert evaluation.candidate.config.db == Database(url="postgres://db-a")


def test_evaluate_keeps_no_state_between_calls(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    # The file went 8080 → 9090 → 8080: nothing is pending any more.
    pipeline.evaluate(BASE.replace(b"port: 8080", b"port: 9090"), active)
    evaluation = pipeline.evaluate(BASE + b"# back\n", active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert evaluation.restart_required == ()


# --- read ------------------------------------------------------------------------------------


def read_error(pipeline: Pipeline[Settings], path: Path | str) -> ConfigReadError:
    with pytest.raises(ConfigReadError) as info:
        read_file(str(path), pipeline.max_bytes, pipeline.source)
    return info.value


def test_read_returns_bytes(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(BASE)
    assert read_file(str(path), pipeline.max_bytes, pipeline.source) == BASE


def test_read_missing_file(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    err = read_error(pipeline, tmp_path / "absent.yaml")
    assert err.reason == "missing"
    assert err.source == SOURCE
    assert result_for(err) is ReloadResult.ERROR


def test_read_dangling_symlink_is_missing(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    link = tmp_path / "settings.yaml"
    link.symlink_to(tmp_path / "nowhere.yaml")
    assert read_error(pipeline, link).reason == "missing"


def test_read_directory(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    err = read_error(pipeline, tmp_path)
    assert err.reason == "read"
    assert result_for(err) is ReloadResult.ERROR


def test_read_file_over_max_bytes(tmp_path: Path) -> None:
    pipeline = make_pipeline(max_bytes=16)
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"x" * 17)
    err = read_error(pipeline, path)
    assert err.reason == "too_large"
    assert "16" in err.message
    assert result_for(err) is ReloadResult.VALIDATION_FAILED


def test_read_file_of_exactly_max_bytes(tmp_path: Path) -> None:
    pipeline = make_pipeline(max_bytes=16)
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"y" * 16)
    assert read_file(str(path), pipeline.max_bytes, pipeline.source) == b"y" * 16


def test_read_fifo_is_refused_without_blocking(
    tmp_path: Path, pipeline: Pipeline[Settings]
) -> None:
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []

    def attempt() -> None:
        try:
            outcome.append(read_file(str(fifo), pipeline.max_bytes, pipeline.source))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # blocked in open(): give it a writer so the thread can finish
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(writer)
        worker.join(timeout=5)
        pytest.fail("Pipeline.read blocked on a FIFO")
    assert len(outcome) == 1
    err = outcome[0]
    assert isinstance(err, ConfigReadError)
    assert err.reason == "read"
    assert "regular file" in err.message


@pytest.mark.skipif(not hasattr(os, "seteuid"), reason="needs POSIX uids")
def test_read_permission_denied(pipeline: Pipeline[Settings]) -> None:
    """``chmod 000``. As root (CI) the read runs as nobody, as test_fs_faults does: root reads
    any file, so otherwise nothing would be denied."""
    directory = Path(tempfile.mkdtemp(prefix="hotreload-perm-"))
    path = directory / "settings.yaml"
    path.write_bytes(BASE)
    if os.geteuid() == 0:
        directory.chmod(0o755)
        os.chown(directory, NOBODY, NOBODY)
        os.chown(path, NOBODY, NOBODY)
    try:
        with effective_user(NOBODY):
            assert read_file(str(path), pipeline.max_bytes, pipeline.source) == BASE
            path.chmod(0)
            try:
                err = read_error(pipeline, path)
            finally:
                path.chmod(0o600)
    finally:
        shutil.rmtree(directory)
    assert err.reason == "read"
    assert "permission denied" in err.message
    assert result_for(err) is ReloadResult.ERROR


def test_read_permission_error_is_reported_as_read(
    tmp_path: Path, pipeline: Pipeline[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs as root too: the open itself is made to fail with EACCES for this one path.
    path = tmp_path / "settings.yaml"
    path.write_bytes(BASE)
    real_open = os.open

    def denying_open(file: str, flags: int, mode: int = 0o777) -> int:
        if os.fspath(file) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(file, flags, mode)

    monkeypatch.setattr(os, "open", denying_open)
    err = read_error(pipeline, path)
    assert err.reason == "read"
    assert err.message == "permission denied"
    assert str(path) not in str(err)
    assert result_for(err) is ReloadResult.ERROR


def test_read_symlink_loop(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    err = read_error(pipeline, a)
    assert err.reason == "read"
    assert "symbolic links" in err.message


def test_read_follows_a_good_symlink(tmp_path: Path, pipeline: Pipeline[Settings]) -> None:
    # ConfigMaps mount files as symlinks into a ..data directory.
    target = tmp_path / "..data" / "settings.yaml"
    target.parent.mkdir()
    target.write_bytes(BASE)
    link = tmp_path / "settings.yaml"
    link.symlink_to(target)
    assert read_file(str(link), pipeline.max_bytes, pipeline.source) == BASE


# --- result_for ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigReadError(SOURCE, "x", reason="missing"), ReloadResult.ERROR),
        (ConfigReadError(SOURCE, "x", reason="read"), ReloadResult.ERROR),
        (ConfigReadError(SOURCE, "x", reason="too_large"), ReloadResult.VALIDATION_FAILED),
        (ConfigParseError(SOURCE, "x", line=1, column=1), ReloadResult.VALIDATION_FAILED),
        (ConfigValidationError(SOURCE, "x"), ReloadResult.VALIDATION_FAILED),
        (ConfigValidationError(SOURCE, "x", reason="validator"), ReloadResult.VALIDATION_FAILED),
    ],
)
def test_result_for(error: ConfigError, expected: ReloadResult) -> None:
    assert result_for(error) is expected
