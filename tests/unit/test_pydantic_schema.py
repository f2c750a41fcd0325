"""Frozen pydantic v2 models as schemas: the same pipeline guarantees as a msgspec Struct.

Errors name the field path and the YAML line/column, ``SecretStr`` and secret-named fields are
masked, ``RestartRequired`` works through ``Annotated``, and msgspec keeps its direct path.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import subprocess
import sys
import textwrap
from pathlib import PurePosixPath
from typing import Annotated, Any

import msgspec
import pydantic
import pytest

from hotreload import RestartRequired, Secret
from hotreload._errors import ConfigValidationError
from hotreload._fields import FieldPolicy
from hotreload._outcome import ReloadResult
from hotreload._pipeline import Active, Pipeline
from hotreload._present import diff_records, redacted, to_builtins
from tests.unit.test_pipeline import schema_error

SOURCE = "conf/settings.yaml"
FROZEN = pydantic.ConfigDict(frozen=True, extra="forbid")


class Llm(pydantic.BaseModel):
    model_config = FROZEN

    model: str
    api_key: pydantic.SecretStr
    temperature: float = 0.7


class Tool(pydantic.BaseModel):
    model_config = FROZEN

    enabled: bool = True
    token: pydantic.SecretStr | None = None


class Settings(pydantic.BaseModel):
    model_config = FROZEN

    llm: Llm
    port: Annotated[int, RestartRequired] = 8080
    host: Annotated[str, RestartRequired] = pydantic.Field("127.0.0.1", alias="api-host")
    tools: dict[str, Tool] = {}
    items: list[int] = []
    dsn: Annotated[str, Secret] = ""
    headers: dict[str, pydantic.SecretStr] = {}

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


BASE = b"""\
llm:
  model: gpt-4
  api_key: sk-FIRST-secret
port: 8080
tools:
  grafana: {enabled: true}
items: [1, 2]
"""


def make_pipeline(schema: Any = Settings, **policy: Any) -> Pipeline[Any]:
    return Pipeline(
        schema,
        source=SOURCE,
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(schema, **policy),
    )


@pytest.fixture
def pipeline() -> Pipeline[Settings]:
    return make_pipeline()


@pytest.fixture
def active(pipeline: Pipeline[Settings]) -> Active[Settings]:
    return pipeline.load(BASE)


@pytest.mark.parametrize("blocked", [False, True], ids=["installed", "not-installed"])
def test_the_msgspec_path_never_imports_pydantic(blocked: bool) -> None:
    """The extra is optional: the core, the ASGI helpers, the CLI and a msgspec pipeline run
    without importing pydantic, and with it unimportable."""
    code = textwrap.dedent(
        f"""
        import sys
        if {blocked}:
            sys.modules["pydantic"] = None
        from typing import Annotated
        import msgspec
        import hotreload, hotreload.asgi, hotreload.cli, hotreload.testing
        from hotreload._fields import FieldPolicy
        from hotreload._pipeline import Pipeline
        from hotreload._present import to_builtins

        class S(msgspec.Struct, frozen=True):
            model: str
            token: Annotated[str, hotreload.Secret] = ""

        r = hotreload.HotReloader("x.yaml", schema=S)
        assert r.policy.secrets == (("token",),)
        p = Pipeline(S, source="x", fmt="yaml", max_bytes=99, validators=(), policy=r.policy)
        assert to_builtins(p.load(b"model: m").config) == {{"model": "m", "token": ""}}
        print(sys.modules.get("pydantic"))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_msgspec_stays_a_direct_call() -> None:
    """No adapter frame on the msgspec path: convert and to_builtins are msgspec's C calls."""

    class S(msgspec.Struct, frozen=True):
        model: str

    schema = make_pipeline(S)._schema
    assert isinstance(schema.convert, functools.partial)
    assert schema.convert.func is msgspec.convert
    assert isinstance(schema.to_builtins, functools.partial)
    assert schema.to_builtins.func is msgspec.to_builtins


