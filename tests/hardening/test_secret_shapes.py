"""Secrets recognised by their header-like name or by their shape (issue 17, item 9).

Each kind is planted with a unique value: an ``Authorization: Bearer`` header in a nested
dict, ``Cookie`` / ``Set-Cookie`` / ``X-Api-Key`` headers, ``auth.pass``, ``*pwd*`` and
``*credential*`` fields, a URL with ``user:password@`` in ``llm.endpoint``,
``data_storage_url`` and a ``postgresql://`` DSN, a Slack webhook URL, a bearer token in a
free-text field, and a secret query parameter. Every output is scanned (logs, ``/-/config``,
``/-/reload``, ``/metrics``, the CLI's ``check``, ``check --explain``, ``check --against`` and
``watch --json``) for any planted value, AND checked positively: ``***`` stands exactly where
the value was, the rest of the text intact (an output that wiped the whole message would fail).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hotreload import HotReloader
from hotreload.asgi import HotReloadAdmin
from hotreload.cli import main
from hotreload.testing import write_atomic
from tests.hardening.conftest import WAIT, watcher_up
from tests.hardening.test_secrets import PLANT, cli, leaks, watch_json

pytestmark = pytest.mark.timeout(30)


class Llm(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str
    endpoint: str = ""


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    user: str = ""
    pass_: str = msgspec.field(default="", name="pass")


class Shapes(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    llm: Llm
    auth: Auth = Auth()
    data_storage_url: str = ""
    database: str = ""
    slack: str = ""
    notes: str = ""
    report_url: str = ""
    db_pwd: str = ""
    aws_credential: str = ""
    headers: dict[str, str] = {}
    toolsets: dict[str, Any] = {}
    tier: Literal["free", "paid"] = "free"
    max_tokens: int = 4096


def doc(n: int, model: str = "gpt-4") -> str:
    p = f"{PLANT}{n}"
    return f"""\
llm:
  model: {model}
  endpoint: https://svc:{p}llm@llm.example/v1
auth: {{user: admin, pass: {p}pass}}
data_storage_url: http://ds:{p}ds@storage:8080
database: postgresql://admin:{p}pg@db:5432/app
slack: https://hooks.slack.com/services/T0/B0/{p}slack
notes: call with Bearer {p}notes please
report_url: https://reports.example/x?api_key={p}query&page=2
db_pwd: {p}pwd
aws_credential: {p}cred
headers:
  Authorization: Bearer {p}auth
  Cookie: session={p}cookie
  Set-Cookie: id={p}setcookie
  X-Api-Key: {p}xapikey
toolsets:
  http:
    headers: {{Authorization: "Bearer {p}nested"}}
    status_map: {{404: retry}}
