"""/api/v1/runs: start, read, list, read steps, cancel. Thin: validate, call one service or
selector, shape the answer."""

import json
from datetime import UTC, datetime
from typing import Literal

from django.http import HttpResponse
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import Field, field_validator

from runs.errors import TooLarge
from runs.models import RunSource, RunStatus
from runs.selectors.approvals import approval_open
from runs.selectors.runs import (
    MAX_PAGE,
    RunFilters,
    events_page,
    run_get,
    run_usage_against_caps,
    runs_page,
)
from runs.services.runs import run_cancel as cancel_run
from runs.services.runs import run_create

from .auth import api_auth, require_scope
from .idempotency import start_once
from .schemas import (
    MAX_JSON_BYTES,
    ErrorOut,
    EventOut,
    EventPage,
    RunAccepted,
    RunCreateIn,
    RunOut,
    RunPage,
    RunStatusOut,
    RunSummaryOut,
    refuse_deep_json,
)

router = Router(auth=api_auth, tags=["runs"])
ERRORS = {code: ErrorOut for code in (400, 401, 403, 404, 409, 422, 429)}


def _run_url(run) -> str:
    return reverse("runs:run", args=[run.id])


def _json_size(value) -> int:
    return len(json.dumps(value, default=str))


@router.post("/runs", response={202: RunAccepted, 413: ErrorOut, **ERRORS})
def run_start(request, body: RunCreateIn, response: HttpResponse):
    """Queue a run of a registered agent; answers at once with its id (202), also while the
    broker is down (the run is sent once it is back). With an `Idempotency-Key` header, a retry
    within 24 h answers with the first request's run (header `Idempotent-Replayed: true`)."""
    who = require_scope(request, "runs:write")
    refuse_deep_json(body)
    for name in ("input", "metadata"):
        if _json_size(getattr(body, name)) > MAX_JSON_BYTES:
            raise TooLarge(f"{name} is larger than {MAX_JSON_BYTES} bytes")

    def create():
        return run_create(
            agent=body.agent,
            input=body.input if body.input is not None else {},
            caps=body.caps,
            may_raise_caps=who.is_admin,
            user_ref=body.user_ref,
            session_ref=body.session_ref,
            tags=body.tags,
            metadata=body.metadata,
            created_by=who.user,
            api_key=who.key,
        )

    run, headers = start_once(
        request, who, operation="run_start", body=body.model_dump(mode="json"), create=create
    )
    for name, value in headers.items():
        response[name] = value
    return Status(202, {"id": run.id, "status": run.status, "url": _run_url(run)})


class RunListQuery(Schema):
    status: Literal[tuple(RunStatus.values)] | None = None  # type: ignore[valid-type]
    agent: str = Field("", max_length=100)
    user_ref: str = Field("", max_length=200)
    session_ref: str = Field("", max_length=200)
    source: Literal[tuple(RunSource.values)] | None = None  # type: ignore[valid-type]
    error_code: str = Field("", max_length=40)
    cap_hit: str = Field("", max_length=40)
    q: str = Field("", max_length=200)
    since: datetime | None = None
    until: datetime | None = None
    cursor: str = Field("", max_length=200)
    limit: int = Field(50, ge=1, le=MAX_PAGE)

    @field_validator("agent", "user_ref", "session_ref", "error_code", "cap_hit", "q", "cursor")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # no stored text holds one (PostgreSQL refuses them)
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # As UTC before it reaches the database: PostgreSQL refuses offsets beyond ±15:59, and
        # an offset can carry year 1 or 9999 out of range. A time without an offset is UTC.
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range") from None


@router.get("/runs", response={200: RunPage, **ERRORS})
def run_list(request, query: Query[RunListQuery]):
    """Runs, newest first, filtered; follow `next_cursor` for the next page."""
    require_scope(request, "runs:read")
    filters = RunFilters(
        status=query.status or "",
        agent=query.agent,
        user_ref=query.user_ref,
        session_ref=query.session_ref,
        source=query.source or "",
        error_code=query.error_code,
        cap_hit=query.cap_hit,
        q=query.q,
        since=query.since,
        until=query.until,
    )
    runs, next_cursor = runs_page(filters=filters, cursor=query.cursor, limit=query.limit)
    items = [dict(_summary_fields(r), url=_run_url(r)) for r in runs]
    return {"items": items, "next_cursor": next_cursor}


SUMMARY_FIELDS = tuple(name for name in RunSummaryOut.model_fields if name != "url")
# The run's own columns; `replay_of` is given as the id (reading the relation would fetch the run).
DETAIL_FIELDS = tuple(
    f for f in RunOut.model_fields if f not in {"replay_of", "usage", "url", "awaiting"}
)


def _summary_fields(run) -> dict:
    return {name: getattr(run, name) for name in SUMMARY_FIELDS}


@router.get("/runs/{ref}", response={200: RunOut, **ERRORS})
def run_detail(request, ref: str):
    """One run by full id or unique prefix (≥ 8 hex digits), with usage against its caps and,
    while it awaits approval, what it holds."""
    require_scope(request, "runs:read")
    run = run_get(ref=ref)
    return {
        **{name: getattr(run, name) for name in DETAIL_FIELDS},
        "replay_of": run.replay_of_id,
        "usage": run_usage_against_caps(run),
        "awaiting": approval_open(run=run),
        "url": _run_url(run),
    }


EVENT_FIELDS = tuple(name for name in EventOut.model_fields if name != "duration_ms")


class EventQuery(Schema):
    after_seq: int = Field(-1, ge=-1)
    limit: int = Field(100, ge=1, le=1000)


@router.get("/runs/{ref}/events", response={200: EventPage, **ERRORS})
def run_events(request, ref: str, query: Query[EventQuery]):
    """The run's steps in order, after `after_seq`; follow `next_after_seq` for more."""
    require_scope(request, "runs:read")
    run = run_get(ref=ref)
    events, next_after = events_page(run=run, after_seq=query.after_seq, limit=query.limit)
    items = [
        {**{f: getattr(e, f) for f in EVENT_FIELDS}, "duration_ms": e.duration_ms} for e in events
    ]
    return {"items": items, "next_after_seq": next_after}


@router.post("/runs/{ref}/cancel", response={202: RunStatusOut, **ERRORS})
def run_cancel(request, ref: str):
    """Cancel a queued run at once, or ask a running one to stop (it ends `cancelled`)."""
    require_scope(request, "runs:write")
    run = cancel_run(run=run_get(ref=ref))
    return Status(202, {"id": run.id, "status": run.status})
