"""`events_record`: the one write path for steps, used by the runner and by ingest alike. Secrets
are masked here, values made storable, several writes of one step in one call folded into one,
and large writes go through the bulk path (COPY) on PostgreSQL: straight into the table when the
caller has read that none of the steps is stored, through a load table and an upsert otherwise.

PostgreSQL refuses NUL characters in text and in jsonb, and NaN or infinity in jsonb; agents
produce all three (binary tool output, a float division). Stored instead: U+FFFD for a NUL, and
the strings "nan", "inf", "-inf" for the numbers. SQLite would take them, but a step must read
the same whichever database stored it.
"""

import json
import math
import re
import weakref
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from uuid import UUID

import msgspec
from django.conf import settings
from django.db import connection, transaction

from ..engine.ids import uuid7
from ..engine.masking import compile_patterns, mask
from ..models import Event

# Columns a re-sent step may change (`parent` first). `run` and `seq` are fixed by the first
# write.
EVENT_UPDATE_FIELDS = [
    "parent", "kind", "name", "status", "started_at", "ended_at", "input", "output", "model",
    "input_tokens", "output_tokens", "cost_usd", "error", "attributes",
]  # fmt: skip
REPLACEMENT = "\ufffd"
# A JSON-escaped NUL (`\u0000`) that is not itself an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")

# Below this many rows the ORM's multi-row INSERT is cheaper than a COPY round trip (the runner
# writes one step at a time).
COPY_MIN_ROWS = 8
_LOAD_TABLE = "agentops_event_load"
# Database sessions (psycopg connections) known to hold the load table: it is created once per
# session, and only counted as there once the transaction that created it has committed.
_SESSIONS_WITH_LOAD_TABLE: "weakref.WeakSet" = weakref.WeakSet()

COLUMNS = [f.column for f in Event._meta.concrete_fields]  # id, run_id, seq, parent_id, …
_FIELD_OF_COLUMN = {f.column: f for f in Event._meta.concrete_fields}
_JSON_COLUMNS = frozenset(
    c for c, f in _FIELD_OF_COLUMN.items() if f.get_internal_type() == "JSONField"
)
_TEXT_COLUMNS = frozenset(
    c for c, f in _FIELD_OF_COLUMN.items() if f.get_internal_type() == "CharField"
)