max_tokens: 4096
"""


#: Where each masked value must appear in the config ``/-/config`` shows (mask in place).
def masked_config() -> dict[str, Any]:
    return {
        "llm": {"model": "gpt-4o", "endpoint": "https://svc:***@llm.example/v1"},
        "auth": {"user": "admin", "pass": "***"},
        "data_storage_url": "http://ds:***@storage:8080",
        "database": "postgresql://admin:***@db:5432/app",
        "slack": "https://hooks.slack.com/***",
        "notes": "call with Bearer *** please",
        "report_url": "https://reports.example/x?api_key=***&page=2",
        "db_pwd": "***",
        "aws_credential": "***",
        "headers": {
            "Authorization": "***",
            "Cookie": "***",
            "Set-Cookie": "***",
            "X-Api-Key": "***",
        },
        "toolsets": {
            "http": {"headers": {"Authorization": "***"}, "status_map": {"404": "retry"}},
        },
        "tier": "free",
        "max_tokens": 4096,  # a count of tokens, not a token: shown
    }


def refuse_quoting(config: Shapes) -> None:
    """A careless validator: quotes the whole config it refuses."""
    if config.llm.model == "refuse-me":
        raise ValueError(f"refusing {config!r}")


async def test_secret_shapes_are_masked_in_place_in_every_output(
    tmp_path: Path,
    registry: CollectorRegistry,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(doc(1))
    token = "admin-token-not-planted"  # noqa: S105 - the admin's own, planted nowhere
    bodies: list[str] = []
    async with HotReloader(
        path,
        schema=Shapes,
        name="shapes",
        registry=registry,
        poll_interval=0,
        validators=(refuse_quoting,),
    ) as r:
        await watcher_up(r)
        write_atomic(path, doc(2, model="gpt-4o"))
        committed = await r.wait_for_generation(2, timeout=WAIT)
        assert committed.config.llm.endpoint == f"https://svc:{PLANT}2llm@llm.example/v1"
        # A refusal that quotes every value, and a tool failure that quotes two of them.
        write_atomic(path, doc(2, model="refuse-me"))
        refused = await r.wait_for_outcome(lambda o: o.error is not None, timeout=WAIT)
        # An enum refused: msgspec quotes the value, here a URL with a password.
        write_atomic(path, doc(2, model="gpt-4o") + f"tier: https://u:{PLANT}2tier@x\n")
        enum = await r.wait_for_outcome(
            lambda o: o.error is not None and o is not refused, timeout=WAIT
        )
        for _ in range(2):
            r.record_failure(
                "http",
                "HTTPError",
                f"401 from https://svc:{PLANT}2llm@llm.example/v1 with Bearer {PLANT}2auth",
            )
        await r.failures_settled()
        admin = HotReloadAdmin(r, reload_token=token)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=admin), base_url="http://admin"
        ) as client:
            for url in ("/-/config", "/metrics", "/-/readyz"):
                response = await client.get(url)
                assert response.status_code == 200, (url, response.text)
                bodies.append(response.text)
            reload = await client.post("/-/reload", headers={"Authorization": f"Bearer {token}"})
            bodies.append(reload.text)

    report = json.loads(bodies[0])
    assert report["config"] == masked_config()
    failure = report["failures"]["http"]["last_error_message"]
    # The whole header value is a secret of the config: it goes as one.
    assert failure == "401 from https://svc:***@llm.example/v1 with ***"
    assert refused.error is not None
    assert "endpoint='https://svc:***@llm.example/v1'" in refused.error.message
    assert "database='postgresql://admin:***@db:5432/app'" in refused.error.message
    assert enum.error is not None
    assert enum.error.message == "Invalid enum value 'https://u:***@x'"

    found = leaks(*bodies, generate_latest(registry).decode())
    found += leaks(*logs, *(rec.getMessage() for rec in caplog.records), caplog.text)
    captured = capsys.readouterr()
    found += leaks(captured.out, captured.err)
    for outcome in (refused, enum):
        found += leaks(outcome, repr(outcome), outcome.error, repr(outcome.error))
    assert found == []
    # The log line of the refusal is there, and says what was refused, masked in place.
    [logged] = [e for e in logs if e["event"].startswith("Failed") and "refusing" in e["error"]]
    assert "auth=Auth(user='admin', pass_='***')" in logged["error"]


SCHEMA_MODULE = "\n".join(
    [
        "from typing import Any, Literal",
        "import msgspec",
        inspect.getsource(Llm),
        inspect.getsource(Auth),
        inspect.getsource(Shapes),
    ]
)


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    (tmp_path / "shapes_schema.py").write_text(SCHEMA_MODULE)
    return tmp_path


def test_cli_check_and_against_mask_secret_shapes_in_place(
    schema_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(schema_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on it
    old, new = schema_dir / "old.yaml", schema_dir / "new.yaml"
    old.write_text(doc(1))
    new.write_text(doc(2, model="gpt-4o"))
    schema = ("--schema", "shapes_schema:Shapes")
    outputs: list[str] = []
    assert main(["check", str(new), *schema]) == 0
    assert main(["check", str(new), *schema, "--json"]) == 0
    assert main(["check", str(new), "--against", str(old), *schema]) == 0
    text = capsys.readouterr()
    outputs += [text.out, text.err]
    assert main(["check", str(new), *schema, "--explain"]) == 0
    explained = capsys.readouterr()
    outputs += [explained.out, explained.err]
    assert 'database = "postgresql://admin:***@db:5432/app"' in explained.out
    assert 'notes = "call with Bearer *** please"' in explained.out
    assert "headers.Authorization = ***" in explained.out
    assert "llm.endpoint" in text.out
    assert '"https://svc:***@llm.example/v1" -> "https://svc:***@llm.example/v1"' in text.out
    done = cli(schema_dir, "check", str(new), "--against", str(old), *schema, "--json")
    assert done.returncode == 0, done.stderr
    outputs += [done.stdout, done.stderr]
    changes = {c["path"]: c for c in json.loads(done.stdout)["changes"]}
    assert changes["database"]["new"] == "postgresql://admin:***@db:5432/app"
    assert changes["slack"]["new"] == "https://hooks.slack.com/***"
    assert changes["headers.Authorization"]["new"] == "***"
    assert changes["toolsets.http.headers.Authorization"]["old"] == "***"
    assert changes["notes"]["new"] == "call with Bearer *** please"
    assert changes["auth.pass"]["new"] == "***"
    assert leaks(*outputs) == []


async def test_cli_watch_json_masks_secret_shapes_in_place(schema_dir: Path) -> None:
    path = schema_dir / "config.yaml"
    path.write_text(doc(1))
    docs: list[str | bytes] = [doc(2, model="gpt-4o"), doc(2) + f"tier: https://u:{PLANT}3tier@x\n"]
    lines, output = await watch_json(schema_dir, path, "shapes_schema:Shapes", docs)
    assert [line["result"] for line in lines[1:] if line["trigger"] != "rescan"] == [
        "config_changed",
        "validation_failed",
    ]
    assert lines[-1]["error"]["message"] == "Invalid enum value 'https://u:***@x'"
    assert leaks(*lines, output) == []
