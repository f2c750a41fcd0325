"""Secret values never leave the config: planted values are looked for in every output.

Fields named like ``api_key``, ``token`` or ``password``, fields marked `Secret` and (in the
pydantic twin of the schema) a ``SecretStr`` named like nothing secret get unique planted
values; the tests then scan structlog events, stdlib log records, stdout/stderr,
outcomes and errors (``str``, ``repr``, ``args``), changed key paths, the metrics exposition,
the admin endpoints (``/-/config``, ``/-/reload``) and the CLI's output (``check``,
``check --against``, ``watch --json``), for valid documents and, above all, for rejected
ones, where the error sits right next to the secret or on it. Each test runs with the msgspec
schema and with its pydantic twin (the ``secret_schema`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
import pydantic
import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from hotreload import ConfigError, HotReloader, ReloadOutcome, Secret
from hotreload.asgi import HotReloadAdmin
from hotreload.cli import main
from hotreload.testing import write_atomic
from tests.hardening.conftest import WAIT, watcher_up

pytestmark = pytest.mark.timeout(30)

PLANT = "PLANTED"


class Llm(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    api_key: str = ""


class SecretSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    llm: Llm
    token: str = ""
    password: str = ""
    dsn: Annotated[str, Secret] = ""
    """Named like nothing secret: only the marker makes it one."""
    tier: Annotated[Literal["free", "paid"], Secret] = "free"
    """An enum: msgspec quotes a value it refuses."""


class PydanticLlm(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, strict=True, extra="forbid")

    model: str
    api_key: str = ""


class PydanticSecretSettings(pydantic.BaseModel):
    """`SecretSettings` as a pydantic model; ``dsn`` is secret by its type alone."""

    model_config = pydantic.ConfigDict(frozen=True, strict=True, extra="forbid")

    llm: PydanticLlm
    token: str = ""
    password: str = ""
    dsn: pydantic.SecretStr = pydantic.SecretStr("")
    tier: Annotated[Literal["free", "paid"], Secret] = "free"


AnySecretSettings = SecretSettings | PydanticSecretSettings
SecretSchema = type[SecretSettings] | type[PydanticSecretSettings]


@pytest.fixture(params=[SecretSettings, PydanticSecretSettings], ids=["msgspec", "pydantic"])
def secret_schema(request: pytest.FixtureRequest) -> SecretSchema:
    schema: SecretSchema = request.param
    return schema


def valid(n: int, model: str = "gpt-4") -> str:
    return textwrap.dedent(
        f"""\
        llm:
          model: {model}
          api_key: {PLANT}-key-{n}
        token: {PLANT}-token-{n}
        password: "{PLANT}-password-{n}"
        dsn: postgres://app:{PLANT}-dsn-{n}@db/app
        """
    )


#: Rejected documents, each with the error right next to a secret or on it.
REJECTED = {
    "parse-error-after-secret": f"llm:\n  api_key: {PLANT}-a1\n  model: [gpt\n",
    "parse-error-inside-secret": f'token: "{PLANT}-a2\n',
    "type-error-on-secret": f"llm: {{model: m, api_key: [{PLANT}-a3]}}\n",
    "secret-read-as-a-tag": f"llm: {{model: m}}\npassword: !{PLANT}-a4\n",
    "secret-read-as-an-alias": f"llm: {{model: m}}\ntoken: *{PLANT}-a5\n",
    "secret-read-as-an-anchor": f"llm: {{model: m}}\ntoken: &{PLANT}-a6\n",
    "bad-escape-in-secret": f'llm: {{model: m}}\npassword: "{PLANT}-a7\\q"\n',
    "duplicate-secret-key": f"llm: {{model: m}}\ntoken: {PLANT}-a8\ntoken: {PLANT}-a9\n",
    "unknown-field-next-to-secret": f"llm: {{model: m, api_key: {PLANT}-b1, extra: 1}}\n",
    "enum-secret-refused": f"llm: {{model: m}}\ntier: {PLANT}-b2\n",
    "secret-with-control-char": f"llm: {{model: m}}\ntoken: {PLANT}-b3\x07\n",
    "validator-quotes-the-config": f"llm: {{model: refuse-me, api_key: {PLANT}-b4}}\n",
}
REJECTED_BYTES = {
    "non-utf8-after-secret": f"llm: {{model: m}}\ntoken: {PLANT}-b5".encode() + b"\xff\n",
    "nul-after-secret": f"llm: {{model: m}}\ntoken: {PLANT}-b6".encode() + b"\x00\n",
}


def picky(config: AnySecretSettings) -> None:
    """A validator that quotes the whole config it refuses (as careless ones do)."""
    if config.llm.model == "refuse-me":
        raise ValueError(f"refusing {config!r}")


def leaks(*texts: object) -> list[str]:
    return [str(t) for t in texts if PLANT in str(t)]


def outcome_texts(outcome: ReloadOutcome) -> list[object]:
    error = outcome.error
    texts: list[object] = [outcome, repr(outcome), *outcome.changed]
    if error is not None:
        texts += [error, repr(error), *error.args, *vars(error).values()]
    return texts


@pytest.fixture(params=["structlog", "stdlib"])
def logs_either_way(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> list[MutableMapping[str, Any]]:
    """Both ways the library logs: through a configured structlog (its events, returned), and,
    when nobody configured it, as rendered messages on the stdlib logger (every level let
    through to ``caplog``; nothing returned)."""
    if request.param == "structlog":
        logs: list[MutableMapping[str, Any]] = request.getfixturevalue("logs")
        return logs
    request.getfixturevalue("structlog_unconfigured")
    caplog.set_level(logging.DEBUG)
    return []


async def test_secrets_never_appear_in_logs_outcomes_or_metrics(  # noqa: PLR0917
    tmp_path: Path,
    registry: CollectorRegistry,
    logs_either_way: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    secret_schema: SecretSchema,
) -> None:
    logs = logs_either_way
    path = tmp_path / "config.yaml"
    path.write_text(valid(1))
    docs: list[str | bytes] = [*REJECTED.values(), *REJECTED_BYTES.values()]
    seen: list[ReloadOutcome] = []
    async with HotReloader(
        path,
        schema=secret_schema,
        name="secrets",
        registry=registry,
        poll_interval=0,
        validators=(picky,),
    ) as r:
        await watcher_up(r)
        outcomes = r.outcomes()
        # A valid change of every secret and of the model: committed, values unlogged.
        write_atomic(path, valid(2, model="gpt-4o"))
        await r.wait_for_generation(2, timeout=WAIT)
        for doc in docs:
            write_atomic(path, doc)
            outcome = await r.wait_for_outcome(lambda o: o.error is not None, timeout=WAIT)
            assert r.config.llm.api_key == f"{PLANT}-key-2"
            seen.append(outcome)
        write_atomic(path, valid(3))
        await r.wait_for_generation(3, timeout=WAIT)
        async with outcomes:
            while not outcomes._queue.empty():
                seen.append(await anext(outcomes))
    assert len({id(o.error) for o in seen if o.error is not None}) >= len(docs)
    changed = {p for o in seen for p in o.changed}
    assert {"llm.api_key", "token", "password", "dsn", "llm.model"} <= changed

    found = leaks(*(t for o in seen for t in outcome_texts(o)))
    found += leaks(*logs)
    found += leaks(*(r.getMessage() for r in caplog.records), caplog.text)
    captured = capsys.readouterr()
    found += leaks(captured.out, captured.err)
    found += leaks(generate_latest(registry).decode())
    assert found == []
    if not structlog.is_configured():  # the records really carry the events (could leak)
        assert any(r.name == "hotreload" and r.levelno == logging.DEBUG for r in caplog.records)
        assert "Failed to apply new configuration - keeping previous" in caplog.text


@pytest.mark.parametrize(
    "doc", [*REJECTED.values(), *REJECTED_BYTES.values()], ids=[*REJECTED, *REJECTED_BYTES]
)
async def test_a_secret_in_a_document_refused_at_start_is_not_in_the_error(
    tmp_path: Path, registry: CollectorRegistry, doc: str | bytes, secret_schema: SecretSchema
) -> None:
    """Fail-fast start raises the same typed error, just as clean."""
    path = tmp_path / "config.yaml"
    path.write_bytes(doc.encode() if isinstance(doc, str) else doc)
    reloader = HotReloader(
        path, schema=secret_schema, name="start", registry=registry, validators=(picky,)
    )
    with pytest.raises(ConfigError) as caught:
        await reloader.__aenter__()
    error = caught.value
    assert leaks(error, repr(error), *error.args, *vars(error).values()) == []


# -- the command line ------------------------------------------------------------------------

# The same schema, as a module the CLI subprocess can import (written next to the config).
SCHEMA_MODULE = "\n".join(
    [
        "from typing import Annotated, Literal",
        "import msgspec",
        "import pydantic",
        "from hotreload import Secret",
        inspect.getsource(Llm),
        inspect.getsource(SecretSettings),
        inspect.getsource(PydanticLlm),
        inspect.getsource(PydanticSecretSettings),
    ]
)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotreload.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    (tmp_path / "secret_schema.py").write_text(SCHEMA_MODULE)
    return tmp_path


def test_cli_check_never_prints_a_secret(
    schema_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secret_schema: SecretSchema,
) -> None:
    """Every document through ``main()`` in this process (fast), and the sharpest ones through
    the real command in a subprocess as well."""
    monkeypatch.chdir(schema_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on it
    path = schema_dir / "config.yaml"
    docs: dict[str, str | bytes] = {"valid": valid(7), **REJECTED, **REJECTED_BYTES}
    schema = ("--schema", f"secret_schema:{secret_schema.__name__}")
    found: list[str] = []
    for name, doc in docs.items():
        path.write_bytes(doc.encode() if isinstance(doc, str) else doc)
        for extra in ((), ("--json",)):
            code = main(["check", str(path), *schema, *extra])
            out = capsys.readouterr()
            accepted = ("valid", "validator-quotes-the-config")  # no validators in the CLI
            assert code == (0 if name in accepted else 1), (name, out.err)
            found += [f"{name}: {text}" for text in leaks(out.out, out.err)]
        if name in ("secret-read-as-a-tag", "enum-secret-refused", "type-error-on-secret"):
            done = cli(schema_dir, "check", str(path), *schema, "--json")
            assert done.returncode == 1, done.stderr
            found += [f"{name} (subprocess): {t}" for t in leaks(done.stdout, done.stderr)]
    assert found == []


async def read_json(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), WAIT * 2)
    assert line, "the process ended early"
    record: dict[str, Any] = json.loads(line)
    return record


async def watch_json(
    cwd: Path, path: Path, schema: str, docs: list[str | bytes]
) -> tuple[list[dict[str, Any]], str]:
    """Run ``hotreload watch --json`` on ``path``, write each of ``docs`` in turn and collect
    the JSON lines up to each one's outcome; then SIGINT it. The lines and all of its output
    (stdout and stderr, for scanning), once it exited 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotreload.cli",
        "watch",
        str(path),
        "--schema",
        schema,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        lines.append(await read_json(proc.stdout))
        assert lines[0]["result"] == "loaded"
        for doc in docs:
            write_atomic(path, doc)
            while True:  # until the outcome of this version (not the watcher's first rescan)
                lines.append(await read_json(proc.stdout))
                if lines[-1]["trigger"] != "rescan":
                    break
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), WAIT * 2)
    assert proc.returncode == 0, err
    return lines, out.decode() + err.decode()


