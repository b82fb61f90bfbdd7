"""Full-text search over what runs said: their input, output and error.

On PostgreSQL the document is the string and number values of those three JSON columns, as a
`simple`-configuration tsvector (no stemming: agents write in any language, and ids like A-1001
must match as written). The GIN index `run_search_doc` (migration 0003) is built on exactly
`document_sql()`, so the planner can use it; the two must stay identical. The query side is
`websearch_to_tsquery`: words are ANDed, "quoted phrases" and -exclusions work.

Ordering matters on PostgreSQL. A list is "the newest 50 matches", and the planner may walk
the created_at index and test each run until it has 50: instant for a common word, but for a rare
one it computes the document of nearly every run (seconds on a million runs). Its estimate of
how many runs match is good for common words and a flat 0.5% guess for unknown ones, so when
the estimate is small (`matches_are_few`) the list is sorted by an expression no index provides,
which leaves the planner one sensible plan: the GIN index first, then sort the few matches.

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
_VALUES = '\'["string", "numeric"]\'::jsonb'
INDEX_NAME = "run_search_doc"
# Up to this many estimated matches, the GIN index goes first (see the module doc). Walking the
# created_at index instead expects to test about limit × runs / matches rows: at this bound on a
# million runs, ~2,000.
FEW_MATCHES = 25_000


def document_sql(table: str = "") -> str:
    """The tsvector expression; `table` qualifies the columns (the index is built unqualified)."""
    prefix = f'"{table}".' if table else ""
    return " || ".join(
        f"jsonb_to_tsvector('{CONFIG}'::regconfig, COALESCE({prefix}{column}, 'null'::jsonb), "
        f"{_VALUES})"
        for column in ("input", "output", "error")
    )


def text_matches(text: str):
    """A filter argument: runs whose input, output or error contain `text` (see module doc)."""
    if connection.vendor == "postgresql":
        document = document_sql(Run._meta.db_table)
        return RawSQL(
            f"({document}) @@ websearch_to_tsquery('{CONFIG}'::regconfig, %s)",
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
