"""Retention: which runs a prune deletes (finished and older than the limit, nothing else), with
what (steps and every dependent row), in which transactions, and what it reports."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, models
from django.db.models.deletion import get_candidate_relations_to_delete
from django.utils import timezone

from runs.models import (
    TERMINAL_STATUSES,
    Event,
    Run,
    RunStatus,
    SpendReservation,
    SpendWindow,
    SpendWindowPeriod,
)
from runs.services.ingest import runs_try_lock
from runs.services.retention import runs_prune
from tests.runs.run_rows import make_run, make_steps

NOW = timezone.now().replace(microsecond=0)
LIMIT = timedelta(days=90)
CUTOFF = NOW - LIMIT


def old_run(age: timedelta = LIMIT + timedelta(days=1), steps: int = 3, **fields):
    """A finished run created `age` before NOW, ended a minute later, with `steps` steps."""
    created = NOW - age
    values = {
        "created_at": created,
        "started_at": created,
        "finished_at": created + timedelta(minutes=1),
    }
    values.update(fields)
    run = make_run(**values)
    if steps:
        make_steps(run, steps)
    return run


def prune(**options):
    options.setdefault("older_than", LIMIT)
    options.setdefault("now", NOW)
    return runs_prune(**options)


def exists(run) -> bool:
    return Run.objects.filter(id=run.id).exists()


def test_a_run_exactly_at_the_limit_stays_and_one_a_microsecond_older_goes(db):
    at_limit = old_run(age=LIMIT, finished_at=CUTOFF - timedelta(seconds=1))
    older = old_run(
        age=LIMIT + timedelta(microseconds=1), finished_at=CUTOFF - timedelta(seconds=1)
    )
    young = old_run(age=timedelta(days=1))

    report = prune()

    assert exists(at_limit) and exists(young) and not exists(older)
    assert (report.runs, report.steps) == (1, 3)
    assert Event.objects.filter(run_id=older.id).count() == 0
    assert Event.objects.filter(run_id__in=[at_limit.id, young.id]).count() == 6


def test_a_run_created_before_the_limit_but_ended_within_it_stays(db):
    long_waiting = old_run(finished_at=CUTOFF + timedelta(seconds=1))
    ended_at_the_cutoff = old_run(finished_at=CUTOFF)
    report = prune()
    assert exists(long_waiting) and exists(ended_at_the_cutoff)
    assert report.runs == 0


def test_a_finished_run_without_an_end_time_goes_by_its_creation(db):
    run = old_run(finished_at=None)
    assert prune().runs == 1 and not exists(run)


@pytest.mark.parametrize("status", sorted(set(RunStatus.values) - TERMINAL_STATUSES))
def test_an_unfinished_run_is_never_touched_however_old(db, status):
    ancient = old_run(age=timedelta(days=3650), status=status, finished_at=None)
    report = prune()
    assert exists(ancient) and Event.objects.filter(run_id=ancient.id).count() == 3
    assert (report.runs, report.steps) == (0, 0)


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_every_finished_status_goes(db, status):
    run = old_run(status=status)
    assert prune().runs == 1 and not exists(run)


def test_dry_run_deletes_nothing_and_reports_what_a_prune_then_removes(db):
    runs = [old_run(steps=n) for n in (0, 4, 12)]
    old_run(age=timedelta(days=2))
    reserve(runs[1])
    before = (Run.objects.count(), Event.objects.count(), SpendReservation.objects.count())

    dry = prune(dry_run=True, batch_steps=5)

    after = (Run.objects.count(), Event.objects.count(), SpendReservation.objects.count())
    assert after == before
    assert dry.dry_run and (dry.runs, dry.steps) == (3, 16)
    assert dry.others() == {"spend reservations": 1}
    assert dry.summary().startswith("Would remove 3 runs, 16 steps, 1 spend reservations")

    real = prune(batch_steps=5)
    assert real.removed == dry.removed and real.batches == dry.batches
    assert real.summary().startswith("Removed 3 runs, 16 steps, 1 spend reservations")
    assert Run.objects.count() == 1


def test_dependent_rows_go_with_their_run_and_a_replay_of_it_stays_unlinked(db):
    original = old_run()
    reserve(original)
    replay = make_run(replay_of=original, replay_mode="live")

    prune()

    assert not exists(original) and not SpendReservation.objects.exists()
    replay.refresh_from_db()
    assert replay.replay_of_id is None


def test_every_row_pointing_at_a_run_or_a_step_is_accounted_for():
    # A new model with a foreign key to a run (or a step) must say what becomes of it when the
    # run goes: PROTECT would stop every prune, and a key the collector cannot follow would
    # leave orphans or fail the transaction.
    handled = {models.CASCADE, models.SET_NULL}
    for model in (Run, Event):
        # Hidden relations (related_name="+") included, as the deletion collector sees them.
        for rel in get_candidate_relations_to_delete(model._meta):
            on_delete = rel.on_delete
            if on_delete is models.DO_NOTHING:
                # Only a step's parent, which carries no database constraint and whose step
                # goes with the same run.
                assert (rel.related_model, rel.field.name) == (Event, "parent")
                assert not rel.field.db_constraint
                continue
            assert on_delete in handled, f"{rel.related_model.__name__}.{rel.field.name}"


@pytest.mark.django_db(transaction=True)
def test_deletes_go_in_transactions_of_at_most_a_batch_of_steps():
    small = [old_run(steps=2) for _ in range(5)]
    big = old_run(steps=12)
    statements = []

    def record(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("DELETE"):
            table = "runs_event" if "runs_event" in sql.split("WHERE")[0] else "other"
            statements.append((table, context["cursor"].rowcount, connection.in_atomic_block))
        return result

    with connection.execute_wrapper(record):
        report = prune(batch_steps=5)

    step_deletes = [n for table, n, _ in statements if table == "runs_event"]
    assert sum(step_deletes) == report.steps == 22
    assert max(step_deletes) <= 5
    assert all(atomic for _, _, atomic in statements)
    # Oldest first: 2+2 | 2+2 | 2 then the big run's 12 steps as 5 | 5 | 2 with the run.
    assert report.batches == 6 and report.runs == 6
    assert not Run.objects.filter(id__in=[r.id for r in [*small, big]]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_a_batch_is_writing_is_left_for_the_next_prune():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers: a prune never meets a batch in flight")
    busy, free = old_run(), old_run()
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def batch_in_flight():
        # What ingest does for a batch: hold the run's lock for its transaction.
        from django.db import transaction

        try:
            with transaction.atomic():
                assert runs_try_lock([busy.id]) == {busy.id}
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=batch_in_flight)
    thread.start()
    assert locked.wait(30)
    try:
        report = prune()
    finally:
        release.set()
        thread.join(30)
    assert exists(busy) and not exists(free)
    assert (report.runs, report.skipped) == (1, 1)
    assert "Left 1 runs being written" in report.summary()
    assert prune().runs == 1 and not exists(busy)


def test_a_run_sent_again_as_running_during_a_prune_is_kept(db, monkeypatch):
    run = old_run()
    # Between choosing its candidates and deleting them, ingest marks the run running again.
    import runs.services.retention as retention

    real = retention.runs_try_lock

    def reopen_then_lock(run_ids):
        Run.objects.filter(id=run.id).update(status=RunStatus.RUNNING, finished_at=None)
        return real(run_ids)

    monkeypatch.setattr(retention, "runs_try_lock", reopen_then_lock)
    report = prune()
    assert exists(run) and report.runs == 0 and report.skipped == 1


def test_nothing_old_is_a_report_of_nothing(db):
    old_run(age=timedelta(days=1))
    report = prune()
    assert (report.runs, report.steps, report.batches) == (0, 0, 0)
    assert report.summary().startswith("Removed 0 runs, 0 steps finished before")


@pytest.mark.parametrize("bad", [{"older_than": timedelta(0)}, {"batch_steps": 0}])
def test_bad_limits_are_refused(db, bad):
    with pytest.raises(ValueError):
        prune(**bad)


def reserve(run) -> SpendReservation:
    window = SpendWindow.objects.create(scope="global", period="day", limit_usd=1)
    period = SpendWindowPeriod.objects.create(window=window, starts_at=run.created_at)
    return SpendReservation.objects.create(run=run, period=period, micros=10)