def test_load_gives_the_model_and_canonical_builtins(pipeline: Pipeline[Settings]) -> None:
    active = pipeline.load(BASE)
    assert isinstance(active.config, Settings)
    assert active.config.llm.api_key.get_secret_value() == "sk-FIRST-secret"
    # The builtins are as the file spells them (alias), with the secret in clear for the hash,
    # and no computed field (it is not input).
    assert active.builtins == {
        "api-host": "127.0.0.1",
        "dsn": "",
        "headers": {},
        "items": [1, 2],
        "llm": {"api_key": "sk-FIRST-secret", "model": "gpt-4", "temperature": 0.7},
        "port": 8080,
        "tools": {"grafana": {"enabled": True, "token": None}},
    }
    assert list(active.builtins) == sorted(active.builtins)


@pytest.mark.parametrize(
    ("raw", "path", "position", "message"),
    [
        (b"llm:\n  model: gpt-4\n  api_key: k\n  temperature: hot\n", "llm.temperature", (4, 16),
         "Input should be a valid number"),
        (b"llm:\n  model: gpt-4\n", "llm.api_key", (2, 3), "Field required"),
        (b"llm: {model: m, api_key: k}\nextra: 1\n", "extra", (2, 1),
         "Extra inputs are not permitted"),
        (b"llm: {model: m, api_key: k}\nitems: [1, x]\n", "items[1]", (2, 12),
         "Input should be a valid integer"),
        # A mapping's key is named (msgspec leaves it out and the pipeline has to search).
        (b"llm: {model: m, api_key: k}\ntools:\n  a: {}\n  b: {enabled: maybe}\n",
         "tools.b.enabled", (4, 16), "Input should be a valid boolean"),
        (b"llm: {model: m, api_key: k}\ntools:\n  a: {bogus: 1}\n", "tools.a.bogus", (3, 7),
         "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_errors_name_the_field_and_its_line_and_column(
    pipeline: Pipeline[Settings],
    raw: bytes,
    path: str,
    position: tuple[int, int],
    message: str,
) -> None:
    error = schema_error(pipeline, raw)
    assert error.field_path == path
    assert (error.line, error.column) == position
    assert error.message.startswith(message)
    assert str(error).startswith(f"{SOURCE}:{position[0]}:{position[1]}: {message}")


def test_several_errors_name_the_first_and_count_the_rest(pipeline: Pipeline[Settings]) -> None:
    error = schema_error(pipeline, b"llm: {model: [m], api_key: [k]}\nport: x\n")
    assert error.field_path == "llm.model"
    assert error.message.endswith("(and 2 more errors)")


def test_a_union_member_is_not_taken_for_a_key() -> None:
    class U(pydantic.BaseModel):
        model_config = FROZEN
        value: int | list[int]

    error = schema_error(make_pipeline(U), b"value: {a: 1}\n")
    assert (error.field_path, error.line, error.column) == ("value", 1, 8)


def test_an_error_never_quotes_the_input(pipeline: Pipeline[Settings]) -> None:
    error = schema_error(pipeline, b"llm: {model: m, api_key: [sk-PLANTED]}\n")
    assert error.field_path == "llm.api_key"
    assert "PLANTED" not in f"{error!s}{error!r}{error.args}"


def test_whatever_a_model_validator_raises_is_a_refusal_and_never_quotes_a_secret() -> None:
    class Picky(pydantic.BaseModel):
        model_config = FROZEN
        api_key: str

        @pydantic.model_validator(mode="after")
        def refuse(self) -> Picky:
            if self.api_key.endswith("bad"):
                raise TypeError(f"refusing {self.api_key}")  # pydantic wraps only ValueError
            if self.api_key.endswith("worse"):
                raise ValueError(f"refusing {self.api_key}")
            return self

    pipeline = make_pipeline(Picky)
    active = pipeline.load(b"api_key: sk-PLANTED-good\n")
    for doc in (b"api_key: sk-PLANTED-bad\n", b"api_key: sk-PLANTED-worse\n"):
        evaluation = pipeline.evaluate(doc, active)
        assert evaluation.result is ReloadResult.VALIDATION_FAILED
        assert isinstance(evaluation.error, ConfigValidationError)
        assert "refusing ***" in evaluation.error.message
        assert "PLANTED" not in str(evaluation.error)


def test_secret_fields_are_found_by_type_marker_and_name() -> None:
    policy = FieldPolicy(Settings)
    assert set(policy.secrets) == {
        ("llm", "api_key"),
        ("tools", "*", "token"),
        ("dsn",),
        ("headers", "*"),
    }
    assert policy.is_secret(("headers", "authorization"))
    assert policy.is_secret(("tools", "grafana", "token"))
    assert not policy.is_secret(("llm", "model"))


def test_a_secret_change_is_a_change_shown_only_as_stars(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"sk-FIRST-secret", b"sk-SECOND-secret") + b"headers: {auth: Bearer-x}\n"
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.candidate is not None
    assert evaluation.candidate.config_hash != active.config_hash
    assert evaluation.changed == ("headers.auth", "llm.api_key")
    records = diff_records(active.builtins, evaluation.candidate.builtins, pipeline.policy)
    assert {r["path"]: (r["old"], r["new"]) for r in records} == {
        "headers.auth": (None, "***"),
        "llm.api_key": ("***", "***"),
    }
    shown = redacted(to_builtins(evaluation.candidate.config), pipeline.policy)
    assert shown["llm"] == {"api_key": "***", "model": "gpt-4", "temperature": 0.7}
    assert shown["headers"] == {"auth": "***"}
    assert "url" not in to_builtins(evaluation.candidate.config)  # derived, not config
    assert "SECOND" not in repr(evaluation.candidate.config)


def test_restart_required_through_annotated_keeps_the_running_value(
    pipeline: Pipeline[Settings], active: Active[Settings]
) -> None:
    raw = BASE.replace(b"port: 8080", b"port: 9090\napi-host: 0.0.0.0").replace(b"gpt-4", b"o3")
    evaluation = pipeline.evaluate(raw, active)
    assert evaluation.result is ReloadResult.CONFIG_CHANGED
    assert evaluation.candidate is not None
    config = evaluation.candidate.config
    assert (config.port, config.host, config.llm.model) == (8080, "127.0.0.1", "o3")
    assert evaluation.changed == ("llm.model",)
    assert [path for path, _ in evaluation.restart_required] == [("api-host",), ("port",)]


def test_a_restart_required_model_keeps_its_whole_running_value() -> None:
    class Kube(pydantic.BaseModel):
        model_config = FROZEN
        namespace: str
        replicas: int = 1

    class WithKube(pydantic.BaseModel):
        model_config = FROZEN
        kubernetes: Annotated[Kube, RestartRequired]
        level: str = "INFO"

    pipeline = make_pipeline(WithKube)
    active = pipeline.load(b"kubernetes: {namespace: a}\n")
    evaluation = pipeline.evaluate(b"kubernetes: {namespace: b, replicas: 3}\n", active)
    assert evaluation.result is ReloadResult.CONFIG_UNCHANGED
    assert [path for path, _ in evaluation.restart_required] == [("kubernetes",)]


class Tier(enum.Enum):
    FREE = "free"
    PAID = "paid"


class Rich(pydantic.BaseModel):
    model_config = FROZEN
    since: dt.date
    tier: Tier
    tags: frozenset[str]
    root: PurePosixPath
    port: Annotated[int, RestartRequired] = 1


def test_rich_values_hash_stably_and_survive_retention() -> None:
    pipeline = make_pipeline(Rich)
    raw = b"since: 2026-01-02\ntier: paid\ntags: [b, a]\nroot: /srv\n"
    active = pipeline.load(raw)
    assert active.builtins == {
        "port": 1,
        "root": "/srv",
        "since": dt.date(2026, 1, 2),
        "tags": ["a", "b"],
        "tier": "paid",
    }
    reordered = b"tags: [a, b]\nroot: /srv\ntier: paid\nsince: 2026-01-02\n"
    assert pipeline.load(reordered).config_hash == active.config_hash
    # The restart-required port is put back and the rest converted again from builtins.
    evaluation = pipeline.evaluate(raw.replace(b"paid", b"free") + b"port: 2\n", active)
    assert evaluation.candidate is not None
    config = evaluation.candidate.config
    assert (config.tier, config.tags, config.port) == (Tier.FREE, frozenset("ab"), 1)


def test_a_model_is_validated_as_pydantic_validates_it() -> None:
    """Lax unless the model says strict: a quoted number is a number, the config the same."""

    class Lax(pydantic.BaseModel):
        model_config = FROZEN
        retries: int

    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True, strict=True)
        retries: int

    lax = make_pipeline(Lax)
    assert lax.load(b"retries: '5'\n").config_hash == lax.load(b"retries: 5\n").config_hash
    assert schema_error(make_pipeline(Strict), b"retries: '5'\n").field_path == "retries"


def test_a_mutable_model_is_refused_even_nested() -> None:
    class Mutable(pydantic.BaseModel):
        model: str

    class Outer(pydantic.BaseModel):
        model_config = FROZEN
        name: str = ""
        inner: dict[str, list[Mutable | None]] = {}

    with pytest.raises(TypeError, match=r"\.Mutable must be declared with .*frozen=True"):
        make_pipeline(Mutable)
    with pytest.raises(TypeError, match=r"\.Mutable \(used in .*\.Outer\) must be declared"):
        make_pipeline(Outer)


def test_serializers_and_excluded_fields_do_not_bend_the_config() -> None:
    """The canonical form is the validated values, not ``model_dump``'s output: an
    ``exclude=True`` field still counts as a change, a serializer does not reshape the value
    that a restart-required retention converts back, and allowed extras count too."""

    class Shaped(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True, extra="allow")
        hidden: str = pydantic.Field(exclude=True)
        name: str
        port: Annotated[int, RestartRequired] = 1

        @pydantic.field_serializer("name")
        def shout(self, value: str) -> str:
            return value.upper()

    pipeline = make_pipeline(Shaped)
    active = pipeline.load(b"hidden: a\nname: svc\n")
    assert active.builtins == {"hidden": "a", "name": "svc", "port": 1}
    changed = pipeline.evaluate(b"hidden: b\nname: svc\nport: 2\n", active)
    assert changed.result is ReloadResult.CONFIG_CHANGED
    assert changed.changed == ("hidden",)
    assert changed.candidate is not None
    assert (changed.candidate.config.name, changed.candidate.config.port) == ("svc", 1)
    extra = pipeline.evaluate(b"hidden: a\nname: svc\nowner: me\n", active)
    assert extra.changed == ("owner",)


def test_both_restart_modes_are_found_through_annotated() -> None:
    class Identity(pydantic.BaseModel):
        model_config = FROZEN
        provider: Annotated[str, RestartRequired("refuse")] = "openai"
        port: Annotated[int, RestartRequired] = 1

    policy = FieldPolicy(Identity)
    assert (policy.refused, policy.restart_required) == ((("provider",),), (("port",),))


def test_unknown_keys_are_named_for_a_model_that_ignores_them() -> None:
    """pydantic's default (``extra="ignore"``) drops a key it does not know without a word; the
    engine names it like a Struct's, and ``strict`` refuses it. A model that forbids extras
    refuses them itself; one that allows them keeps them as config."""

    class Ignoring(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True)
        temperature: float = 0.7

    class Allowing(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True, extra="allow")
        temperature: float = 0.7

    raw = b"temperature: 0.2\ntemprature: 0.1\n"
    unknown = make_pipeline(Ignoring).load(raw).unknown
    assert [(k.dotted, k.suggestion, k.line) for k in unknown] == [("temprature", "temperature", 2)]
    strict = Pipeline(
        Ignoring,
        source=SOURCE,
        fmt="yaml",
        max_bytes=1 << 20,
        validators=(),
        policy=FieldPolicy(Ignoring),
        strict=True,
    )
    error = schema_error(strict, raw)
    assert (error.reason, error.field_path, error.line) == ("unknown_key", "temprature", 2)
    assert make_pipeline(Allowing).load(raw).unknown == ()
