"""YAML error messages quote no document text, even where PyYAML would.

PyYAML puts unexpected tags, anchors and alias names in its messages, and those are document
text: ``password: !Sup3r`` makes ``!Sup3r`` a tag and ``token: *xyz`` an alias, so a secret
that starts with ``!``, ``&`` or ``*`` used to be echoed into every log line about it.
"""

from __future__ import annotations

import pytest
import yaml

import hotreload._redact
from hotreload import ConfigParseError
from hotreload._parsing import parse

LEAK = "Sup3r-LEAK"


def refused(raw: bytes) -> ConfigParseError:
    with pytest.raises(ConfigParseError) as caught:
        parse(raw, "yaml", "config.yaml")
    return caught.value


@pytest.mark.parametrize(
    "raw",
    [
        f"password: !{LEAK}\n".encode(),
        f"password: !!{LEAK} x\n".encode(),
        f"password: !<{LEAK}> x\n".encode(),
        f"a: !!python/object:{LEAK}.x {{}}\n".encode(),
    ],
    ids=["local-tag", "standard-prefix-tag", "verbatim-tag", "python-tag-suffix"],
)
def test_a_value_read_as_a_tag_is_not_quoted(raw: bytes) -> None:
    err = refused(raw)
    assert LEAK not in str(err)
    assert LEAK not in repr(err)
    assert "tag" in err.message
    assert err.line == 1


def test_an_unsafe_tag_is_still_named() -> None:
    err = refused(b"cmd: !!python/object/apply:os.system ['true']\n")
    assert "unsafe tag !!python/object/apply" in err.message


def test_the_duplicate_key_is_still_named() -> None:
    assert "duplicate key 'token'" in refused(b"token: a\ntoken: b\n").message


@pytest.mark.parametrize(
    "raw",
    [
        f"token: *{LEAK}\n".encode(),
        f"a: &{LEAK} 1\nb: &{LEAK} 2\n".encode(),
        f"a: !{LEAK}! x\n".encode(),
    ],
    ids=["undefined-alias", "duplicate-anchor", "undefined-tag-handle"],
)
def test_pure_python_loader_messages_are_scrubbed_too(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libyaml the pure-Python loader runs, and it quotes names libyaml does not."""
    monkeypatch.setattr(hotreload._parsing, "_StrictLoader", yaml.SafeLoader)
    err = refused(raw)
    assert LEAK not in str(err)
    assert err.line is not None


def test_quoted_characters_and_token_names_stay() -> None:
    """What is scrubbed is text: a single quoted character or a token name is kept."""
    assert hotreload._redact.yaml_message("found character '\\t' that cannot start any token") == (
        "found character '\\t' that cannot start any token"
    )
    assert "'<scalar>'" in hotreload._redact.yaml_message("expected ',' or ']', but got '<scalar>'")


@pytest.mark.parametrize(
    ("quoted", "kept"),
    [("'q'", True), ("'ab'", True), ('"ab"', True), ("'abc'", False), ("'<ab1>'", False)],
)
def test_quoted_text_of_three_characters_or_more_goes(quoted: str, kept: bool) -> None:
    """The cut-off, exactly: two characters (an escape such as '\\t') stay, three are text."""
    message = f"found undefined alias {quoted} here"
    expected = message if kept else "found undefined alias (...) here"
    assert hotreload._redact.yaml_message(message) == expected
