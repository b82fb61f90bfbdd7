"""Secret masking for everything an agent wrote, applied before it is stored. Plain Python.

What is masked, and how it reads afterwards (one format everywhere, ``[masked:<kind>]``):

- a string matching a known secret shape is replaced by ``[masked:<kind>]``, e.g.
  ``"key sk-proj-abc…"`` → ``"key [masked:openai_key]"``; kinds: ``private_key``, ``jwt``,
  ``anthropic_key``, ``openai_key``, ``stripe_key``, ``aws_access_key``, ``github_token``,
  ``slack_token``, ``google_api_key``, ``bearer_token``, ``credential``, ``url_password`` and
  ``custom`` (patterns added through ``compile_patterns``);
- where the secret follows a label, the label stays so the reader still sees what was there:
  ``Bearer [masked:bearer_token]``, ``password=[masked:credential]``,
  ``"api_key": "[masked:credential]"`` (inside free text or a JSON string),
  ``postgres://app:[masked:url_password]@db``;
- a value under a secret-looking key (password, secret, api_key, token, authorization, cookie,
  private_key, … in any case, with ``-``, ``_`` or ``.`` separators, also as a suffix such as
  ``db_password`` or ``http.request.header.authorization``) becomes ``"[masked:field]"`` whole,
  whatever its type — except ``None``, booleans and ``""``, which hide nothing.

``mask`` leaves numbers, ``None``, booleans and mapping keys alone and never mutates its argument.

Speed: every regex is compiled once. A string is first lowercased and searched for every shape's
trigger substrings at once (one pass of an Aho-Corasick automaton, ``pyahocorasick``, in C;
where it is not installed, one C-speed ``in`` test per trigger, about twice as slow on a step's
text: the test is bound by the characters scanned). Only the shapes whose triggers occur are
then run, each a regex that begins with a literal, which CPython's ``re`` scans for quickly. One
alternation of all shapes (or of all triggers) would be slower: ``re`` must try every branch at
each position that starts like one of them (measured: several times slower on English text).

Many values at once (a batch of steps): ``SecretPatterns.suspects`` takes their JSON texts and
tells, in one scan of them all (``hyperscan``, SIMD, where it is installed), which may hold
something ``mask`` would change: a shape's trigger, or the word a secret key ends with, its
letters apart or not. The others need no walk at all; see ``suspects`` for why that is exact.
"""

import functools
import re

try:  # optional: the triggers are then found in one pass over a string instead of one per trigger
    import ahocorasick
except ImportError:  # pragma: no cover - the plain-Python fallback
    ahocorasick = None
try:  # optional: many JSON texts are checked in one scan instead of walking each value
    import hyperscan
except ImportError:  # pragma: no cover - values are then walked one by one
    hyperscan = None
import bisect
import itertools
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

MARKER = "[masked:{}]"
FIELD_MARKER = MARKER.format("field")

# Not preceded by a key-ish character: keeps "task-…" from looking like "sk-…".
_NB = r"(?<![A-Za-z0-9_-])"
# Words that label a secret in free text (`password=…`, `"api_key": "…"`).
_WORDS = r"passw(?:or)?d|secret|api[_-]?key|token|private[_-]?key|secret[_-]?key|access[_-]?key"
# `word=`, `word"=`, a quoted `"word": ` (JSON, YAML, also JSON escaped inside JSON), or a plain
# `password:` in prose. A bare `token:` in prose is left alone: "Token: a unit of text" is English.
# The leading lookahead lets the regex skip positions that cannot start a label word.
_LABEL = (
    r"(?=[pPsSaAtT])"
    rf"(?i:(?:{_WORDS})(?:\\?[\"']?[ \t]*=|\\?[\"'][ \t]*:)|passw(?:or)?d[ \t]*:)[ \t]*"
)
# After an opening quote the value runs to the closing quote (spaces included); without one, to
# whitespace, or to a `&`, `,` or `;` that ends it (one followed by `name=`, a space or the end:
# the next query parameter, not the middle of "Tr0ub4dor&3"). The lookbehinds tell which of the
# two cases the optional quote produced. A value an earlier shape already masked keeps its more
# precise marker.
_VALUE = (
    r"\\?[\"']?(?!\[masked:)(?P<secret>(?<=[\"'])[^\"'\\\r\n]+"
    r"|(?<![\"'])(?:[^\s\"'\\<>&,;]|[&,;](?![\w.-]+=|\s|$))+)"
)

