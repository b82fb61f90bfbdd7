"""Hourly sums of runs (runs.models.rollups) for the overview and the agents page, so a month of
a million runs is read as about 720 × agents small rows instead of a million.

An hour is summed once it is over (the current hour is always counted live) and within
ROLLUP_DAYS. Triggers on runs (migration 0013) note the hour of every run inserted or deleted and
of every change to a summed column (agent, status, cap hit, cost, wall time, created_at), so a run
that finishes late, a cost that grows, a run sent with an old created_at, or a prune (it deletes
runs) marks its hour changed. The readers (runs.selectors.stats) count a changed hour live until
`rollups_refresh` sums it again: the totals always equal a query over the runs themselves, only
their speed depends on how recently the refresh ran. Beat runs it every
AGENTOPS_ROLLUP_EVERY_SECONDS.

The refresh takes the noted changes in one statement (DELETE … RETURNING) and sums their hours
afterwards, in the same transaction: a change committed before that DELETE is summed, one
committed after it stays noted for the next refresh.
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from ..models import Run, RunHour, RunHourDone, RunStatus

ROLLUP_DAYS = 35  # the longest window read is 30 days (31 calendar days) back
HOUR = timedelta(hours=1)
# rollups_refresh's advisory lock is (REFRESH_LOCK, 1): the two-key space, apart from ingest's
REFRESH_LOCK = 0x52554E48
FAILURE_STATUSES = (RunStatus.FAILED, RunStatus.LOST)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def sums_of(runs, by: tuple[str, ...], *, last: bool = True):
    """`runs` (a Run queryset) summed by `by` (fields or annotations; "hour" is the UTC hour
    created): values() rows with runs, succeeded, failures, cap_hits, spend, wall_ms_sum,
    wall_ms_count and (with `last`) last_created_at."""
    if "hour" in by:
        runs = runs.annotate(hour=Trunc("created_at", "hour", tzinfo=UTC))
    newest = {"last_created_at": Max("created_at")} if last else {}
    return (
        runs.values(*by)
        .order_by()
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=RunStatus.SUCCEEDED)),
            failures=Count("id", filter=Q(status__in=FAILURE_STATUSES)),
            cap_hits=Count("id", filter=~Q(cap_hit="")),
            spend=Sum("cost_usd"),
            wall_ms_sum=Sum("wall_ms"),
            wall_ms_count=Count("wall_ms"),
            **newest,
        )
    )


def _take_changes() -> set[datetime]:
    """Delete every noted change this transaction can see; the hours they named."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "WITH gone AS (DELETE FROM runs_runhourchange RETURNING hour) "
                "SELECT DISTINCT hour FROM gone"
            )
        else:
            cursor.execute("DELETE FROM runs_runhourchange RETURNING hour")
        return {_aware(row[0]) for row in set(cursor.fetchall())}


def _aware(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return hour_floor(value if value.tzinfo else value.replace(tzinfo=UTC))


def rollups_refresh(*, now: datetime | None = None) -> int:
    """Sum every hour of the last ROLLUP_DAYS that is over and not summed yet or changed since;
    forget older ones. Returns how many hours were summed."""
    current = hour_floor(now or timezone.now())
    horizon = current - timedelta(days=ROLLUP_DAYS)
    with transaction.atomic():
        if connection.vendor == "postgresql":  # one refresh at a time (SQLite: one writer)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, 1)", [REFRESH_LOCK])
        changed = _take_changes()
        done = set(RunHourDone.objects.filter(hour__gte=horizon).values_list("hour", flat=True))
        hours = {h for h in changed if horizon <= h < current}
        hour = horizon
        while hour < current:
            if hour not in done:
                hours.add(hour)
            hour += HOUR
        RunHour.objects.filter(hour__lt=horizon).delete()
        RunHourDone.objects.filter(hour__lt=horizon).delete()
        if not hours:
            return 0
        ranges = hour_ranges(sorted(hours))
        RunHour.objects.filter(within(ranges, "hour")).delete()
        rows = [
            RunHour(**{**row, "spend": row["spend"] or 0, "wall_ms_sum": row["wall_ms_sum"] or 0})
            for row in sums_of(Run.objects.filter(within(ranges, "created_at")), ("hour", "agent"))
        ]
        RunHour.objects.bulk_create(rows, batch_size=1000)
        RunHourDone.objects.bulk_create(
            [RunHourDone(hour=h) for h in hours if h not in done], batch_size=1000
        )
    return len(hours)


def hour_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted whole hours as [start, end) ranges, neighbours merged."""
    ranges: list[list[datetime]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(a, b) for a, b in ranges]


def within(ranges, field: str) -> Q:
    """`field` in any of the [start, end) ranges (end None: no end)."""
    condition = Q(pk__in=[])
    for start, end in ranges:
        condition |= Q(**{f"{field}__gte": start}) & (
            Q(**{f"{field}__lt": end}) if end is not None else Q()
        )
    return condition
