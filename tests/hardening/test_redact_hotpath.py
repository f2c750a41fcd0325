"""Secret redaction on the hot path (issue 23): shapes that slipped through, values that are
no secret, keys, secrets quoted in other fields, and secrets worked out lazily.

Each test plants a value and checks both sides: the secret is gone from the output, and
``***`` stands where it was with the rest of the text intact.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hotreload import Fields, HotReloader, _redact
from hotreload._fields import _MEMO, FieldPolicy, Secrets, format_path
from hotreload._present import outcome_line, redacted
from hotreload._provenance import dotted
from hotreload._redact import REDACTED, mask_key, mask_text, redact, scrub_all, secret_values
from hotreload.asgi import config_report
from hotreload.cli import main
from hotreload.testing import write_atomic
from tests.hardening.conftest import next_commit, open_reloader, watcher_up

# -- 2. three credential shapes ---------------------------------------------------------------

TOKEN_URLS = [
    ("https://ghp_a1b2c3d4e5f6g7h8@github.com/org/repo.git", "ghp_a1b2c3d4e5f6g7h8"),
    ("https://github_pat_11ABCDEFG0123@github.com/org/repo", "github_pat_11ABCDEFG0123"),
    ("https://glpat-AbCdEfGhIj@gitlab.example.com/group/x.git", "glpat-AbCdEfGhIj"),
    ("https://xoxb-1234-5678-abcdef@slack.example.com/", "xoxb-1234-5678-abcdef"),
    ("https://sk-proj-abcdef@api.example.com/v1", "sk-proj-abcdef"),
    ("https://a1b2c3d4e5f6a7b8c9d0e1@git.example.com/", "a1b2c3d4e5f6a7b8c9d0e1"),
]


@pytest.mark.parametrize(("url", "token"), TOKEN_URLS)
def test_a_token_as_the_whole_userinfo_is_masked(url: str, token: str) -> None:
    shown = mask_text(f"cloning {url} failed")
    assert token not in shown
    assert shown == f"cloning {url.replace(token, REDACTED)} failed"
    assert token in secret_values({"repo": url}, lambda _: False)


def test_a_user_name_alone_is_no_token() -> None:
    for text in ("https://git@github.com/x", "ssh://deploy@host/", "https://alice.smith@h/"):
        assert mask_text(text) == text


def test_user_password_masks_after_the_first_colon() -> None:
    assert mask_text("https://oauth2:glpat-xyz:more@gitlab.com/") == (
        f"https://oauth2:{REDACTED}@gitlab.com/"
    )
    assert mask_text("postgresql://admin:s3:cr3t@db/app") == f"postgresql://admin:{REDACTED}@db/app"


def test_a_libpq_keyword_dsn_masks_its_password() -> None:
    dsn = "host=db user=app password=s3cretpw dbname=x"
    assert mask_text(dsn) == f"host=db user=app password={REDACTED} dbname=x"
    quoted = r"host=db password='s3 cr\'et' sslpassword = k3y2 port=5432"
    assert mask_text(quoted) == (
        f"host=db password='{REDACTED}' sslpassword = {REDACTED} port=5432"
    )
    assert {"s3cretpw"} <= secret_values({"dsn": dsn}, lambda _: False)


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("Authorization: Token abc", f"Authorization: Token {REDACTED}"),
        ("Authorization: Bearer abc", f"Authorization: Bearer {REDACTED}"),
        ("authorization:Bearer abc", f"authorization:Bearer {REDACTED}"),
        ("Proxy-Authorization: Basic dXNlcg==", f"Proxy-Authorization: Basic {REDACTED}"),
        ("X-Api-Key: abc", f"X-Api-Key: {REDACTED}"),
        ("X-Auth-Token: abc123", f"X-Auth-Token: {REDACTED}"),
        ("Cookie: session=abc; theme=dark", f"Cookie: {REDACTED}"),
        ("X-Request-Id: 42", "X-Request-Id: 42"),
        ("Accept: application/json", "Accept: application/json"),
    ],
)
def test_a_header_string_in_a_list_is_masked(header: str, shown: str) -> None:
    config = {"toolset": {"headers": ["Accept: */*", header]}}
    assert redact(config, lambda _: False) == {"toolset": {"headers": ["Accept: */*", shown]}}


def test_a_header_value_runs_to_the_end_of_its_line() -> None:
    text = "sent:\nAuthorization: Token abc def\nAccept: */*"
    assert mask_text(text) == f"sent:\nAuthorization: Token {REDACTED}\nAccept: */*"


# -- 3. booleans and numbers are never masked by name -----------------------------------------


def test_only_strings_are_masked_by_name() -> None:
    config = {
        "token_reviewer_enabled": True,
        "api_key_rotation_days": 30,
        "password_min_entropy": 3.5,
        "secret_ref": None,
        "api_key": "s3cret-value",
        "credentials": {"user": "admin", "retries": 3, "pass": "hunter22", "list": ["a", 1]},
    }
    assert redact(config, FieldPolicy(dict).is_secret) == {
        "token_reviewer_enabled": True,
        "api_key_rotation_days": 30,
        "password_min_entropy": 3.5,
        "secret_ref": None,
        "api_key": REDACTED,
        "credentials": {"user": REDACTED, "retries": 3, "pass": REDACTED, "list": [REDACTED, 1]},
    }


def test_the_demo_shows_a_boolean_named_like_a_token() -> None:
    """The demo's ``/-/config`` showed ``"token_reviewer_enabled": "***"`` for ``true``."""
    policy = FieldPolicy(dict)
    shown = redacted({"k8s": {"token_reviewer_enabled": True, "token": "abc"}}, policy)
    assert shown == {"k8s": {"token_reviewer_enabled": True, "token": REDACTED}}


