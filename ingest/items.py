"""The items of an ingest batch (a run, a step), checked one by one: a bad item is rejected with
its index and the reason, the others go on to the write path. The OTLP door maps spans to the
same items, so both doors accept exactly the same things."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runs.models import EventKind, EventStatus, RunStatus

MAX_COUNT = 2**31 - 1  # the token columns are 32-bit
# One step's cost: the run's sum must still fit its column (14 digits, 6 after the point).
MAX_STEP_COST = Decimal("1000000")
# Timestamps outside these bounds are typos or garbage, and some would not read back.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a time without an offset is UTC
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"timestamp must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return utc


class RunItem(BaseModel):
    """A run executed elsewhere. Re-sending its id updates the fields sent; the others stay."""

    model_config = ConfigDict(extra="forbid")

    id: UUID
    agent: str = Field(min_length=1, max_length=100)
    status: Literal[tuple(RunStatus.values)] = "running"  # type: ignore[valid-type]
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    user_ref: str = Field("", max_length=200)
    session_ref: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @field_validator("created_at", "started_at", "finished_at")
    @classmethod
    def _times(cls, value):
        return _in_range(value)

    @model_validator(mode="after")
    def _finishes_after_start(self):
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self

    def to_row(self) -> dict:
        row = _fields_sent(self)
        row["id"] = self.id
        return row


class EventItem(BaseModel):
    """One step of a run. Re-sending its id updates the fields sent (e.g. `ended_at`, `status`,
    `output` to complete a `running` step); a step keeps the place (`seq`) it got first."""

    model_config = ConfigDict(extra="forbid")

    id: UUID
    run_id: UUID
    seq: int | None = Field(None, ge=0, le=MAX_COUNT)
    parent_id: UUID | None = None
    kind: Literal[tuple(EventKind.values)]  # type: ignore[valid-type]
    name: str = Field("", max_length=200)
    status: Literal[tuple(EventStatus.values)] = "ok"  # type: ignore[valid-type]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input: Any = None
    output: Any = None
    model: str = Field("", max_length=200)
    input_tokens: int | None = Field(None, ge=0, le=MAX_COUNT)
    output_tokens: int | None = Field(None, ge=0, le=MAX_COUNT)
    cost_usd: Decimal | None = Field(None, ge=0, le=MAX_STEP_COST, decimal_places=6)
    error: dict[str, Any] | str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("started_at", "ended_at")
    @classmethod
    def _times(cls, value):
        return _in_range(value)

    @model_validator(mode="after")
    def _ends_after_start(self):
        if self.started_at and self.ended_at and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.parent_id == self.id:
            raise ValueError("parent_id is the step itself")
        return self

    def to_row(self) -> dict:
        row = _fields_sent(self)
        row["id"], row["run_id"] = self.id, self.run_id
        if row.get("started_at") is None:
            row.pop("started_at", None)  # now, for a new step; kept, for a stored one
        if isinstance(self.error, str):
            row["error"] = {"message": self.error}
        return row


def _fields_sent(item: BaseModel) -> dict:
    """The fields the client sent, as validated (model_dump without its serializer: the items
    hold no nested models, and this is the hot path)."""
    values = item.__dict__
    return {name: values[name] for name in item.model_fields_set}


def validate_items(
    kind: str, model, items: list, max_bytes: int, rejected: list, sizes: list | None = None
) -> list[dict]:
    """Rows of the valid items, each with its position under `_index`; for each invalid one,
    append {"type": kind, "index", "id", "reason"} to `rejected`. An item over `max_bytes` is
    rejected (0 = no check); its size is `sizes[index]` when given (bytes as sent), else the
    length in bytes of its compact UTF-8 JSON."""
    rows = []
    for index, raw in enumerate(items):
        if hasattr(raw, "reason"):  # refused while reading the body (batch_body.TooDeep)
            item_id = str(raw.id or "")[:100]
            rejected.append({"type": kind, "index": index, "id": item_id, "reason": raw.reason})
            continue
        item_id = str(raw.get("id", ""))[:100] if isinstance(raw, dict) else ""
        if max_bytes:
            if sizes is not None:
                size = sizes[index]
            else:
                text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
                size = len(text.encode())
            if size > max_bytes:
                reason = f"item is {size} bytes; the limit is {max_bytes}"
                rejected.append({"type": kind, "index": index, "id": item_id, "reason": reason})
                continue
        try:
            row = model.model_validate(raw).to_row()
        except ValidationError as exc:
            rejected.append({"type": kind, "index": index, "id": item_id, "reason": _reason(exc)})
            continue
        row["_index"] = index
        rows.append(row)
    return rows


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "item"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
