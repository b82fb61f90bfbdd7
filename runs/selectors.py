"""Reads. Views, API operations and tasks call these instead of building queries themselves."""

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from .errors import Conflict, InvalidInput, NotFound
from .ids import uuid_range_for_prefix
from .models import GLOBAL_SCOPE, CapPolicy, Event, ModelPrice, Run
from .search import text_matches

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
    return price_in_effect(model, at=at)[0]


def price_in_effect(model: str, *, at: datetime | None = None):
    """(price or None, until): the price of `model` in effect at `at` and the time it stops
    being the one in effect (the next price's start or its retirement; None: not planned)."""
    return price_at(prices_of([model]).get(model, []), at or timezone.now())


def prices_of(models) -> dict[str, list[tuple]]:
    """Every price row of `models` (one query), per model, oldest first, as
    (effective_from, retired_at, (input, output)) for `price_at`. A dated model id with no
    prices of its own (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) takes those of its
    undated name."""
    undated = {model: _DATE_SUFFIX.sub("", model) for model in set(models)}
    rows = (
        ModelPrice.objects.filter(model__in={*undated, *undated.values()})
        .order_by("effective_from")
        .values_list("model", "effective_from", "retired_at", "input_per_mtok", "output_per_mtok")
    )
    found: dict[str, list[tuple]] = {}
    for model, start, retired, per_input, per_output in rows:
        found.setdefault(model, []).append((start, retired, (per_input, per_output)))
    return {
        model: found.get(model) or found[name]
        for model, name in undated.items()
        if model in found or name in found
    }


# A snapshot date at the end of a model id: -YYYYMMDD or -YYYY-MM-DD.
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def price_at(entries: list[tuple], at: datetime):
    """(price or None, until) from one model's `prices_of` entries: the newest row started by
    `at` and not retired by then, and when it stops being the one in effect."""
    current = None
    until = None
    for start, retired, price in entries:
        if retired is not None and retired <= at:
            continue
        if start <= at:
            current = (retired, price)
        elif until is None:
            until = start
    if current is None:
        return None, until
    retired, price = current
    if retired:
        until = min(until, retired) if until else retired
    return price, until


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
    the pages use `text` (full-text search, runs.search) and the rest."""

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


FAILED_STEP_STATUSES = ("error", "timeout")


def _has_tag(tag: str):
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])  # jsonb @>, served by the run_tags GIN index
    return RawSQL(
        f'EXISTS (SELECT 1 FROM json_each("{Run._meta.db_table}"."tags") WHERE value = %s)',
        [tag],
        output_field=BooleanField(),
    )


def runs_search(*, filters: RunFilters, cursor: str = "", limit: int = 50):
    """Newest first, keyset-paginated on (created_at, id). Returns (runs, next_cursor or None)."""
    limit = max(1, min(limit, MAX_PAGE))
    qs = runs_filtered(filters)
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


# --- Caps: the policy rows, their audit trail, and past runs for a backtest (issue 7). ---------

BACKTEST_STEP_COLUMNS = (
    "run_id", "seq", "kind", "status", "started_at", "ended_at", "input_tokens",
    "output_tokens", "cost_usd",
)  # fmt: skip


def cap_policy_rows() -> dict[str, CapPolicy]:
    """Every CapPolicy row by scope (the global one and each agent override)."""
    return {p.scope: p for p in CapPolicy.objects.select_related("updated_by")}


def cap_policy_dicts() -> dict[str, dict]:
    """Every policy as a plain dict of POLICY_FIELDS, by scope."""
    return {scope: _policy_dict(p) for scope, p in cap_policy_rows().items()}


def cap_policy_changes(*, scope: str | None = None, limit: int = 50) -> list:
    """The newest audit entries, of one scope or all, newest first."""
    from .models import CapPolicyChange

    qs = CapPolicyChange.objects.select_related("changed_by").order_by("-changed_at", "-id")
    if scope is not None:
        qs = qs.filter(scope=scope)
    return list(qs[: max(1, min(limit, MAX_PAGE))])


def cap_policy_last_change_id(*, scope: str) -> int:
    """The id of the scope's newest audit entry; 0 when it has none."""
    from .models import CapPolicyChange

    last = CapPolicyChange.objects.filter(scope=scope).order_by("-changed_at", "-id").first()
    return last.id if last else 0


def runs_for_backtest(*, agent: str | None = None, last_n: int = 100) -> list[dict]:
    """The last `last_n` finished runs executed here (of `agent`, or of every agent), newest
    first, each a plain dict with its steps in seq order, as runs.backtest takes them.

    Two queries whatever `last_n` is, reading only the small columns the backtest needs (a
    step's `attributes` is reduced to its `refused` flag; no prompts or outputs are read).
    Ingested runs are left out: caps only govern runs executed here.
    """
    from .models import TERMINAL_STATUSES, RunSource

    qs = Run.objects.filter(status__in=TERMINAL_STATUSES, source=RunSource.INTERNAL)
    if agent:
        qs = qs.filter(agent=agent)
    rows = qs.order_by("-created_at", "-id").values(
        "id", "agent", "created_at", "started_at", "finished_at", "wall_ms"
    )[: max(1, last_n)]
    runs = {}
    for row in rows:
        if row["wall_ms"] is not None:
            duration = row["wall_ms"] / 1000
        elif row["started_at"] and row["finished_at"]:
            duration = (row["finished_at"] - row["started_at"]).total_seconds()
        else:
            duration = None
        runs[row["id"]] = {
            "id": row["id"],
            "agent": row["agent"],
            "started_at": row["started_at"] or row["created_at"],
            "duration_s": duration,
            "steps": [],
        }
    if not runs:
        return []
    steps = (
        Event.objects.filter(run_id__in=list(runs))
        .order_by("run_id", "seq")
        .values_list(*BACKTEST_STEP_COLUMNS, "attributes__refused")
    )
    for *values, refused in steps.iterator(chunk_size=2000):
        step = dict(zip(BACKTEST_STEP_COLUMNS, values, strict=True))
        step["attributes"] = {"refused": True} if refused is True else {}
        runs[step.pop("run_id")]["steps"].append(step)
    return list(runs.values())


def model_prices_all() -> list[ModelPrice]:
    """Every price row, by model name, newest start first."""
    return list(ModelPrice.objects.order_by("model", "-effective_from", "-id"))
