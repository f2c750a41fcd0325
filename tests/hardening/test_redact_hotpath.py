"""Secret redaction on the hot path (issue 23): shapes that slipped through, values that are
no secret, keys, secrets quoted in other fields, and secrets worked out lazily.

Each test plants a value and checks both sides: the secret is gone from the output, and
``***`` stands where it was with the rest of the text intact.
"""

from __future__ import annotations

import pytest

from hotreload._fields import FieldPolicy
from hotreload._present import redacted
from hotreload._redact import REDACTED, mask_text, redact, secret_values

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