async def test_cli_watch_json_never_prints_a_secret(
    schema_dir: Path, secret_schema: SecretSchema
) -> None:
    path = schema_dir / "config.yaml"
    path.write_text(valid(1))
    docs: list[str | bytes] = [
        valid(2, model="gpt-4o"),
        *REJECTED.values(),
        *REJECTED_BYTES.values(),
        valid(3),
    ]
    schema = f"secret_schema:{secret_schema.__name__}"
    lines, output = await watch_json(schema_dir, path, schema, docs)
    results = [line["result"] for line in lines]
    # The CLI runs no validators: the document only a validator refuses is a change there.
    assert results.count("config_changed") == 3
    assert results.count("validation_failed") == len(REJECTED) + len(REJECTED_BYTES) - 1
    assert leaks(*lines, output) == []


# -- the admin endpoint and the diff --------------------------------------------------------


@contextlib.asynccontextmanager
async def admin_client(
    path: Path, registry: CollectorRegistry, secret_schema: SecretSchema
) -> AsyncIterator[tuple[HotReloader[AnySecretSettings], Callable[[], Awaitable[None]], list[str]]]:
    """A reloader behind `HotReloadAdmin`; ``look()`` fetches every admin endpoint and keeps
    the bodies in the list it yields."""
    token = "reload-token-not-a-config-secret"  # noqa: S105 - the admin's, planted nowhere
    async with HotReloader(
        path,
        schema=secret_schema,
        name="admin",
        registry=registry,
        poll_interval=0,
        validators=(picky,),
    ) as r:
        admin = HotReloadAdmin(r, reload_token=token)
        transport = httpx.ASGITransport(app=admin)
        bodies: list[str] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:

            async def look() -> None:
                for url in ("/-/config", "/metrics", "/-/readyz"):
                    response = await client.get(url)
                    assert response.status_code == 200, (url, response.text)
                    bodies.append(response.text)
                reload = await client.post(
                    "/-/reload", headers={"Authorization": f"Bearer {token}"}
                )
                assert reload.status_code == 200, reload.text
                bodies.append(reload.text)

            await watcher_up(r)
            yield r, look, bodies