# (kind, regex, triggers), applied in this order, so sk-ant- is masked before sk- is looked for. A
# group named `secret` marks the part to hide; without one the whole match is hidden. A shape is
# only searched for in a string whose lowercased text contains one of its triggers.
DEFAULT_PATTERNS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "private_key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY-----[\s\S]*?(?:-----END[ A-Z0-9]*PRIVATE KEY-----|\Z)",
        ("private key",),
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", ("eyj",)),
    ("anthropic_key", _NB + r"sk-ant-[A-Za-z0-9_-]{20,}", ("sk-ant-",)),
    # Real keys are random, so they hold a digit; a long hyphenated word after "sk-" does not.
    ("openai_key", _NB + r"sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}", ("sk-",)),
    ("stripe_key", r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}", ("k_live_", "k_test_")),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        ("akia", "asia", "abia", "acca"),
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", ("xox",)),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", ("aiza",)),
    # A digit is required so "bearer responsibilities" stays English.
    (
        "bearer_token",
        r"\b(?i:bearer)[ \t]+(?P<secret>(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*)",
        ("bearer",),
    ),
    ("credential", _LABEL + _VALUE, ("passw", "secret", "api", "token", "private", "access")),
    (
        "url_password",
        r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:(?P<secret>[^\s:/@]+)(?=@)",
        ("://",),
    ),
]
# No default shape matches fewer characters ("token=x"), so shorter strings skip the search.
_DEFAULT_MIN_LENGTH = 7

# A key is secret when, lowercased and stripped of separators, it ends with one of these.
_SECRET_KEY_SUFFIXES = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "token",
    "authorization",
    "privatekey",
    "secretkey",
    "accesskey",
    "cookie",
)
_KEY_SEPARATORS = re.compile(r"[-_. ]")
# Each suffix as a pattern of its letters with any separators between them.
_SECRET_KEY_WORDS = ["[-_. ]*".join(map(re.escape, suffix)) for suffix in _SECRET_KEY_SUFFIXES]


class _Words:
    """Literal triggers and patterns, found in one hyperscan scan of lowercased UTF-8 bytes."""

    def __init__(self, *, literals: list[str], patterns: list[str]):
        patterns = [*map(re.escape, literals), *patterns]
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._database.compile(
            expressions=[p.encode() for p in patterns],
            ids=list(range(len(patterns))),
            elements=len(patterns),
        )
        self._local = threading.local()  # a scan needs scratch space of its thread's own

    def scan(self, data: bytes, hit) -> None:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        self._database.scan(data, match_event_handler=hit, scratch=scratch)


class _Shape(NamedTuple):
    kind: str
    regex: re.Pattern
    marker: str

    def replace(self, match: re.Match) -> str:
        if "secret" not in self.regex.groupindex or match.start("secret") < 0:
            return self.marker
        start = match.start()
        whole = match.group()
        head, tail = match.start("secret") - start, match.end("secret") - start
        return whole[:head] + self.marker + whole[tail:]


