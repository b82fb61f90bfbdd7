"""Aggregate reads for the overview and agents pages: runs, failures, cap hits and spend over
time; the slowest and most failing tools; per-agent numbers. Each is one grouped query."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from ..models import Event, Run, RunStatus
from .runs import FAILED_STEP_STATUSES

FAILURE_STATUSES = (RunStatus.FAILED, RunStatus.LOST)


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    unit: str  # "hour" or "day": one chart bar each
    buckets: int


WINDOWS = {
    w.key: w
    for w in (
        Window("24h", "Last 24 hours", "hour", 24),
        Window("7d", "Last 7 days", "day", 7),
        Window("30d", "Last 30 days", "day", 30),
    )
}
DEFAULT_WINDOW = "24h"


def window_bounds(window: Window, now: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """The window's buckets as [start, end) pairs in UTC, oldest first; the last holds `now`."""
    now = (now or timezone.now()).astimezone(UTC)
    if window.unit == "hour":
        step = timedelta(hours=1)
        last = now.replace(minute=0, second=0, microsecond=0)
    else:
        step = timedelta(days=1)
        last = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = last - step * (window.buckets - 1)
    return [(first + step * i, first + step * (i + 1)) for i in range(window.buckets)]


def runs_over_time(window: Window, now: datetime | None = None) -> list[dict]:
    """Per bucket of `window`: start, end, runs, failures (failed or lost), cap_hits, spend."""
    bounds = window_bounds(window, now)
    rows = (
        Run.objects.filter(created_at__gte=bounds[0][0])
        .annotate(bucket=Trunc("created_at", window.unit, tzinfo=UTC))
        .values("bucket")
        .annotate(
            runs=Count("id"),
            failures=Count("id", filter=Q(status__in=FAILURE_STATUSES)),
            cap_hits=Count("id", filter=~Q(cap_hit="")),
            spend=Sum("cost_usd"),
        )
    )
    by_start = {row["bucket"].astimezone(UTC): row for row in rows}
    out = []
    for start, end in bounds:
        row = by_start.get(start, {})
        out.append(
            {
                "start": start,
                "end": end,
                "runs": row.get("runs", 0),
                "failures": row.get("failures", 0),
                "cap_hits": row.get("cap_hits", 0),
                "spend": row.get("spend") or Decimal(0),
            }
        )
    return out


def tool_stats(*, since: datetime, limit: int = 5) -> dict:
    """Tool calls started since `since`, by tool: {"slowest": [...], "failing": [...]}, each item
    {name, calls, failed, avg_ms, max_ms}. Slowest by average duration; failing by failures."""
    duration = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
    rows = list(
        Event.objects.filter(kind="tool_call", started_at__gte=since, ended_at__isnull=False)
        .values("name")
        .annotate(
            calls=Count("id"),
            failed=Count("id", filter=Q(status__in=FAILED_STEP_STATUSES)),
            avg=Avg(duration),
            longest=Max(duration),
        )
        .order_by("-calls")[:500]
    )
    items = [
        {
            "name": r["name"],
            "calls": r["calls"],
            "failed": r["failed"],
            "avg_ms": _ms(r["avg"]),
            "max_ms": _ms(r["longest"]),
        }
        for r in rows
    ]
    slowest = sorted(items, key=lambda i: (-i["avg_ms"], i["name"]))[:limit]
    failing = sorted(
        (i for i in items if i["failed"]), key=lambda i: (-i["failed"], -i["calls"], i["name"])
    )[:limit]
    return {"slowest": slowest, "failing": failing}


def _ms(value) -> int:
    if value is None:
        return 0
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    return int(value) // 1000  # microseconds, where a backend returns a number


RECENT_CAP_HIT_COLUMNS = ("id", "agent", "status", "cap_hit", "created_at", "user_ref", "caps")


def recent_cap_hits(*, limit: int = 10) -> list[Run]:
    """The latest runs stopped by a cap, newest first."""
    return list(
        Run.objects.exclude(cap_hit="")
        .only(*RECENT_CAP_HIT_COLUMNS)
        .order_by("-created_at")[:limit]
    )


def agent_run_stats(*, since: datetime) -> dict[str, dict]:
    """Per agent name, runs created since `since`: runs, succeeded, failures, cap_hits, spend,
    avg_ms (average wall time of those that report one) and last (newest created_at)."""
    rows = (
        Run.objects.filter(created_at__gte=since)
        .values("agent")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
            failures=Count("id", filter=Q(status__in=FAILURE_STATUSES)),
            cap_hits=Count("id", filter=~Q(cap_hit="")),
            spend=Sum("cost_usd"),
            avg_ms=Avg("wall_ms"),
            last=Max("created_at"),
        )
    )
    return {row["agent"]: row for row in rows}


def recent_runs_of(agent: str, *, limit: int = 3) -> list[Run]:
    """The agent's newest runs (one indexed query)."""
    return list(
        Run.objects.filter(agent=agent)
        .only("id", "agent", "status", "created_at", "cost_usd")
        .order_by("-created_at")[:limit]
    )
