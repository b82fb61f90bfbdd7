"""POST /api/v1/ingest: a batch of runs and steps from an agent that runs elsewhere.

Each item is validated on its own; valid ones are stored, rejected ones are listed with their
index, id and reason (207). Limits (documented in the README): the body, the number of items, and
the size of each item.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from ninja import Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runs.errors import InvalidInput, TooLarge
from runs.ingestion import ingest_batch
from runs.models import TERMINAL_STATUSES, EventKind, EventStatus, RunStatus

from .auth import api_auth, require_scope
from .schemas import ErrorOut
from .throttle import throttle

router = Router(auth=api_auth, tags=["ingest"])

MAX_TOKENS = 2**31 - 1


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class RunItem(BaseModel):
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
    def _utc_if_naive(cls, value):
        return _aware(value)

    def to_row(self) -> dict:
        row = self.model_dump(exclude_unset=True)
        row["id"] = self.id
        row.setdefault("status", self.status)
        if row.get("input") is None:
            row["input"] = {}
        row["created_at"] = self.created_at or self.started_at or timezone.now()
        if self.status in TERMINAL_STATUSES and not self.finished_at:
            row["finished_at"] = timezone.now()
        return row


class EventItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    run_id: UUID
    seq: int | None = Field(None, ge=0, le=MAX_TOKENS)
    parent_id: UUID | None = None
    kind: Literal[tuple(EventKind.values)]  # type: ignore[valid-type]
    name: str = Field("", max_length=200)
    status: Literal[tuple(EventStatus.values)] = "ok"  # type: ignore[valid-type]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input: Any = None
    output: Any = None
    model: str = Field("", max_length=200)
    input_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    output_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    cost_usd: Decimal | None = Field(None, ge=0, le=Decimal("99999999"), decimal_places=6)
    error: dict[str, Any] | str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("started_at", "ended_at")
    @classmethod
    def _utc_if_naive(cls, value):
        return _aware(value)

    def to_row(self) -> dict:
        row = self.model_dump()
        row["started_at"] = self.started_at or timezone.now()
        if isinstance(self.error, str):
            row["error"] = {"message": self.error}
        return row


class BatchIn(Schema):
    runs: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)


class RejectedItem(Schema):
    type: Literal["run", "event"]
    index: int
    id: str
    reason: str


class BatchOut(Schema):
    accepted: dict[str, int]
    rejected: list[RejectedItem]


def _validate(kind: str, model, items: list, max_bytes: int, rejected: list) -> list[dict]:
    rows = []
    for index, raw in enumerate(items):
        item_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        size = len(json.dumps(raw, default=str))
        if size > max_bytes:
            rejected.append(
                {"type": kind, "index": index, "id": item_id,
                 "reason": f"item is {size} bytes; the limit is {max_bytes}"}
            )  # fmt: skip
            continue
        try:
            row = model.model_validate(raw).to_row()
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors()
            )
            rejected.append({"type": kind, "index": index, "id": item_id, "reason": reason})
            continue
        row["_index"] = index
        rows.append(row)
    return rows


@router.post(
    "/ingest",
    response={200: BatchOut, 207: BatchOut, 401: ErrorOut, 403: ErrorOut, 413: ErrorOut,
              422: ErrorOut, 429: ErrorOut},
)  # fmt: skip
def ingest(request, batch: BatchIn):
    """Store a batch of external runs and steps. 200 when every item was stored; 207 listing
    each rejected item (index, id, reason) while the valid ones are stored. Idempotent by id."""
    who = require_scope(request, "ingest")
    throttle(request, who)
    max_items = settings.AGENTOPS_INGEST_MAX_ITEMS
    if len(batch.runs) + len(batch.events) > max_items:
        raise TooLarge(
            f"a batch holds at most {max_items} items; this one has "
            f"{len(batch.runs) + len(batch.events)}"
        )
    if not batch.runs and not batch.events:
        raise InvalidInput("the batch has no runs and no events")
    max_bytes = settings.AGENTOPS_INGEST_MAX_ITEM_BYTES
    rejected: list[dict] = []
    runs = _validate("run", RunItem, batch.runs, max_bytes, rejected)
    events = _validate("event", EventItem, batch.events, max_bytes, rejected)
    accepted, refused = ingest_batch(runs=runs, events=events)
    rejected.extend(refused)
    rejected.sort(key=lambda r: (r["type"] != "run", r["index"]))
    return Status(207 if rejected else 200, {"accepted": accepted, "rejected": rejected})