class SecretPatterns:
    """Compiled masking patterns: build with ``compile_patterns``, pass to ``mask``."""

    def __init__(self, patterns: Iterable[tuple[str, str, tuple[str, ...] | None]]):
        self._shapes: list[_Shape] = []
        self._always = 0  # bit set of shapes without triggers (custom ones): always run
        by_trigger: dict[str, int] = {}
        for index, (kind, source, triggers) in enumerate(patterns):
            self._shapes.append(_Shape(kind, re.compile(source), MARKER.format(kind)))
            if triggers is None:
                self._always |= 1 << index
            for trigger in triggers or ():
                by_trigger[trigger] = by_trigger.get(trigger, 0) | 1 << index
        self._triggers = list(by_trigger.items())
        self._automaton = None
        if ahocorasick is not None and by_trigger:
            self._automaton = ahocorasick.Automaton()
            for trigger, bits in by_trigger.items():
                self._automaton.add_word(trigger, bits)
            self._automaton.make_automaton()
        self._min_length = 1 if self._always else _DEFAULT_MIN_LENGTH
        self._words = None
        if hyperscan is not None and not self._always:
            self._words = _Words(literals=list(by_trigger), patterns=_SECRET_KEY_WORDS)

    @property
    def tells_suspects(self) -> bool:
        """Whether ``suspects`` can tell (hyperscan is installed, and every pattern has
        triggers: a custom pattern, which runs on every string, makes every text a suspect)."""
        return self._words is not None

    def suspects(self, texts: list[str]) -> set[int]:
        """The indexes of ``texts`` that may hold a secret: each text is a value as JSON, and
        ``mask`` leaves the value of every other index unchanged. Needs ``tells_suspects``.

        Exact by construction. ``mask`` changes a value only where a string's lowercased text
        holds a trigger, or where a key, lowercased and without separators, ends with one of
        the secret words (so its lowercased text holds the word's letters with only separators
        between them). In JSON text a string or key is written as itself but for the escapes
        of quotes, backslashes and control characters, which no trigger or word holds; so the
        lowercased JSON text holds what each of its strings and keys holds. Only an escape
        ``\\uXXXX`` could spell a letter: a text holding one is a suspect. Extra strings in
        the text (keys, numbers, NaN written as text) can only make more suspects."""
        found = {index for index, text in enumerate(texts) if "\\u" in text}
        lowered = [text.lower().encode("utf-8", "surrogatepass") for text in texts]
        ends = list(itertools.accumulate(len(data) + 1 for data in lowered))

        def hit(_word, _start, end, _flags, _context):
            found.add(bisect.bisect_left(ends, end))

        # Joined by NUL, which no word matches: a match lies within one text.
        self._words.scan(b"\0".join(lowered), hit)
        return found

    def sub(self, text: str) -> str:
        """``text`` with every secret replaced by its marker."""
        if len(text) < self._min_length:
            return text
        lowered = text.lower()
        active = self._always
        if self._automaton is not None:
            for _, bits in self._automaton.iter(lowered):
                active |= bits
        else:
            for trigger, bits in self._triggers:
                if trigger in lowered:
                    active |= bits
        index = 0
        while active:
            if active & 1:
                shape = self._shapes[index]
                text = shape.regex.sub(shape.replace, text)
            active >>= 1
            index += 1
        return text


def _prepare_extra(source: str) -> str:
    """Validate one user pattern; raise ValueError for one that cannot work."""
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise ValueError(f"invalid secret pattern {source!r}: {exc}") from None
    if compiled.fullmatch(""):
        # It would match between every two characters and bury the text in markers.
        raise ValueError(f"secret pattern {source!r} matches the empty string")
    return source


def compile_patterns(extra: Iterable[str] | None = None) -> SecretPatterns:
    """The default patterns plus ``extra`` regex strings (e.g. ``AGENTOPS_SECRET_PATTERNS``).

    A match of an extra pattern becomes ``[masked:custom]``; if the pattern has a group named
    ``secret`` only that group is hidden (``token: (?P<secret>\\w+)``). Extra patterns run after
    the defaults, on every string, each in its own scan: start them with a literal to keep that
    scan fast. Raises ``ValueError`` for an invalid pattern or one that matches the empty string.
    Results are cached, so calling this on every write with the same setting is a dict lookup.
    """
    return _compile(tuple(extra or ()))


@functools.lru_cache(maxsize=32)
def _compile(extra: tuple[str, ...]) -> SecretPatterns:
    custom = [("custom", _prepare_extra(source), None) for source in extra]
    return SecretPatterns(DEFAULT_PATTERNS + custom)


def is_secret_key(key: Any) -> bool:
    """True when a mapping key names a secret (``password``, ``X-Api-Key``, ``db_password``…)."""
    return isinstance(key, str) and _is_secret_key(key)


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    # Keys repeat endlessly across steps (role, content, arguments…), hence the cache.
    return _KEY_SEPARATORS.sub("", key.lower()).endswith(_SECRET_KEY_SUFFIXES)


def mask_text(text: str, patterns: SecretPatterns | None = None) -> str:
    """``text`` with every secret shape replaced by ``[masked:<kind>]``."""
    return (patterns or compile_patterns()).sub(text)


def mask(value: Any, patterns: SecretPatterns | None = None) -> Any:
    """A masked copy of a JSON-able value (dicts, lists, tuples, strings, numbers, None).

    Strings are scanned for secret shapes; values under secret-looking keys are replaced whole by
    ``"[masked:field]"`` (except None, booleans and empty strings). Tuples come back as lists.
    Mapping keys are kept as they are. Other types are returned unchanged.
    """
    return _walk(value, (patterns or compile_patterns()).sub)


def _walk(value: Any, sub) -> Any:
    if isinstance(value, str):
        return sub(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if is_secret_key(key) and not (item is None or isinstance(item, bool) or item == ""):
                out[key] = FIELD_MARKER
            else:
                out[key] = _walk(item, sub)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, sub) for item in value]
    return value