def text_safe(value):
    """A string with each NUL replaced by U+FFFD; any other value unchanged."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", REPLACEMENT)
    return value


# One encoder each, built once: json.dumps() with options builds a new one on every call.
_CHECK = json.JSONEncoder(allow_nan=False)
_TEXT = json.JSONEncoder(allow_nan=False, ensure_ascii=False)
_TEXT_LENIENT = json.JSONEncoder(ensure_ascii=False)


def json_safe(value):
    """A JSON value every database stores: NULs in strings (and keys) replaced, NaN and
    infinities as strings. The value itself when it needs no change (the common case, found by
    one C-speed `json.dumps`); values that are not JSON at all are returned as they are."""
    if value is None or isinstance(value, bool | int):
        return value
    try:
        text = _CHECK.encode(value)
    except ValueError as exc:
        if "Circular reference" in str(exc):
            return value
        return _cleaned(value)
    except TypeError:
        return value  # not JSON: the write fails as it would have
    return _cleaned(value) if "\\u0000" in text else value


def json_text(value) -> str:
    """`value` as JSON text with the same replacements as `json_safe`."""
    try:
        text = _TEXT.encode(value)
    except ValueError:
        text = _TEXT_LENIENT.encode(_cleaned(value))
    if "\\u0000" in text:
        text = _JSON_NUL.sub(r"\1\\ufffd", text)
    return text


# Ten times faster than `json` on a step's values, for COPY into jsonb (which keeps no spacing).
# It writes NaN and infinity as `null`: a text holding `null` is written by `json_text` instead,
# which refuses them and stores them as `json_safe` does; so is what msgspec cannot write (a
# lone surrogate, a key that is neither a string nor a number).
_FAST_TEXT = msgspec.json.Encoder()


def _jsonb_text(value) -> str:
    try:
        text = _FAST_TEXT.encode(value).decode()
    except (TypeError, ValueError, OverflowError, RecursionError):
        return json_text(value)
    if "null" in text:
        return json_text(value)
    if "\\u0000" in text:
        text = _JSON_NUL.sub(r"\1\\ufffd", text)
    return text


# How deep JSON a client sends (a run's input, an ingested item) may nest: deeper is refused by
# its measured depth, before any recursive walk (masking, encoding, a serializer) overflows.
MAX_JSON_DEPTH = 100


def nesting_depth(value) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _cleaned(value):
    if isinstance(value, str):
        return text_safe(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {text_safe(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    return value


def masked(value):
    """`value` with secrets masked by the default and the configured patterns."""
    return mask(value, compile_patterns(settings.AGENTOPS_SECRET_PATTERNS))


def events_record(*, events: list[dict], new: bool = False) -> int:
    """Insert steps, or complete/replace them when their id is already stored (idempotent).

    Each dict has Event field names (`run_id`, `seq`, `parent_id`, …). Agent-written fields are
    masked here, so nothing that reaches the table skipped masking; NUL characters and NaN or
    infinite numbers, which PostgreSQL cannot store, are replaced (see the module doc). A step given
    twice in one call is written once: run and seq from its first dict, the rest from its last.
    Returns the number of steps written.

    `new` says the caller has read, holding its runs' locks, that none of these ids is stored: a
    large write is then copied straight into the table, without the load table and the upsert
    (a quarter of PostgreSQL's work for a batch). Should another transaction store one of the ids
    meanwhile, the write raises IntegrityError; the caller's transaction is then to be rolled
    back and the batch read again.
    """
    rows = merge_same_ids([_normalized(dict(data)) for data in events])
    if not rows:
        return 0
    if use_copy(len(rows)):
        # Large writes (ingest batches) stream through COPY; see copy_upsert.
        _mask_as_text(rows)
        if new:
            copy_insert(rows)
        else:
            copy_upsert(rows, update_fields=EVENT_UPDATE_FIELDS)
        return len(rows)
    for row in rows:
        _mask(row)
    Event.objects.bulk_create(
        [Event(**safe_row(row)) for row in rows],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=EVENT_UPDATE_FIELDS,
    )
    return len(rows)


_MASKED = ("input", "output", "error", "attributes")


def _mask(row: dict) -> None:
    written = {k: row[k] for k in _MASKED if row.get(k)}
    if written:
        row.update(masked(written))  # one walk per step


class _JsonText(str):
    """A JSON value already written as the text COPY stores, masked."""


def _mask_as_text(rows: list[dict]) -> None:
    """Mask the rows' JSON values and write them as their text for COPY: the texts of all the
    rows are scanned at once (`SecretPatterns.suspects`), and only a row that may hold a secret
    is walked value by value; the others' texts are stored as they are."""
    patterns = compile_patterns(settings.AGENTOPS_SECRET_PATTERNS)
    if not patterns.tells_suspects:
        for row in rows:
            _mask(row)
        return
    texts = [{k: _jsonb_text(row[k]) for k in _MASKED if row.get(k)} for row in rows]
    suspects = patterns.suspects(["\0".join(written.values()) for written in texts])
    for index, (row, written) in enumerate(zip(rows, texts, strict=True)):
        if index in suspects:
            _mask(row)
        else:
            row.update({k: _JsonText(text) for k, text in written.items()})


def _normalized(row: dict) -> dict:
    """`row` with `run`/`parent` objects given as `run_id`/`parent_id`."""
    for name in ("run", "parent"):
        if name in row:
            obj = row.pop(name)
            row[f"{name}_id"] = obj.pk if obj is not None else None
    return row


def safe_row(row: dict) -> dict:
    """`row` (Event field names) with text and JSON values every database accepts."""
    for key, value in row.items():
        if key in _JSON_COLUMNS:
            row[key] = json_safe(value)
        elif key in _TEXT_COLUMNS:
            row[key] = text_safe(value)
    return row


def merge_same_ids(rows: list[dict]) -> list[dict]:
    """One row per id, in first-seen order: a step written twice in one call (started, then
    ended) keeps the run and seq of its first write and everything else of its last."""
    by_id: dict = {}
    for row in rows:
        if row.get("id") is None:
            row["id"] = uuid7()
        first = by_id.get(row["id"])
        if first is None:
            by_id[row["id"]] = row
        else:
            kept = {k: first[k] for k in ("run_id", "seq") if k in first}
            first.clear()
            first.update(row, **kept)
    return list(by_id.values())


def use_copy(count: int) -> bool:
    return connection.vendor == "postgresql" and count >= COPY_MIN_ROWS


def copy_upsert(rows: list[dict], *, update_fields: list[str]) -> None:
    """Upsert `rows` by id through COPY into a session-temporary table and one
    INSERT … ON CONFLICT (id) DO UPDATE: the same semantics as the ORM's bulk upsert (a stored
    step keeps its run and seq, the rest is replaced). PostgreSQL only."""
    table = connection.ops.quote_name(Event._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    updates = ", ".join(
        f"{q} = EXCLUDED.{q}"
        for q in (connection.ops.quote_name(Event._meta.get_field(f).column) for f in update_fields)
    )
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        session = connection.connection
        if session not in _SESSIONS_WITH_LOAD_TABLE:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_LOAD_TABLE} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            transaction.on_commit(lambda: _SESSIONS_WITH_LOAD_TABLE.add(session))
        _copy_rows(cursor, _LOAD_TABLE, names, rows)
        # Emptying the load table and upserting in one statement: nothing is left for a second
        # call in this transaction. The commit then truncates the table (ON COMMIT DELETE ROWS),
        # so the dead rows of one batch are not left for the next thousand to scan past.
        cursor.execute(
            f"WITH loaded AS (DELETE FROM {_LOAD_TABLE} RETURNING {names}) "
            f"INSERT INTO {table} ({names}) SELECT {names} FROM loaded "
            f"ON CONFLICT (id) DO UPDATE SET {updates}"
        )


def copy_insert(rows: list[dict]) -> None:
    """Insert `rows`, none of them stored, by one COPY into the steps' table (PostgreSQL only).
    A stored id makes it raise IntegrityError and write nothing."""
    table = connection.ops.quote_name(Event._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    with connection.cursor() as cursor:
        _copy_rows(cursor, table, names, rows)


def _copy_rows(cursor, table: str, names: str, rows: list[dict]) -> None:
    with connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            # The rows as COPY's text, written at once: psycopg's per-value adaptation
            # (write_row) cost as much as encoding the rows.
            copy.write("".join([_copy_line(row) for row in rows]))


_JSON, _STR, _ANY = range(3)
_PER_ROW = object()  # a default computed for each row (a callable such as `timezone.now`)


def _copy_default(kind: int, field):
    """What COPY gets for a column a row leaves out: its default, encoded once (the plain
    `dict`/`list` defaults of JSON columns included); `_PER_ROW` for other callables."""
    if field.has_default() and callable(field.default) and field.default not in (dict, list):
        return _PER_ROW
    value = field.get_default()
    if value is None:
        return None
    if kind == _JSON:
        return json_text(value)
    return text_safe(value) if kind == _STR else value


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value) -> str:
    """One value in COPY's text format (what psycopg's `write_row` writes, value by value)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text


# (column, kind, field, its text when a row leaves it out, or _PER_ROW)
_COPY_PLAN = []
for _column in COLUMNS:
    _field = _FIELD_OF_COLUMN[_column]
    _kind = _JSON if _column in _JSON_COLUMNS else _STR if _column in _TEXT_COLUMNS else _ANY
    _default = _copy_default(_kind, _field)
    _missing = _default if _default is _PER_ROW else _copy_value(_default)
    _COPY_PLAN.append((_column, _kind, _field, _missing))
_ABSENT = object()
# Values whose text holds nothing COPY would read as its own syntax (a UUID goes as its 32 hex
# digits, which PostgreSQL reads as well: str() of a UUID is Python code, `hex` one format).
_PLAIN = {int: str, datetime: str, Decimal: str, UUID: attrgetter("hex")}


def _copy_line(row: dict) -> str:
    """`row` as one line of COPY's text format, its columns in COLUMNS' order."""
    values = []
    append = values.append
    get = row.get
    for column, kind, field, missing in _COPY_PLAN:
        value = get(column, _ABSENT)
        if value is None:
            append("\\N")
        elif value is _ABSENT:
            append(_copy_value(field.get_default()) if missing is _PER_ROW else missing)
        elif kind == _JSON:
            # JSON text holds no tab or line break: only its backslashes need escaping.
            text = value if type(value) is _JsonText else _jsonb_text(value)
            append(text.replace("\\", "\\\\"))
        elif (plain := _PLAIN.get(type(value))) is not None:
            append(plain(value))
        elif kind == _STR or isinstance(value, str):
            append(_copy_value(text_safe(value)))
        else:
            append(_copy_value(value))
    return "\t".join(values) + "\n"
