"""Hourly sums of runs: the overview and agents numbers equal a query over the runs themselves
before and after a refresh, when runs finish late, arrive with an old created_at, or are pruned;
and the reads really use the sums where an hour is summed and unchanged."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db.models import Avg, Count, Max, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from runs.models import Run, RunHour, RunHourChange, RunHourDone
from runs.selectors.stats import WINDOWS, agent_run_stats, runs_over_time, window_bounds
from runs.services.retention import runs_prune
from runs.services.rollups import ROLLUP_DAYS, hour_floor, rollups_refresh
from runs.services.runs import run_finish
from tests.runs.run_rows import make_run

pytestmark = pytest.mark.django_db
FAILED = ("failed", "lost")


def raw_over_time(window, now):
    """The overview's numbers as one query over the runs (what the sums must equal)."""
    bounds = window_bounds(window, now)
    rows = (
        Run.objects.filter(created_at__gte=bounds[0][0], created_at__lt=bounds[-1][1])
        .annotate(bucket=Trunc("created_at", window.unit, tzinfo=UTC))
        .values("bucket")
        .annotate(runs=Count("id"), failures=Count("id", filter=Q(status__in=FAILED)),
                  cap_hits=Count("id", filter=~Q(cap_hit="")), spend=Sum("cost_usd"))
    )  # fmt: skip
    by = {r["bucket"].astimezone(UTC): r for r in rows}
    return [
        (s, by.get(s, {}).get("runs", 0), by.get(s, {}).get("failures", 0),
         by.get(s, {}).get("cap_hits", 0), Decimal(by.get(s, {}).get("spend") or 0))
        for s, _ in bounds
    ]  # fmt: skip


def sums_over_time(window, now):
    return [
        (b["start"], b["runs"], b["failures"], b["cap_hits"], b["spend"])
        for b in runs_over_time(window, now)
    ]


def raw_agents(since):
    rows = Run.objects.filter(created_at__gte=since).values("agent").annotate(
        runs=Count("id"), succeeded=Count("id", filter=Q(status="succeeded")),
        failures=Count("id", filter=Q(status__in=FAILED)),
        cap_hits=Count("id", filter=~Q(cap_hit="")), spend=Sum("cost_usd"),
        avg_ms=Avg("wall_ms"), last=Max("created_at"))  # fmt: skip
    return {
        r["agent"]: (r["runs"], r["succeeded"], r["failures"], r["cap_hits"],
                     Decimal(r["spend"] or 0), None if r["avg_ms"] is None else
                     round(float(r["avg_ms"]), 3), r["last"])
        for r in rows
    }  # fmt: skip


def sums_agents(since):
    return {
        agent: (r["runs"], r["succeeded"], r["failures"], r["cap_hits"], r["spend"],
                None if r["avg_ms"] is None else round(float(r["avg_ms"]), 3), r["last"])
        for agent, r in agent_run_stats(since=since).items()
    }  # fmt: skip


def assert_exact(now):
    for window in WINDOWS.values():
        assert sums_over_time(window, now) == raw_over_time(window, now), window.key
    for since in (now - timedelta(days=7), now - timedelta(days=3, minutes=17)):
        assert sums_agents(since) == raw_agents(since)


@pytest.fixture
def spread():
    """Runs over the last 40 days: agents, endings, costs, wall times (some none)."""
    now = timezone.now()
    runs = []
    for i in range(60):
        created = now - timedelta(hours=i * 16, minutes=i)
        runs.append(make_run(
            agent=("demo-support", "demo-loop", "crm")[i % 3],
            status=("succeeded", "failed", "budget_exceeded", "lost", "running")[i % 5],
            cap_hit="max_cost_usd" if i % 5 == 2 else "",
            cost_usd=Decimal(i) / 1000, wall_ms=None if i % 4 == 0 else 100 * i,
            created_at=created, started_at=created,
            finished_at=None if i % 5 == 4 else created + timedelta(seconds=1),
        ))  # fmt: skip
    return now, runs


