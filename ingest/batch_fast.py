"""The common case of POST /ingest in one pass: a batch whose every item is valid, decoded and
validated by msgspec (C) straight from the body, without building the items as Python objects
first and checking them again with pydantic.

`valid_batch` returns the rows only when it can vouch that the checked path (`batch_body` and
`items.validate_items`, pydantic) would accept every item and produce the same rows. Anything
else returns None, and the checked path answers with its own status and wording: a body or an
item msgspec refuses, an item over the size limit or nested too deep, no items or too many, a
top-level key written twice or with escapes. msgspec is the stricter of the two: it coerces
nothing (no number from a string, no time from a number), takes only plain JSON, and forbids
unknown fields as the items do; times are parsed by pydantic's own validator, so both paths
read a time alike. tests/ingest/test_batch_fast.py feeds both the same items.
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType
from pydantic import TypeAdapter

from runs.models import EventKind, EventStatus, RunStatus

from .batch_body import MAX_DEPTH
from .items import MAX_COUNT, EventItem, _in_range

_Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
_Time = str | None | UnsetType  # parsed below by pydantic's datetime validator
_Json = Any | UnsetType


def _text(most: int, least: int = 0):
    return Annotated[str, Meta(min_length=least, max_length=most)]


class _Run(Struct, forbid_unknown_fields=True, kw_only=True):
    """items.RunItem, strict."""

    id: UUID
    agent: _text(100, 1)
    status: Literal[tuple(RunStatus.values)] | UnsetType = UNSET  # type: ignore[valid-type]
    input: _Json = UNSET
    output: _Json = UNSET
    error: dict[str, Any] | None | UnsetType = UNSET
    user_ref: _text(200) | UnsetType = UNSET
    session_ref: _text(200) | UnsetType = UNSET
    tags: Annotated[list[str], Meta(max_length=20)] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    created_at: _Time = UNSET
    started_at: _Time = UNSET
    finished_at: _Time = UNSET


class _Event(Struct, forbid_unknown_fields=True, kw_only=True):
    """items.EventItem, strict."""

    id: UUID
    run_id: UUID
    seq: _Count | None | UnsetType = UNSET
    parent_id: UUID | None | UnsetType = UNSET
    kind: Literal[tuple(EventKind.values)]  # type: ignore[valid-type]
    name: _text(200) | UnsetType = UNSET
    status: Literal[tuple(EventStatus.values)] | UnsetType = UNSET  # type: ignore[valid-type]
    started_at: _Time = UNSET
    ended_at: _Time = UNSET
    input: _Json = UNSET
    output: _Json = UNSET
    model: _text(200) | UnsetType = UNSET
    input_tokens: _Count | None | UnsetType = UNSET
    output_tokens: _Count | None | UnsetType = UNSET
    cost_usd: int | float | None | UnsetType = UNSET  # to a Decimal by pydantic's validator
    error: dict[str, Any] | str | None | UnsetType = UNSET
    attributes: dict[str, Any] | UnsetType = UNSET


class _Body(Struct, forbid_unknown_fields=True):
    runs: list[Raw] = []
    events: list[Raw] = []


_BODY = msgspec.json.Decoder(_Body)
_RUN = msgspec.json.Decoder(_Run, strict=True)
_EVENT = msgspec.json.Decoder(_Event, strict=True)
_RUN_FIELDS = _Run.__struct_fields__
_EVENT_FIELDS = _Event.__struct_fields__
_RUN_TIMES = ("created_at", "started_at", "finished_at")
_EVENT_TIMES = ("started_at", "ended_at")
# The items' own validators for what msgspec leaves as text or a number (same values, same
# acceptance as the model's fields).
_DATETIME = TypeAdapter(datetime | None)
_COST = TypeAdapter(Annotated[Decimal | None, EventItem.model_fields["cost_usd"]])


class _Unusual(Exception):
    """Something the checked path must answer."""


def valid_batch(body: bytes, *, max_items: int, max_bytes: int) -> dict | None:
    """{"runs": rows, "events": rows} (each row as `items.validate_items` makes it, with
    `_index`) when every item of the batch is valid; None when the checked path must read it."""
    try:
        batch = _BODY.decode(body)
        count = len(batch.runs) + len(batch.events)
        if not 0 < count <= max_items or not _keys_plain_and_once(body):
            return None
        deep = body.count(b"[") + body.count(b"{") > MAX_DEPTH
        return {
            "runs": _rows(batch.runs, _RUN, _run_row, max_bytes, deep),
            "events": _rows(batch.events, _EVENT, _event_row, max_bytes, deep),
        }
    except (msgspec.DecodeError, _Unusual, ValueError, RecursionError):
        return None


def _keys_plain_and_once(body: bytes) -> bool:
    """Whether each top-level key was written once and without escapes: msgspec keeps the
    last of two `runs` where the checked path reads both. An escape of a lowercase letter
    (`\\u0072uns`) is the only way to spell a key differently; no encoder writes one."""
    return (
        body.count(b'"runs"') <= 1
        and body.count(b'"events"') <= 1
        and (b"\\u00" not in body or (b"\\u006" not in body and b"\\u007" not in body))
    )


def _rows(items: list[Raw], decoder, row_of, max_bytes: int, deep: bool) -> list[dict]:
    rows = []
    for index, raw in enumerate(items):
        if max_bytes and len(raw) > max_bytes:
            raise _Unusual  # rejected alone, with its size, by the checked path
        if deep:
            text = bytes(raw)
            if text.count(b"[") + text.count(b"{") > MAX_DEPTH:
                raise _Unusual  # may be nested too deep: the checked path measures it
        row = row_of(decoder.decode(raw))
        row["_index"] = index
        rows.append(row)
    return rows


def _sent(item: Struct, fields) -> dict:
    return {name: value for name in fields if (value := getattr(item, name)) is not UNSET}


def _timed_row(item: Struct, fields, times, end: str) -> dict:
    """The item's sent fields, its times parsed; one that ends before it starts is unusual."""
    row = _sent(item, fields)
    for name in times:
        if name in row and row[name] is not None:
            row[name] = _in_range(_DATETIME.validate_python(row[name]))
    started, ended = row.get("started_at"), row.get(end)
    if started and ended and ended < started:
        raise _Unusual
    return row


def _run_row(item: _Run) -> dict:
    return _timed_row(item, _RUN_FIELDS, _RUN_TIMES, "finished_at")


def _event_row(item: _Event) -> dict:
    row = _timed_row(item, _EVENT_FIELDS, _EVENT_TIMES, "ended_at")
    if row.get("parent_id") == item.id:
        raise _Unusual
    if "cost_usd" in row:
        row["cost_usd"] = _COST.validate_python(row["cost_usd"])
    if row.get("started_at", 0) is None:
        del row["started_at"]  # now, for a new step; kept, for a stored one
    if isinstance(row.get("error"), str):
        row["error"] = {"message": row["error"]}
    return row
