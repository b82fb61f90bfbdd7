"""Full-text search over what runs said: their input, output and error.

On PostgreSQL the document is the string and number values of those three JSON columns, as a
`simple`-configuration tsvector (no stemming: agents write in any language, and ids like A-1001
must match as written). Every run stores it (column `search_doc`, kept by a trigger, migration
0012), so a query never computes a document: the query side is `websearch_to_tsquery` (words are
ANDed, "quoted phrases" and -exclusions work) against the stored words, through its GIN index
`run_search_phrases`. (Until migration 0014 the words were matched against the document computed
from the three columns, which cost ~0.02 ms per run tested: 5 ms for the newest
50 runs saying a word that one run in five says.)

Ordering matters on PostgreSQL. A list is "the newest 50 matches", and the planner may walk
the created_at index and test each run until it has 50: instant for a common word, but for a rare
one it tests nearly every run. Its estimate of how many runs match is good for common words and
a flat guess for unknown ones, so when the estimate is small (`matches_are_few`) the list is
sorted by an expression no index provides, which leaves the planner one sensible plan: the GIN
index first, then sort the few matches.

A "quoted phrase" needs more: besides the same words and positions, the stored document holds
one lexeme per pair of adjacent words. The phrase's pairs go to the GIN index, which then yields
only the runs that contain each pair, and the stored words check the exact phrase. The pairs are
read off the query PostgreSQL itself parsed (`'a' <-> 'b'` in `websearch_to_tsquery`), so they
follow its words exactly (punctuation, case, `A-4242` cut in two); pairs under an OR or a
-negation are not required. Runs too long to store their pairs carry a marker lexeme that every
phrase query accepts (they are checked word by word). Words cannot contain a space, so no query
word is ever taken for a pair or the marker.

SQLite has no such index; there each word (or "quoted phrase") must occur, case-insensitively,
somewhere in the JSON text of the same three columns, and a -word must not; fine at the embedded
default's scale.
"""

import json
import re

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from ..models import Run

CONFIG = "simple"
INDEX_NAME = "run_search_phrases"  # on the stored words and pairs (migration 0012)
UNPAIRED = " unpaired"  # the marker of migration 0012; no word or pair has a leading space
# Up to this many estimated matches, the GIN index goes first (see the module doc). Walking the
# created_at index instead expects to test about limit × runs / matches rows: at this bound on a
# million runs, ~2,000.
FEW_MATCHES = 25_000


def text_matches(text: str):
    """A filter argument: runs whose input, output or error contain `text` (see module doc)."""
    if connection.vendor == "postgresql":
        stored = f'"{Run._meta.db_table}"."search_doc"'
        pairs = phrase_pairs(text)
        if pairs:
            required = " & ".join(f"'{pair}'" for pair in pairs)
            return RawSQL(
                f"{stored} @@ (websearch_to_tsquery('{CONFIG}'::regconfig, %s) && %s::tsquery)",
                [text, f"({required}) | '{UNPAIRED}'"],
                output_field=BooleanField(),
            )
        return RawSQL(
            f"{stored} @@ websearch_to_tsquery('{CONFIG}'::regconfig, %s)",
            [text],
            output_field=BooleanField(),
        )
    condition = Q()
    for phrase, word in _TERMS.findall(text):
        term = phrase or word
        negated = not phrase and term.startswith("-") and len(term) > 1
        term = term[1:] if negated else term
        anywhere = Q(input__icontains=term) | Q(output__icontains=term) | Q(error__icontains=term)
        condition &= ~anywhere if negated else anywhere
    return condition


_TERMS = re.compile(r'"([^"]+)"|(\S+)')
# A tsquery as PostgreSQL prints it: quoted lexemes ('' is a quote) and operators.
_QUERY_TOKENS = re.compile(r"'((?:[^']|'')*)'(:\*?[A-D]*)?|<->|<\d+>|[&|!()]")
MAX_PAIR_BYTES = 2046  # as migration 0012 stores them: a tsvector lexeme is < 2 KB


def phrase_pairs(text: str) -> list[str]:
    """The adjacent-word pairs ("damaged charger") every run matching `text` must contain, as
    PostgreSQL's websearch_to_tsquery reads it: from each phrase that is required (not under an
    OR or a negation). Empty when `text` has no quoted phrase. PostgreSQL only."""
    if '"' not in text:
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT websearch_to_tsquery('{CONFIG}'::regconfig, %s)::text", [text])
        parsed = cursor.fetchone()[0] or ""
    return pairs_of_query(parsed)


def pairs_of_query(parsed: str) -> list[str]:
    """The pairs of a printed tsquery that every match must contain (see phrase_pairs)."""
    tokens = []
    for match in _QUERY_TOKENS.finditer(parsed):
        if match.group(1) is not None:
            lexeme = match.group(1)
            plain = not match.group(2) and "'" not in lexeme and "\\" not in lexeme
            tokens.append(("lexeme", lexeme if plain else None))
        else:
            tokens.append((match.group(0), None))
    if any(kind == "|" for kind, _ in tokens):
        return []
    kept, i = [], 0
    while i < len(tokens):  # leave out what a ! negates: one lexeme or a group in parentheses
        if tokens[i][0] != "!":
            kept.append(tokens[i])
            i += 1
            continue
        i += 1
        depth = 0
        while i < len(tokens):
            kind = tokens[i][0]
            depth += (kind == "(") - (kind == ")")
            i += 1
            if depth <= 0 and kind in ("lexeme", ")"):
                break
    if any(kind in ("(", ")", "!") for kind, _ in kept):
        return []
    pairs = []
    for (k1, a), (op, _), (k2, b) in zip(kept, kept[1:], kept[2:], strict=False):
        if k1 == k2 == "lexeme" and op == "<->" and a and b:
            pair = f"{a} {b}"
            if len(pair.encode()) <= MAX_PAIR_BYTES and pair not in pairs:
                pairs.append(pair)
    return pairs


def matches_are_few(queryset) -> bool:
    """Whether PostgreSQL expects `queryset` (a filtered run query) to match at most FEW_MATCHES
    runs. One EXPLAIN: planning only, nothing is executed."""
    if connection.vendor != "postgresql":
        return False
    sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return plan[0]["Plan"]["Plan Rows"] <= FEW_MATCHES