async def test_admin_config_endpoint_never_shows_a_secret(
    tmp_path: Path,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    secret_schema: SecretSchema,
) -> None:
    """``GET /-/config`` (and ``/-/reload``, ``/metrics``) after every kind of outcome: a valid
    change, each rejected document, and a change pending behind a session."""
    path = tmp_path / "config.yaml"
    path.write_text(valid(1))
    async with admin_client(path, registry, secret_schema) as (r, look, bodies):
        write_atomic(path, valid(2, model="gpt-4o"))
        await r.wait_for_generation(2, timeout=WAIT)
        await look()
        assert json.loads(bodies[0])["config"]["llm"]["api_key"] == "***"
        docs: list[str | bytes] = [*REJECTED.values(), *REJECTED_BYTES.values()]
        for doc in docs:
            write_atomic(path, doc)
            await r.wait_for_outcome(lambda o: o.error is not None, timeout=WAIT)
            await look()
        async with r.session():
            write_atomic(path, valid(3))
            await r.wait_for_outcome(lambda o: o.deferred, timeout=WAIT)
            await look()
        await r.wait_for_generation(3, timeout=WAIT)
    assert leaks(*bodies) == []
    assert leaks(*logs) == []


async def record_failures_quoting_the_key(r: HotReloader[AnySecretSettings]) -> None:
    """A tool's error that quotes the key in force, as an HTTP client's 401 message may."""
    key = r.config.llm.api_key
    for _ in range(2):
        r.record_failure("llm", "AuthenticationError", f"401: key {key} was refused")
    await r.failures_settled()


