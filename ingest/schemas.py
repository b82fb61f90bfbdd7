"""Request and response shapes of the API. Explicit fields only; sizes bounded."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ninja import Schema
from pydantic import Field, field_validator

from runs.errors import InvalidInput
from runs.services.events import MAX_JSON_DEPTH, json_safe, nesting_depth

MAX_JSON_BYTES = 256 * 1024


def refuse_deep_json(body: Schema) -> None:
    """422 for a field of `body` nested more than MAX_JSON_DEPTH levels, measured without
    recursion: how deep Python's own walks can go depends on the stack already in use, and
    pydantic's serializer stops at a depth of its own (a 500, not a 422)."""
    for name, value in body:
        if nesting_depth(value) > MAX_JSON_DEPTH:
            raise InvalidInput(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")


class ErrorBody(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


class RunCreateIn(Schema):
    agent: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] | list[Any] | str | int | float | bool | None = None
    caps: dict[str, Any] | None = None
    user_ref: str = Field("", max_length=200)
    session_ref: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or len(tag) > 50:
                raise ValueError("each tag must be 1 to 50 characters")
            if "\x00" in tag:
                raise ValueError("a tag must not contain NUL characters")
        return tags

    @field_validator("agent", "user_ref", "session_ref")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # PostgreSQL cannot store one in text
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("input", "metadata")
    @classmethod
    def _storable(cls, value):
        return json_safe(value)  # a NUL in a string is stored as U+FFFD, as for any step


class RunAccepted(Schema):
    id: UUID
    status: str
    url: str


class CapUsage(Schema):
    used: Decimal | int | None
    limit: Decimal | int | float | None


class AwaitingOut(Schema):
    kind: str = Field(description="cap or tool")
    subject: str = Field(description="the cap's or the tool's name")
    request: dict[str, Any] = Field(description="what the held call wants; what the run used")
    asked_at: datetime


class RunOut(Schema):
    id: UUID
    agent: str
    status: str
    source: str
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    caps: dict[str, Any]
    usage: dict[str, CapUsage]
    tool_calls: int
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    wall_ms: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    user_ref: str
    session_ref: str
    tags: list[Any]
    metadata: dict[str, Any]
    replay_of: UUID | None = None
    replay_mode: str
    attempt: int
    approval_policy: dict[str, Any] = Field(
        default_factory=dict,
        description="on_cap, approval_timeout_seconds, max_extension, requires_approval",
    )
    awaiting: AwaitingOut | None = Field(
        None, description="what a run awaiting approval holds (null otherwise)"
    )
    heartbeat_at: datetime | None = None
    no_heartbeat_seconds: int | None = Field(
        None,
        description="For a running run whose worker has gone quiet: seconds since its last "
        "heartbeat (it ends `lost` after AGENTOPS_HEARTBEAT_STALE_SECONDS); else null.",
    )
    url: str


class RunSummaryOut(Schema):
    id: UUID
    agent: str
    status: str
    source: str
    error_code: str
    cap_hit: str
    tool_calls: int
    model_calls: int
    cost_usd: Decimal
    wall_ms: int | None = None
    created_at: datetime
    finished_at: datetime | None = None
    user_ref: str
    no_heartbeat_seconds: int | None = None
    url: str


class RunPage(Schema):
    items: list[RunSummaryOut]
    next_cursor: str | None = None


class EventOut(Schema):
    id: UUID
    seq: int
    parent_id: UUID | None = None
    kind: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: int | None = None
    input: Any = None
    output: Any = None
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Decimal | None = None
    error: Any = None
    attributes: dict[str, Any]


class EventPage(Schema):
    items: list[EventOut]
    next_after_seq: int | None = None


class RunStatusOut(Schema):
    id: UUID
    status: str
