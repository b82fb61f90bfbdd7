"""SecretPatterns.suspects: one scan of many JSON texts tells which values `mask` may change.
Whatever it leaves out must come out of `mask` unchanged, or a secret would be stored as sent;
checked here against `mask` itself on generated values full of near-misses."""

import math
import platform
import random
import sys

import pytest

from runs.engine.masking import compile_patterns, mask
from runs.services.events import _jsonb_text

# hyperscan is installed where its wheel exists (pyproject.toml); there it must be in use.
pytestmark = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="hyperscan, an optional speed-up, has no wheel for this platform",
)

# Pieces of text that are, nearly are, or spell with separators or other cases what a trigger
# or a secret key's word is; letters whose lowercase is another (the Kelvin sign's is "k");
# characters JSON escapes; separators.
PIECES = [
    "hello", "world", "api", "ap", "i", "token", "to-ken", "TO_KEN", "t.o.k.e.n", "tok en",
    "p.a.s.s.w.o.r.d", "Pass Word", "passwd", "secret", "sEcReT", "cookie", "COOKIE",
    "authorization", "private", "private key", "access", "key", "_key", "-Key", "apikey",
    "Bearer ", "bearer", "abc1234567890abcdef", "sk-", "sk-ant-", "SK-", "s\u212a-",
    "AKIA", "akia", "asia", "ACCA", "eyJ", "eyj", "ghp_", "GHP_", "github_pat_", "xox", "xoxb-",
    "aiza", "AIza", "k_live_", "k_test_", "://", ":/", "user:pw@", "@", "=", ": ", '"', "\\",
    "\n", "\t", "\r", "\x00", "\x07", "\u2028", "\u212a", "\u0130", "\u03a3", "\u00e9",
    "\U0001f600", "\ud800", "-", "_", ".", " ", "0", "12345678901234567890",
]  # fmt: skip
LEAVES = [None, True, False, 0, 7, -1.5, math.nan, math.inf, "", [], {}]


PLAIN = ["hello", "world", "the order", "shipped", "42", " ", "caf\u00e9", "A", "\U0001f600"]


def text(rng: random.Random) -> str:
    pieces = (
        rng.choice(PIECES if rng.random() < 0.15 else PLAIN) for _ in range(rng.randint(0, 5))
    )
    return "".join(pieces)


def value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth >= 3 or roll < 0.35:
        return text(rng) if rng.random() < 0.7 else rng.choice(LEAVES)
    if roll < 0.55:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {text(rng): value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def test_a_value_left_out_of_the_suspects_is_one_mask_leaves_unchanged():
    patterns = compile_patterns()
    rng = random.Random(20261130)
    values = [value(rng) for _ in range(6000)]
    texts = [_jsonb_text(v) for v in values]

    suspects = patterns.suspects(texts)

    changed = {i for i, v in enumerate(values) if _jsonb_text(mask(v, patterns)) != texts[i]}
    assert changed <= suspects
    # Not a test that passes by calling everything a suspect, nor one without secrets.
    assert len(suspects) < 0.5 * len(values)
    assert len(changed) > 200


def test_suspects_are_found_in_their_own_text_only():
    patterns = compile_patterns()
    texts = [
        '{"a": "hello"}',
        '{"db_pass-word": 1}',
        '["to"]',
        '["ken"]',
        '"sk-x"',
        '"tok\\u0065n"',
    ]

    assert patterns.suspects(texts) == {1, 4, 5}
    assert patterns.suspects([]) == set()


def test_a_custom_pattern_runs_on_every_string_so_no_text_can_be_left_out():
    assert not compile_patterns(["[0-9]{4}"]).tells_suspects
