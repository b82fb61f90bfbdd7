"""Reads. Views, API operations and tasks call these instead of building queries themselves."""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from .errors import Conflict, InvalidInput, NotFound
from .ids import uuid_range_for_prefix
from .models import GLOBAL_SCOPE, CapPolicy, Event, ModelPrice, Run

POLICY_FIELDS = (
    "max_tool_calls",
    "max_cost_usd",
    "max_wall_seconds",
    "tool_timeout_seconds",
    "tool_timeouts",
    "max_model_calls",
    "max_tokens",
)
MAX_PAGE = 200


def runs_status_counts(*, since_hours: int = 24) -> dict:
    """Runs created in the last `since_hours`, counted by status, and their total spend."""
    since = timezone.now() - timedelta(hours=since_hours)
    recent = Run.objects.filter(created_at__gte=since)
    by_status = dict(
        recent.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    spend = recent.aggregate(total=Sum("cost_usd"))["total"] or 0
    return {"by_status": by_status, "total": sum(by_status.values()), "spend_usd": spend}


def _policy_dict(policy: CapPolicy | None) -> dict | None:
    if policy is None:
        return None
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def cap_policies_for(agent: str) -> tuple[dict, dict | None]:
    """The global policy and `agent`'s override (None when it has none), as plain dicts."""
    rows = {p.scope: p for p in CapPolicy.objects.filter(scope__in=[GLOBAL_SCOPE, agent])}
    return _policy_dict(rows.get(GLOBAL_SCOPE)) or {}, _policy_dict(rows.get(agent))


def price_for(model: str, *, at: datetime | None = None) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per 1M tokens for `model` in effect at `at`, or None if unpriced."""
    at = at or timezone.now()
    price = (
        ModelPrice.objects.filter(model=model, effective_from__lte=at)
        .filter(Q(retired_at__isnull=True) | Q(retired_at__gt=at))
        .order_by("-effective_from")
        .first()
    )
    return (price.input_per_mtok, price.output_per_mtok) if price else None


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


def encode_cursor(run: Run) -> str:
    raw = f"{run.created_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split("|", 1)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, uuid.UUID(run_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "the cursor is not one this API gave out", code="invalid_cursor"
        ) from None


def runs_search(*, filters: RunFilters, cursor: str = "", limit: int = 50):
    """Newest first, keyset-paginated on (created_at, id). Returns (runs, next_cursor or None)."""
    limit = max(1, min(limit, MAX_PAGE))
    qs = Run.objects.all()
    for name in ("status", "agent", "user_ref", "session_ref", "source", "error_code", "cap_hit"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{name: value})
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)
    if filters.q:
        q = filters.q
        qs = qs.filter(
            Q(input__icontains=q) | Q(output__icontains=q) | Q(error__icontains=q)
            | Q(user_ref=q) | Q(session_ref=q)
        )  # fmt: skip
    if cursor:
        created, run_id = decode_cursor(cursor)
        qs = qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=run_id))
    page = list(qs.order_by("-created_at", "-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (encode_cursor(page[-1]) if more and page else None)


def events_page(*, run: Run, after_seq: int = -1, limit: int = 100):
    """Steps of `run` with seq > after_seq, in order. Returns (events, next_after_seq or None)."""
    limit = max(1, min(limit, 1000))
    page = list(Event.objects.filter(run=run, seq__gt=after_seq).order_by("seq")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].seq if more and page else None)


def run_usage_against_caps(run: Run) -> dict:
    """{cap: {"used": n, "limit": m}} for each cap the run carries (limit None = no cap)."""
    caps = run.caps or {}
    wall_s = None
    if run.wall_ms is not None:
        wall_s = round(run.wall_ms / 1000, 3)
    elif run.started_at:
        wall_s = round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 3)
    used = {
        "max_tool_calls": run.tool_calls,
        "max_model_calls": run.model_calls,
        "max_cost_usd": run.cost_usd,
        "max_tokens": run.input_tokens + run.output_tokens,
        "max_wall_seconds": wall_s,
    }
    return {cap: {"used": value, "limit": caps.get(cap)} for cap, value in used.items()}
