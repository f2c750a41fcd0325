"""The redaction rules on their own: names, shapes, and what must stay readable."""

from __future__ import annotations

import pytest

from hotreload._redact import REDACTED, is_secret_name, mask_text, redact, scrub, secret_values


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "X-Api-Key",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "pass",
        "passphrase",
        "db_pwd",
        "aws_credentials",
        "client_secret",
        "refresh_token",
        "PASSWORD",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "max_tokens_per_request", "model", "host", "user"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://admin:s3cr3t@db:5432/app", "postgresql://admin:***@db:5432/app"),
        ("https://u:p@ss@host/x", "https://u:***@host/x"),  # up to the authority's last @
        ("redis://:onlypass@cache:6379", "redis://:***@cache:6379"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("bearer eyJhbGciOi.J9.x", "bearer ***"),
        ("basic dXNlcjpwYXNz==", "basic ***"),
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/***"),
        ("https://x.example/cb?token=abc&page=2", "https://x.example/cb?token=***&page=2"),
        ("see https://a:b@c and https://d:e@f", "see https://a:***@c and https://d:***@f"),
    ],
)
def test_shapes_are_masked_in_place(text: str, shown: str) -> None:
    assert mask_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "https://llm.example/v1",
        "https://user@host/x",  # a user name alone is no secret
        "ops@example.com",
        "https://x.example/cb?page=2&sort=name",
        "a bearer of bad news",  # too short to be a credential
    ],
)
def test_plain_text_is_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_redact_masks_names_at_any_depth_and_shapes_in_any_string() -> None:
    config = {
        "headers": {"Authorization": "Bearer t0ken"},
        "endpoint": "https://u:pw@h",
        "list": [{"api_key": "k"}, "Bearer zzzzzzzzzz"],
        "max_tokens": 10,
    }
    assert redact(config, lambda path: any(is_secret_name(p) for p in path)) == {
        "headers": {"Authorization": REDACTED},
        "endpoint": "https://u:***@h",
        "list": [{"api_key": REDACTED}, "Bearer ***"],
        "max_tokens": 10,
    }


def test_scrub_replaces_known_values_and_shapes() -> None:
    config = {"token": "tok-123456", "dsn": "postgresql://a:pgpass99@db/x"}
    secrets = secret_values(config, lambda path: any(is_secret_name(p) for p in path))
    assert secrets == {"tok-123456", "pgpass99"}
    text = "refused tok-123456; password pgpass99; https://z:zz@h"
    assert scrub(text, secrets) == "refused ***; password ***; https://z:***@h"
