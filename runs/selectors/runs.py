"""Reads of runs: one by id or prefix, lists by filters in any sort order with keyset pages, what
the search box means, a run's steps in order, and its usage against its caps.

A page is `limit` runs after a cursor; the cursor carries the sort key's value and the id of the
last run shown, so every page costs one indexed query however deep it is and rows inserted
meanwhile never shift what comes next. The API and the pages share the one cursor encoder.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import connection
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Left
from django.utils import timezone

from ..engine.caps import PER_RUN
from ..engine.ids import uuid_range_for_prefix
from ..errors import Conflict, InvalidInput, NotFound
from ..models import Event, Run
from .search import matches_are_few, text_matches

MAX_PAGE = 200
FAILED_STEP_STATUSES = ("error", "timeout")


def run_get(*, ref: str) -> Run:
    """A run by its full id or a unique prefix of at least 8 hex digits.

    Raises NotFound, or Conflict (code `ambiguous_prefix`) when several runs share the prefix.
    """
    text = (ref or "").strip()
    try:
        return Run.objects.get(id=uuid.UUID(text))
    except ValueError:
        pass
    except Run.DoesNotExist:
        raise NotFound(f"no run {text}") from None
    bounds = uuid_range_for_prefix(text)
    if bounds is None:
        raise NotFound(f"{text[:64]!r} is not a run id or a prefix of at least 8 hex digits")
    matches = list(Run.objects.filter(id__gte=bounds[0], id__lte=bounds[1]).order_by("id")[:5])
    if not matches:
        raise NotFound(f"no run starts with {text}")
    if len(matches) > 1:
        raise Conflict(
            f"several runs start with {text}",
            code="ambiguous_prefix",
            details={"candidates": [str(r.id) for r in matches]},
        )
    return matches[0]


@dataclass
class RunFilters:
    """What to list. Empty values do not filter. `q` is the API's loose match (text or a ref);
    the pages use `text` (full-text search, selectors.search) and the rest."""

    status: str = ""
    agent: str = ""
    user_ref: str = ""
    session_ref: str = ""
    q: str = ""
    since: datetime | None = None
    until: datetime | None = None
    source: str = ""
    error_code: str = ""
    cap_hit: str = ""
    statuses: tuple[str, ...] = ()
    text: str = ""
    cost_min: Decimal | None = None
    cost_max: Decimal | None = None
    tag: str = ""
    tool: str = ""
    tool_failed: bool = False
    id_prefix: str = ""
    capped: bool = False  # stopped by any cap


def runs_filtered(filters: RunFilters):
    """The runs matching `filters`, unordered."""
    qs = Run.objects.all()
    for name in ("status", "agent", "user_ref", "session_ref", "source", "error_code", "cap_hit"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{name: value})
    if filters.capped:
        qs = qs.exclude(cap_hit="")
    if filters.statuses:
        qs = qs.filter(status__in=filters.statuses)
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)
    if filters.cost_min is not None:
        qs = qs.filter(cost_usd__gte=filters.cost_min)
    if filters.cost_max is not None:
        qs = qs.filter(cost_usd__lte=filters.cost_max)
    if filters.q:
        q = filters.q
        qs = qs.filter(
            Q(input__icontains=q) | Q(output__icontains=q) | Q(error__icontains=q)
            | Q(user_ref=q) | Q(session_ref=q)
        )  # fmt: skip
    if filters.text:
        qs = qs.filter(text_matches(filters.text))
    if filters.tag:
        qs = qs.filter(_has_tag(filters.tag))
    if filters.tool:
        calls = Event.objects.filter(run_id=OuterRef("id"), kind="tool_call", name=filters.tool)
        if filters.tool_failed:
            calls = calls.filter(status__in=FAILED_STEP_STATUSES)
        qs = qs.filter(Exists(calls))
    if filters.id_prefix:
        bounds = uuid_range_for_prefix(filters.id_prefix)
        qs = qs.filter(id__gte=bounds[0], id__lte=bounds[1]) if bounds else qs.none()
    return qs


def _has_tag(tag: str):
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])  # jsonb @>, served by the run_tags GIN index
    return RawSQL(
        f'EXISTS (SELECT 1 FROM json_each("{Run._meta.db_table}"."tags") WHERE value = %s)',
        [tag],
        output_field=BooleanField(),
    )


def events_page(*, run: Run, after_seq: int = -1, limit: int = 100):
    """Steps of `run` with seq > after_seq, in order. Returns (events, next_after_seq or None)."""
    limit = max(1, min(limit, 1000))
    page = list(Event.objects.filter(run=run, seq__gt=after_seq).order_by("seq")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].seq if more and page else None)


def run_wall_ms(run: Run) -> int | None:
    """The run's wall time: as recorded when it ended, else measured from its start to its end,
    or to now while it runs (a running run's wall time is written when it ends)."""
    if run.wall_ms is not None:
        return run.wall_ms
    if run.started_at is None:
        return None
    end = run.finished_at or timezone.now()
    return int((end - run.started_at).total_seconds() * 1000)


def run_usage_against_caps(run: Run) -> dict:
    """{cap name: {"used": n, "limit": m}} for each per-run cap of the table (limit None = no
    cap), in the table's order."""
    caps = run.caps or {}
    wall_ms = run_wall_ms(run)
    seconds = None if wall_ms is None else round(wall_ms / 1000, 3)
    used = {
        "tool_calls": run.tool_calls,
        "model_calls": run.model_calls,
        "cost_usd": run.cost_usd,
        "tokens": run.input_tokens + run.output_tokens,
        "seconds": seconds,
    }
    return {cap.name: {"used": used[cap.measures], "limit": caps.get(cap.name)} for cap in PER_RUN}


# What the list shows of each run: never its bodies, only a short preview of its input.
LIST_COLUMNS = (
    "id", "agent", "status", "error_code", "cap_hit", "tool_calls", "model_calls", "cost_usd",
    "wall_ms", "created_at", "started_at", "finished_at", "user_ref", "session_ref", "tags",
    "source", "replay_of", "heartbeat_at",
)  # fmt: skip
PREVIEW_CHARS = 120


@dataclass(frozen=True)
class Sort:
    key: str
    label: str
    field: str
    descending: bool
    nullable: bool = False  # nulls sort last


SORTS = {
    s.key: s
    for s in (
        Sort("newest", "Newest first", "created_at", True),
        Sort("oldest", "Oldest first", "created_at", False),
        Sort("cost", "Most expensive", "cost_usd", True),
        Sort("duration", "Longest", "wall_ms", True, nullable=True),
    )
}
DEFAULT_SORT = "newest"


def _encode(sort: Sort, run: Run) -> str:
    value = getattr(run, sort.field)
    if isinstance(value, datetime):
        value = value.isoformat()
    elif value is not None:
        value = str(value)
    raw = json.dumps([sort.key, value, str(run.id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(sort: Sort, cursor: str):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, value, run_id = json.loads(raw)
        if key != sort.key:
            raise ValueError("another sort's cursor")
        if value is not None:
            if sort.field == "created_at":
                value = datetime.fromisoformat(value)
                if value.tzinfo is None:
                    raise ValueError("naive time")
            elif sort.field == "cost_usd":
                value = Decimal(value)
            else:
                value = int(value)
        elif not sort.nullable:
            raise ValueError("null key")
        return value, uuid.UUID(run_id)
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError):
        raise InvalidInput("that page link is not valid any more", code="invalid_cursor") from None


def _after(sort: Sort, value, run_id) -> Q:
    """Runs that come after (value, run_id) in `sort`'s order."""
    f, cmp = sort.field, ("lt" if sort.descending else "gt")
    id_after = Q(**{f"id__{cmp}": run_id})
    if value is None:  # already in the trailing nulls
        return Q(**{f"{f}__isnull": True}) & id_after
    after = Q(**{f"{f}__{cmp}": value}) | (Q(**{f: value}) & id_after)
    if sort.nullable:
        return after | Q(**{f"{f}__isnull": True})
    # The redundant bound lets the database use it as an index condition.
    return Q(**{f"{f}__{cmp}e": value}) & after


def _ordering(sort: Sort, *, by_index: bool = True):
    """ORDER BY for `sort`. by_index=False sorts by the same values written as an expression no
    index provides (value + 0), so the database finds the matches first and then sorts them."""
    key = F(sort.field)
    if not by_index:
        field = Run._meta.get_field(sort.field)
        zero = timedelta(0) if sort.field == "created_at" else Value(0, output_field=field)
        key = ExpressionWrapper(F(sort.field) + zero, output_field=field)
    if sort.descending:
        return [key.desc(nulls_last=sort.nullable or None), F("id").desc()]
    return [key.asc(), F("id").asc()]


def runs_page(*, filters: RunFilters, sort: str = DEFAULT_SORT, cursor: str = "", limit=50):
    """One page of runs matching `filters` in `sort` order (a key of SORTS), after `cursor`.

    Returns (runs, next_cursor or None). Runs carry LIST_COLUMNS and `input_preview` only.
    Raises InvalidInput (code `invalid_cursor`) for a cursor this function did not give out.
    """
    order = SORTS.get(sort) or SORTS[DEFAULT_SORT]
    limit = max(1, min(limit, MAX_PAGE))
    qs = runs_filtered(filters).only(*LIST_COLUMNS)
    qs = qs.annotate(input_preview=Left(Cast("input", TextField()), PREVIEW_CHARS))
    if cursor:
        qs = qs.filter(_after(order, *_decode(order, cursor)))
    # An id prefix of 8+ hex digits names a narrow id range (with time-ordered ids, about a
    # minute): find it through the primary key, then sort it, as for a rare word.
    few = bool(filters.id_prefix) or bool(filters.text and matches_are_few(qs))
    by_index = not few
    page = list(qs.order_by(*_ordering(order, by_index=by_index))[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (_encode(order, page[-1]) if more and page else None)


@dataclass
class SearchIntent:
    """What the search box's text turned out to be.

    kind: `run` (open `run`), `prefix` (several runs share the id prefix `value`), `user_ref`,
    `session_ref`, `text` (full-text search) or `empty`. `looked_like_id` is set when the text
    was a run id or prefix that matched no run.
    """

    kind: str
    value: str = ""
    run: Run | None = None
    candidates: list[str] = field(default_factory=list)
    looked_like_id: bool = False


def search_intent(q: str) -> SearchIntent:
    """Read the search box: a run id or unique prefix (≥ 8 hex digits) opens the run; text equal
    to some run's user_ref (else session_ref) lists that user's runs; anything else is text.
    Two or three indexed queries at most."""
    text = (q or "").strip()
    if not text:
        return SearchIntent("empty")
    looked_like_id = uuid_range_for_prefix(text) is not None
    try:
        return SearchIntent("run", value=text, run=run_get(ref=text))
    except Conflict as exc:
        candidates = (exc.details or {}).get("candidates", [])
        return SearchIntent("prefix", value=text, candidates=candidates)
    except NotFound:
        pass
    if Run.objects.filter(user_ref=text).exists():
        return SearchIntent("user_ref", value=text)
    if Run.objects.filter(session_ref=text).exists():
        return SearchIntent("session_ref", value=text)
    return SearchIntent("text", value=text, looked_like_id=looked_like_id)


def filters_for_intent(intent: SearchIntent, filters: RunFilters) -> RunFilters:
    """`filters` narrowed by what the search box said."""
    if intent.kind == "prefix":
        filters.id_prefix = intent.value
    elif intent.kind == "user_ref":
        filters.user_ref = intent.value
    elif intent.kind == "session_ref":
        filters.session_ref = intent.value
    elif intent.kind == "text":
        filters.text = intent.value
    return filters
