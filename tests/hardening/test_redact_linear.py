"""Every pattern of `hotreload._redact` runs in linear time (issue 23, the hot path).

Each masking function is fed adversarial text built from the junctions of its patterns' own
character classes (``ab.`` for a URL scheme, ``'\\`` for a YAML quote, ``key=`` for a query
parameter...), repeated to 16 KiB, 64 KiB and 1 MiB. Its CPU time is never compared with a
number of seconds: it is divided by the CPU time of a plain linear scan of the same string
(a one-character-class regex search), measured in the same test, and that ratio must not grow
with the size. A quadratic pattern's ratio grows 4x from 16 KiB to 64 KiB and 16x from 64 KiB
to 1 MiB; a linear one's stays flat. Each measurement is the least of several rounds (noise
only ever adds time), and a round stops early once it has spent several times what a linear
run would, so a quadratic pattern fails in seconds instead of running for hours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from hotreload import _redact
from hotreload._redact import is_secret_name, mask_key, mask_text, scrub, yaml_message

pytestmark = pytest.mark.timeout(120)

KIB = 1024
SIZES = (16 * KIB, 64 * KIB, 1024 * KIB)
#: How much the per-byte ratio may grow from one size to the next: 3x from 16 to 64 KiB
#: (quadratic: 4x; this step stops a quadratic pattern before it runs on 1 MiB), and 4x from
#: 64 KiB to 1 MiB (quadratic: 16x).
GROWTH = {64 * KIB: 3.0, 1024 * KIB: 4.0}
#: Rounds per size: at least MIN_ROUNDS, and more (up to MAX_ROUNDS) while the ratio so far
#: looks superlinear (a noisy round only ever adds time, so the least is the truest).
#: At 1 MiB, where the bound is loose (4x) and a quadratic pattern was already stopped at
#: 64 KiB, two rounds are enough: most of the test's time is spent there.
MIN_ROUNDS = {16 * KIB: 5, 64 * KIB: 5, 1024 * KIB: 2}
MAX_ROUNDS = 25
ROUND = 0.005  # CPU seconds of calls per round at least (the clock's grain is far finer)

_PLAIN = re.compile(r"[\x00\x01]")


def _plain(text: str) -> object:
    return _PLAIN.search(text)


def _mask_key(text: str) -> str:
    return mask_key.__wrapped__(text)  # not the memo: each call does the work


def _scrub(text: str) -> str:
    return scrub(text, ["s3cret-value", "another-one"])


#: (junction, the function that runs the pattern): every pattern of `_redact` is reached.
CASES: list[tuple[str, Callable[[str], object]]] = [
    # the URL userinfo: scheme characters, the scheme separator, userinfo without an ``@``
    ("ab.", mask_text),
    ("a:", mask_text),
    ("a://", mask_text),
    ("a://b:", mask_text),
    ("a://b:c", mask_text),
    ("a://b@", mask_text),
    ("ghp_a://", mask_text),
    ("https://ghp_", mask_text),
    ("a://1111@", mask_text),
    ("a://sk-", mask_text),
    # Bearer / Basic: the scheme word, whitespace, a short credential
    ("Bearer ", mask_text),
    ("basic\t\t", mask_text),
    ("bearer abc", mask_text),
    # the Slack webhook
    ("https://hooks.slack.com", mask_text),
    ("http://hooks.slack-gov.com/", mask_text),
    # query parameters
    ("?a", mask_text),
    ("?key=", mask_text),
    ("&token=x", mask_text),
    (";a", mask_text),
    # libpq keyword DSNs
    ("password=", mask_text),
    ("password='\\", mask_text),
    ("a ", mask_text),
    ("x=' ", mask_text),
    # header strings
    ("Authorization:", mask_text),
    ("Authorization: Token ", mask_text),
    ("X-Api-Key: ", mask_text),
    ("x-a-", mask_text),
    ("cookie :", mask_text),
    # keys
    ("a1", _mask_key),
    ("sk-a1", _mask_key),
    ("a1/a1=", _mask_key),
    # secret names
    ("toke", is_secret_name),
    ("tokens", is_secret_name),
    ("pas", is_secret_name),
    # scrub: replacement of known secrets, then every shape
    ("s3cret-valu", _scrub),
    ("ab.a://b:", _scrub),
    # YAML messages: quotes, escapes, unknown tags
    ("'\\", yaml_message),
    ('"\\', yaml_message),
    ("'a", yaml_message),
    ("\"'", yaml_message),
    ("could not determine a constructor for the tag '", yaml_message),
]


def _round(fn: Callable[[str], object], text: str) -> float:
    """CPU seconds per call of ``fn(text)``, over at least ROUND seconds of calls."""
    calls = 0
    start = time.process_time()
    while True:
        fn(text)
        calls += 1
        elapsed = time.process_time() - start
        if elapsed >= ROUND:
            return elapsed / calls


def _growth(fn: Callable[[str], object], unit: str) -> list[tuple[int, float, float]]:
    """(size, per-byte CPU cost relative to the plain scan, growth of that ratio since the
    previous size) for each size, stopping at the first size whose growth is over the bound.

    The function and the plain scan are timed in alternate rounds (a busy spell hits both);
    each keeps its least. Rounds stop early once the function has spent three times what a
    linear function would have (from the previous size): a quadratic one fails in one round.
    """
    out: list[tuple[int, float, float]] = []
    previous: tuple[float, float] | None = None  # (ratio, the function's cost per byte)
    for size in SIZES:
        text = (unit * (size // len(unit) + 1))[:size]
        best = plain = float("inf")
        spent = 0.0
        for done in range(1, MAX_ROUNDS + 1):
            cost = _round(fn, text)
            spent += max(cost, ROUND)
            best = min(best, cost)
            plain = min(plain, _round(_plain, text))
            ratio = best / plain
            growth = 1.0 if previous is None else ratio / previous[0]
            if done >= MIN_ROUNDS[size] and (previous is None or growth < GROWTH[size]):
                break
            if previous is not None and spent > 3 * max(ROUND, previous[1] * size) * done:
                break
        out.append((size, ratio, growth))
        if previous is not None and growth >= GROWTH[size]:
            break
        previous = (ratio, best / size)
    return out


@pytest.mark.parametrize(("unit", "fn"), CASES, ids=[repr(u) for u, _ in CASES])
def test_every_pattern_is_linear(unit: str, fn: Callable[[str], object]) -> None:
    measured = _growth(fn, unit)
    for size, _ratio, growth in measured[1:]:
        assert growth < GROWTH[size], (
            f"{fn.__name__} on {unit!r} * n: CPU per byte, relative to a plain scan, grew "
            f"{growth:.1f}x at {size // KIB} KiB: {measured}"
        )


#: The module's patterns the CASES above reach (a new pattern must get rows there, and here).
COVERED = {
    "_SECRET_NAME",
    "_NOT_SECRET",
    "_URL_USERINFO",
    "_AUTH_SCHEME",
    "_SLACK_WEBHOOK",
    "_QUERY_SECRET",
    "_TOKEN_PREFIX",
    "_DIGIT",
    "_KEY_TOKEN",
    "_LETTER",
    "_DSN_KEYWORD",
    "_DSN_BARE",
    "_HEADER",
    "_HEADER_SCHEME",
    "_LINE_END",
    "_YAML_QUOTE",
    "_YAML_TOKEN_NAME",
    "_YAML_UNKNOWN_TAG",
}


def test_every_pattern_is_covered() -> None:
    patterns = {
        name
        for name, value in vars(_redact).items()
        if isinstance(value, re.Pattern) or (isinstance(value, dict) and name.endswith("_STOP"))
    }
    assert patterns - {"_QUOTE_STOP"} == COVERED