def test_sums_equal_the_runs_before_and_after_a_refresh(spread):
    now, runs = spread
    assert_exact(now)
    assert rollups_refresh(now=now) == ROLLUP_DAYS * 24
    assert not RunHourChange.objects.exists()
    assert RunHour.objects.filter(agent="crm").exists()
    assert_exact(now)
    assert rollups_refresh(now=now) == 0  # nothing changed, nothing to sum


def test_a_run_finishing_late_a_late_arrival_and_a_prune_stay_exact(spread):
    now, runs = spread
    rollups_refresh(now=now)
    late = runs[4]  # running, created 64 hours ago
    assert late.status == "running"
    run_finish(run_id=late.id, status="failed", error={"code": "agent_error", "message": "x"})
    Run.objects.filter(id=late.id).update(cost_usd=Decimal("1.5"), wall_ms=123_456)
    make_run(agent="remote", created_at=now - timedelta(days=6), cost_usd=Decimal("0.7"))
    assert RunHourChange.objects.exists()
    assert_exact(now)  # the changed hours are counted live
    rollups_refresh(now=now)
    assert_exact(now)
    hour = hour_floor(late.created_at)
    assert RunHour.objects.get(hour=hour, agent=late.agent).failures == 1

    report = runs_prune(older_than=timedelta(days=5), now=now)
    assert report.runs > 0
    assert_exact(now)
    rollups_refresh(now=now)
    assert_exact(now)
    before = hour_floor(now - timedelta(days=5))
    summed = RunHour.objects.filter(hour__lt=before).aggregate(n=Sum("runs"))["n"]
    assert (
        summed
        == Run.objects.filter(
            created_at__lt=before, created_at__gte=before - timedelta(days=ROLLUP_DAYS - 5)
        ).count()
    )


def test_reads_use_the_sums_of_summed_unchanged_hours(spread):
    now, runs = spread
    rollups_refresh(now=now)
    target = runs[2]
    hour = hour_floor(target.created_at)
    RunHour.objects.filter(hour=hour, agent=target.agent).update(runs=1000)
    counted = {b["start"]: b["runs"] for b in runs_over_time(WINDOWS["7d"], now)}
    assert counted[hour.replace(hour=0)] >= 1000  # read from the sums, not the runs
    Run.objects.filter(id=target.id).update(status="cancelled")  # the hour changes
    assert_exact(now)


def test_a_heartbeat_or_a_counter_notes_no_change(spread):
    now, runs = spread
    rollups_refresh(now=now)
    Run.objects.filter(id=runs[4].id).update(heartbeat_at=now, tool_calls=9, output={"a": 1})
    Run.objects.filter(id=runs[5].id).update(cost_usd=runs[5].cost_usd)  # same value
    assert not RunHourChange.objects.exists()


def test_hours_past_the_horizon_are_forgotten(spread):
    now, runs = spread
    rollups_refresh(now=now - timedelta(days=10))
    old = hour_floor(now - timedelta(days=10 + ROLLUP_DAYS - 1))
    assert RunHourDone.objects.filter(hour=old).exists()
    rollups_refresh(now=now)
    horizon = hour_floor(now) - timedelta(days=ROLLUP_DAYS)
    assert not RunHourDone.objects.filter(hour__lt=horizon).exists()
    assert not RunHour.objects.filter(hour__lt=horizon).exists()
    assert RunHourDone.objects.filter(hour=horizon).exists()
    assert_exact(now)


def test_beat_refreshes_the_sums_every_minute(spread, settings):
    from runs.tasks import refresh_rollups

    entry = settings.CELERY_BEAT_SCHEDULE["sum-run-hours"]
    assert (entry["task"], entry["schedule"]) == ("runs.rollups", 60)
    assert refresh_rollups() == ROLLUP_DAYS * 24
    assert_exact(spread[0])