async def test_admin_config_masks_a_secret_quoted_by_a_tool_failure(
    tmp_path: Path, registry: CollectorRegistry, secret_schema: SecretSchema
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(valid(1))
    async with admin_client(path, registry, secret_schema) as (r, look, bodies):
        await record_failures_quoting_the_key(r)
        await look()
        assert json.loads(bodies[0])["failures"]
    assert leaks(*bodies) == []


async def test_a_secret_quoted_by_a_tool_failure_is_not_logged(
    tmp_path: Path,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    secret_schema: SecretSchema,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(valid(1))
    async with HotReloader(
        path, schema=secret_schema, name="tool", registry=registry, poll_interval=0
    ) as r:
        await record_failures_quoting_the_key(r)
    assert leaks(*logs) == []


def test_cli_check_against_shows_secret_changes_as_stars(
    schema_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secret_schema: SecretSchema,
) -> None:
    """``check --against`` lists changed key paths with old and new values: secrets as ***."""
    monkeypatch.chdir(schema_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    old, new = schema_dir / "old.yaml", schema_dir / "new.yaml"
    old.write_text(valid(1))
    new.write_text(valid(2, model="gpt-4o"))
    schema = ("--schema", f"secret_schema:{secret_schema.__name__}")
    outputs: list[str] = []
    for extra in ((), ("--json",)):
        assert main(["check", str(new), "--against", str(old), *schema, *extra]) == 0
        out = capsys.readouterr()
        outputs += [out.out, out.err]
    assert "llm.model" in outputs[0]
    assert "llm.api_key" in outputs[0]
    assert "***" in outputs[0]
    done = cli(schema_dir, "check", str(new), "--against", str(old), *schema, "--json")
    assert done.returncode == 0, done.stderr
    changes = {c["path"]: c for c in json.loads(done.stdout)["changes"]}
    assert set(changes) == {"llm.model", "llm.api_key", "token", "password", "dsn"}
    assert changes["token"]["new"] == "***"
    assert leaks(*outputs, done.stdout, done.stderr) == []