# -- 6. secrets worked out lazily, is_secret memoised -----------------------------------------


async def test_a_commit_does_not_work_out_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Worker._commit`` walked the whole config for its secret strings at every commit, on
    the event loop. Now they are worked out on first use: a commit walks nothing."""
    calls: list[object] = []
    real = _redact.secret_values

    def counting(value: object, is_secret: object) -> set[str]:
        calls.append(value)
        return real(value, is_secret)  # type: ignore[arg-type]

    monkeypatch.setattr(_redact, "secret_values", counting)
    path = tmp_path / "config.yaml"
    write_atomic(path, b"model: sk-model-secret-1\nretries: 1\n")
    async with open_reloader(path, CollectorRegistry(), fields=Fields(secrets=["model"])) as r:
        for n in range(2, 5):
            write_atomic(path, f"model: sk-model-secret-{n}\nretries: {n}\n".encode())
            await next_commit(r)
        assert calls == []
        # First use: the secrets of the config in force, longest first, once.
        assert r._scrub("failed with sk-model-secret-4 twice: sk-model-secret-4") == (
            "failed with *** twice: ***"
        )
        r._scrub("again")
        assert len(calls) == 1


def test_secrets_are_longest_first_and_worked_out_once() -> None:
    secrets = Secrets({"a": {"token": "abcd", "key": "abcdefgh"}}, FieldPolicy(dict).is_secret)
    assert secrets.values == ("abcdefgh", "abcd")
    assert secrets.scrub("x abcdefgh y abcd") == "x *** y ***"
    assert Secrets().values == ()
    assert Secrets().scrub("Bearer abcdefghijkl") == "Bearer ***"


def test_is_secret_is_memoised_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = FieldPolicy(dict, secrets=["db.dsn"])
    seen: list[str] = []
    real = _redact.is_secret_name

    def counting(segment: str) -> bool:
        seen.append(segment)
        return real(segment)

    monkeypatch.setattr(_redact, "is_secret_name", counting)
    for _ in range(3):
        assert policy.is_secret(("db", "dsn"))
        assert policy.is_secret(("llm", "api_key"))
        assert not policy.is_secret(("llm", "model"))
    assert seen == ["db", "dsn", "llm", "api_key", "llm", "model"]
    for n in range(3 * _MEMO):
        policy.is_secret(("free", str(n)))
    assert len(policy._secret_paths) <= _MEMO


# -- 5. a secret value quoted in another field -------------------------------------------------

QUOTED_KEY = "sk-quoted-a1b2c3d4"


class Quoting(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str
    note: str = ""
    retries: int = 1


QUOTING_MODULE = "import msgspec\n" + inspect.getsource(Quoting)


def _quoting_doc(retries: int) -> str:
    return f"api_key: {QUOTED_KEY}\nnote: 'key is {QUOTED_KEY}, keep it'\nretries: {retries}\n"


async def test_explain_and_config_mask_a_secret_quoted_in_another_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_quoting_doc(1))
    async with HotReloader(
        path, schema=Quoting, name="quoting", registry=CollectorRegistry(), poll_interval=0
    ) as r:
        explained = {e.path: e.value for e in r.explain()}
        assert explained["note"] == "key is ***, keep it"
        assert explained["api_key"] == REDACTED
        report = config_report(r, origins=True)
        assert report["config"]["note"] == "key is ***, keep it"
        assert QUOTED_KEY not in json.dumps(report)


def test_cli_explain_and_against_mask_a_secret_quoted_in_another_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quoting_schema.py").write_text(QUOTING_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on it
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(_quoting_doc(1).replace("keep it", "old note"))
    new.write_text(_quoting_doc(2))
    schema = ("--schema", "quoting_schema:Quoting")
    for extra in (["--explain"], ["--explain", "--json"], ["--against", str(old)]):
        assert main(["check", str(new), *schema, *extra]) == 0
    assert main(["check", str(new), *schema, "--against", str(old), "--json"]) == 0
    out = capsys.readouterr().out
    assert QUOTED_KEY not in out
    assert 'note = "key is ***, keep it"' in out
    assert '"key is ***, old note" -> "key is ***, keep it"' in out


# -- 4. keys are redacted like values ----------------------------------------------------------

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
WEBHOOK_SECRET = "services/T000/B000/XXXXXXXX"  # noqa: S105 - planted
KEY_TOKEN = "sk-live-9f8e7d6c5b4a"  # noqa: S105 - planted


class Routes(msgspec.Struct, frozen=True, kw_only=True):
    routes: dict[str, str] = {}
    retries: int = 1


ROUTES_MODULE = "import msgspec\n" + inspect.getsource(Routes)


def _routes_doc(retries: int, channel: str) -> str:
    return f"routes:\n  '{WEBHOOK}': {channel}\n  {KEY_TOKEN}: {channel}\nretries: {retries}\n"


def _key_leaks(*texts: object) -> list[str]:
    return [str(t) for t in texts if WEBHOOK_SECRET in str(t) or KEY_TOKEN in str(t)]


def test_mask_key() -> None:
    assert mask_key(WEBHOOK) == "https://hooks.slack.com/***"
    assert mask_key(KEY_TOKEN) == REDACTED
    assert mask_key("a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7") == REDACTED
    for name in ("llm", "api_key", "toolsets_kubernetes_v2_config", "404", "max-tokens-v2"):
        assert mask_key(name) == name
    assert format_path(("routes", WEBHOOK)) == "routes.https://hooks.slack.com/***"
    assert format_path(("llm", "model")) == "llm.model"
    # _derive.affected splits changed paths on "." back into the keys: normal keys round-trip.
    for path in [("toolsets", "kubernetes", "api_key"), ("llm", "max_tokens_v2")]:
        assert tuple(format_path(path).split(".")) == path
    assert dotted(("routes", KEY_TOKEN, "args", 0)) == "routes.***.args[0]"


async def test_a_secret_shaped_key_never_shows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "config.yaml"
    path.write_text(_routes_doc(1, "alerts"))
    async with HotReloader(
        path, schema=Routes, name="routes", registry=CollectorRegistry(), poll_interval=0
    ) as r:
        await watcher_up(r)
        write_atomic(path, _routes_doc(2, "pager").encode())
        outcome = await next_commit(r)
        assert "routes.https://hooks.slack.com/***" in outcome.changed
        assert "routes.***" in outcome.changed
        report = config_report(r)
        assert report["config"]["routes"] == {
            "https://hooks.slack.com/***": "pager",
            "***": "pager",
        }
        with_origins = config_report(r, origins=True)
        assert "routes.***" in with_origins["origins"]
        explained = [e.path for e in r.explain()]
        assert "routes.https://hooks.slack.com/***" in explained
        texts = [*outcome.changed, outcome_line(outcome), json.dumps(report)]
        texts += [json.dumps(with_origins), *explained, caplog.text]
        assert _key_leaks(*texts) == []


def test_cli_never_shows_a_secret_shaped_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "routes_schema.py").write_text(ROUTES_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the cwd on it
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(_routes_doc(1, "alerts"))
    new.write_text(_routes_doc(2, "pager"))
    schema = ("--schema", "routes_schema:Routes")
    for extra in (["--explain"], ["--explain", "--json"], ["--against", str(old)]):
        assert main(["check", str(new), *schema, *extra]) == 0
    assert main(["check", str(new), *schema, "--against", str(old), "--json"]) == 0
    captured = capsys.readouterr()
    assert _key_leaks(captured.out, captured.err) == []
    assert 'routes.https://hooks.slack.com/*** = "pager"' in captured.out
    assert 'routes.***: "alerts" -> "pager"' in captured.out


def test_two_keys_that_mask_alike_stay_two_entries() -> None:
    hooks = {
        "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX": "alerts",
        "https://hooks.slack.com/services/T111/B111/YYYYYYYYYYYYYYYYYYYYYYYY": "pages",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789": 1,
        "ghp_zyxwvutsrqponmlkjihgfedcba9876543210": 2,
    }
    shown = redact({"routes": hooks}, lambda _path: False)["routes"]
    assert len(shown) == 4
    assert sorted(shown.values(), key=str) == sorted(hooks.values(), key=str)
    assert not any("T000" in k or "T111" in k or "ghp_" in k for k in shown)
    assert "*** (2)" in shown
    scrubbed = scrub_all({"a": {"key one": 1, "key two": 2}}, ["one", "two"])
    assert scrubbed == {"a": {"key ***": 1, "key *** (2)": 2}}
