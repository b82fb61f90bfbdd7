"""Aggregate reads for the overview and agents pages: runs, failures, cap hits and spend over
time; the slowest and most failing tools; per-agent numbers.

Run numbers come from the hourly sums (runs.services.rollups) for every whole hour that is summed
and unchanged since, and from the runs themselves for the rest (the current hour, a partial hour
at the window's start, hours changed since their sums were made): the same totals as one query
over the runs, in a few small queries."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from ..models import Event, Run, RunHour, RunHourChange, RunHourDone, RunStatus
from ..services.rollups import HOUR, sums_of, within
from .runs import FAILED_STEP_STATUSES

SUMMED = ("runs", "succeeded", "failures", "cap_hits", "spend", "wall_ms_sum", "wall_ms_count")

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


def run_sums(since: datetime, until: datetime | None, by: str) -> dict:
    """Runs created in [since, until) (until None: no end), summed by "hour" or "day" (UTC) or
    "agent": {key: {runs, succeeded, failures, cap_hits, spend, wall_ms_sum, wall_ms_count,
    last_created_at (by agent only)}}. Whole summed, unchanged hours from the hourly rows; the
    rest live."""
    candidates = RunHourDone.objects.filter(hour__gte=since)
    if until is not None:
        candidates = candidates.filter(hour__lte=until - HOUR)
    done = set(candidates.values_list("hour", flat=True))
    out: dict = {}
    if done:
        first, last = min(done), max(done)
        changed = RunHourChange.objects.filter(hour__gte=first, hour__lte=last)
        done -= set(changed.values_list("hour", flat=True).distinct())
    if done:
        rows = RunHour.objects.filter(hour__gte=min(done), hour__lte=max(done))
        rows = rows.exclude(within([(h, h + HOUR) for h in _gaps_of(done)], "hour"))
        summed = {name: Sum(name) for name in SUMMED}
        if by == "agent":
            summed["last_created_at"] = Max("last_created_at")
        else:
            rows = rows.annotate(bucket=Trunc("hour", by, tzinfo=UTC))
        key = "agent" if by == "agent" else "bucket"
        _add(out, rows.values(key).order_by().annotate(**summed), key)
    live, start = [], since
    for hour in sorted(done):
        if hour > start:
            live.append((start, hour))
        start = hour + HOUR
    if until is None or start < until:
        live.append((start, until))
    if live:
        runs = Run.objects.filter(within(live, "created_at"))
        if by == "agent":
            _add(out, sums_of(runs, ("agent",)), "agent")
        else:
            runs = runs.annotate(bucket=Trunc("created_at", by, tzinfo=UTC))
            _add(out, sums_of(runs, ("bucket",), last=False), "bucket")
    return out


def _gaps_of(done: set) -> list:
    """The hours between min(done) and max(done) that are not in `done` (to leave out)."""
    gaps, hour, last = [], min(done), max(done)
    while hour < last:
        if hour not in done:
            gaps.append(hour)
        hour += HOUR
    return gaps


def _add(out: dict, rows, by: str) -> None:
    for row in rows:
        key = row[by].astimezone(UTC) if by == "bucket" else row[by]
        into = out.setdefault(key, dict.fromkeys(SUMMED, 0) | {"last_created_at": None})
        for name in SUMMED:
            into[name] += row[name] or 0
        latest = row.get("last_created_at")
        if latest is not None and (into["last_created_at"] is None or latest > into[
                "last_created_at"]):  # fmt: skip
            into["last_created_at"] = latest


def runs_over_time(window: Window, now: datetime | None = None) -> list[dict]:
    """Per bucket of `window`: start, end, runs, failures (failed or lost), cap_hits, spend."""
    bounds = window_bounds(window, now)
    by_start = run_sums(bounds[0][0], bounds[-1][1], window.unit)
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
                "spend": Decimal(row.get("spend") or 0),
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
    out = {}
    for agent, row in run_sums(since, None, "agent").items():
        count = row["wall_ms_count"]
        out[agent] = {
            "agent": agent,
            "runs": row["runs"],
            "succeeded": row["succeeded"],
            "failures": row["failures"],
            "cap_hits": row["cap_hits"],
            "spend": Decimal(row["spend"] or 0),
            "avg_ms": row["wall_ms_sum"] / count if count else None,
            "last": row["last_created_at"],
        }
    return out


def recent_runs_of(agent: str, *, limit: int = 3) -> list[Run]:
    """The agent's newest runs (one indexed query)."""
    return list(
        Run.objects.filter(agent=agent)
        .only("id", "agent", "status", "created_at", "cost_usd")
        .order_by("-created_at")[:limit]
    )
