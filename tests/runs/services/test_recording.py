"""runs.services.recording: a worker process writes its runs' steps and counters in batches,
without hiding what a page shows while a run runs (a finished step appears within about FLUSH_S,
a step still running RUNNING_AFTER_S after it began appears as running, a finished run has every
step), and without waking the runs' threads to do it."""

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

import runs.services.recording as recording
import runs.worker as worker
from runs.engine.budget import Usage
from runs.engine.caps import Caps
from runs.models import Event, Run
from runs.services.recording import (
    FLUSH_ROWS,
    FLUSH_S,
    RUNNING_AFTER_S,
    DbRecorder,
    StepWriter,
)
from runs.services.runs import runs_heartbeat, runs_usage_update
from runs.worker import Heartbeat, run_execute

pytestmark = pytest.mark.django_db


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def writer(clock):
    return StepWriter(clock=clock)


@pytest.fixture
def recorder(writer):
    return recorder_of(writer)


def recorder_of(writer) -> DbRecorder:
    run = Run.objects.create(agent="test-steps", status="running")
    return DbRecorder(run, threading.Event(), writer=writer)


def stored(recorder) -> list[tuple[int, str]]:
    steps = Event.objects.filter(run_id=recorder.run_id).order_by("seq")
    return list(steps.values_list("seq", "status"))


def finish(recorder, count: int) -> None:
    for i in range(count):
        ref = recorder.step_started("tool_call", f"t{i}", input={"i": i})
        recorder.step_ended(ref, "ok", output={"i": i})


@pytest.fixture
def writes(monkeypatch):
    """The row count of each call to the step write path."""
    counts = []
    original = recording.events_record

    def counted(*, events):
        counts.append(len(events))
        return original(events=events)

    monkeypatch.setattr(recording, "events_record", counted)
    return counts


def test_finished_steps_of_all_runs_are_written_together_when_flush_rows_wait(writer, writes):
    one, other = recorder_of(writer), recorder_of(writer)
    finish(one, FLUSH_ROWS - 2)
    finish(other, 1)
    assert stored(one) == stored(other) == [] and writes == []
    finish(other, 1)
    assert stored(one) == [(i, "ok") for i in range(FLUSH_ROWS - 2)]
    assert stored(other) == [(0, "ok"), (1, "ok")]
    assert writes == [FLUSH_ROWS]


def test_a_finished_step_is_written_once_it_waited_flush_s_and_the_runner_calls_in(recorder, clock):
    finish(recorder, 1)
    clock.now = FLUSH_S - 0.001
    assert recorder.cancel_requested() is False
    assert stored(recorder) == []
    clock.now = FLUSH_S
    recorder.cancel_requested()
    assert stored(recorder) == [(0, "ok")]


def test_a_step_ending_after_flush_s_writes_the_waiting_ones_with_it(recorder, clock):
    finish(recorder, 1)
    clock.now = FLUSH_S - 0.001
    finish(recorder, 1)
    assert stored(recorder) == []
    clock.now = FLUSH_S
    finish(recorder, 1)
    assert stored(recorder) == [(0, "ok"), (1, "ok"), (2, "ok")]


def test_a_step_still_running_after_running_after_s_is_written_running_by_the_writer(
    writer, recorder, clock, writes
):
    other = recorder_of(writer)
    clock.now = 0.05
    finish(other, 1)
    finish(recorder, 2)
    ref = recorder.step_started("tool_call", "slow", input={"q": 1})
    quick = other.step_started("tool_call", "quick", input={})
    clock.now = 0.05 + RUNNING_AFTER_S - 0.001
    writer.tick()  # nobody calls in; not yet
    assert stored(recorder) == [] and writes == []
    other.step_ended(quick, "ok")
    clock.now = 0.05 + RUNNING_AFTER_S
    writer.tick()
    assert stored(recorder) == [(0, "ok"), (1, "ok"), (2, "running")]
    assert stored(other) == [(0, "ok"), (1, "ok")] and writes == [5]  # what waited went along
    writer.tick()  # written once
    assert writes == [5]
    recorder.step_ended(ref, "ok", output={"a": 1})
    recorder.flush()
    assert stored(recorder)[-1] == (2, "ok")
    step = Event.objects.get(run_id=recorder.run_id, seq=2)
    assert step.input == {"q": 1} and step.output == {"a": 1} and step.ended_at is not None


def test_a_step_that_ends_before_running_after_s_is_written_once_complete(
    writer, recorder, clock, writes
):
    ref = recorder.step_started("tool_call", "fast", input={})
    clock.now = RUNNING_AFTER_S - 0.001
    recorder.step_ended(ref, "ok", output={"a": 1})
    clock.now = 10.0
    writer.tick()
    assert stored(recorder) == [(0, "ok")] and writes == [1]


def test_a_running_step_is_written_at_once_when_its_runner_checks_in(writer, recorder, writes):
    # An approval's wait checks in as it begins: the question is visible at once.
    ref = recorder.step_started("lifecycle", "wait", input={"kind": "tool"})
    recorder.cancel_requested()
    assert stored(recorder) == [(0, "running")] and writes == [1]
    writer.tick()
    recorder.cancel_requested()
    assert writes == [1]  # not again
    recorder.step_ended(ref, "ok")
    recorder.flush()
    assert stored(recorder) == [(0, "ok")]


def test_the_writer_writes_what_waited_flush_s_without_anyone_calling_in(recorder, writer, clock):
    finish(recorder, 1)
    clock.now = FLUSH_S - 0.001
    writer.tick()
    assert stored(recorder) == []
    clock.now = FLUSH_S
    writer.tick()
    assert stored(recorder) == [(0, "ok")]


def test_a_discarded_runs_running_steps_are_not_written(writer, recorder, clock, writes):
    recorder.step_started("tool_call", "slow", input={})
    recorder.discard()
    clock.now = 10.0
    writer.tick()
    assert stored(recorder) == [] and writes == []


@pytest.mark.django_db(transaction=True)
def test_the_process_writer_ticks_on_its_own_thread_while_steps_run(writes):
    writer = StepWriter(tick_s=0.01)
    recorder = recorder_of(writer)
    ref = recorder.step_started("tool_call", "slow", input={})
    deadline = time.monotonic() + 10
    while stored(recorder) != [(0, "running")] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored(recorder) == [(0, "running")]  # no call from the run's thread
    recorder.step_ended(ref, "ok")
    while stored(recorder) != [(0, "ok")] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored(recorder) == [(0, "ok")]


def test_counters_go_with_the_next_batch_for_all_runs_at_once(writer, clock):
    one, other = recorder_of(writer), recorder_of(writer)
    one.usage_changed(Usage(tool_calls=3))
    other.usage_changed(Usage(tool_calls=1))
    other.usage_changed(Usage(tool_calls=2))  # the later snapshot replaces the earlier
    assert set(Run.objects.values_list("tool_calls", flat=True)) == {0}
    clock.now = FLUSH_S
    one.cancel_requested()
    assert Run.objects.get(id=one.run_id).tool_calls == 3
    assert Run.objects.get(id=other.run_id).tool_calls == 2


def test_a_run_whose_steps_are_refused_does_not_hold_back_the_others(writer, monkeypatch, clock):
    good, bad = recorder_of(writer), recorder_of(writer)
    original = recording.events_record

    def refusing(*, events):
        if any(row["run_id"] == bad.run_id for row in events):
            raise RuntimeError("the database refused the step")
        return original(events=events)

    monkeypatch.setattr(recording, "events_record", refusing)
    finish(bad, 1)
    finish(good, 1)
    good.flush()  # the batch holds both runs' steps: good's are written, bad's wait again
    assert stored(good) == [(0, "ok")] and stored(bad) == []
    with pytest.raises(RuntimeError, match="refused"):
        bad.flush()  # even though its batch number was written by good's call
    bad.discard()
    finish(good, 1)
    good.flush()
    assert stored(good) == [(0, "ok"), (1, "ok")]


def test_a_finished_run_has_every_step_written_in_batches(monkeypatch, writes):
    monkeypatch.setattr(recording, "step_writer", StepWriter(clock=lambda: 0.0))  # no time passes
    steps = 2 * FLUSH_ROWS + 1
    run = Run.objects.create(
        agent="test-logs", status="queued", input={"steps": steps}, caps=Caps().to_dict()
    )
    run_execute(run_id=run.id, worker="test")
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert writes == [FLUSH_ROWS, FLUSH_ROWS, 1]
    assert set(run.events.values_list("status", flat=True)) == {"ok"}
    assert sorted(run.events.values_list("seq", flat=True)) == list(range(steps))


def test_a_batch_stamps_the_heartbeat_of_the_runs_it_writes_and_the_heartbeat_skips_them(
    monkeypatch, clock
):
    writer = StepWriter(clock=clock)
    monkeypatch.setattr(recording, "step_writer", writer)
    monkeypatch.setattr(worker, "step_writer", writer)
    written, silent = recorder_of(writer), recorder_of(writer)
    Run.objects.update(heartbeat_at=None)
    beat = Heartbeat(interval=1.0)
    for run_id in (written.run_id, silent.run_id):
        beat._watched[str(run_id)] = threading.Event()
    written.usage_changed(Usage(tool_calls=1))
    written.flush()
    stamped = Run.objects.get(id=written.run_id).heartbeat_at
    assert stamped is not None  # the batch's UPDATE of its counters stamped it
    clock.now = 0.9
    beat.beat_once()  # within the interval: only the run no batch wrote is stamped
    beats = dict(Run.objects.values_list("id", "heartbeat_at"))
    assert beats[written.run_id] == stamped and beats[silent.run_id] is not None
    clock.now = 1.0
    beat.beat_once()  # an interval later it is stamped again
    assert Run.objects.get(id=written.run_id).heartbeat_at > stamped
    beat.unwatch(written.run_id)
    assert not writer.written_within(written.run_id, 10.0)


def test_a_finished_runs_counters_are_written_by_its_finish_alone(monkeypatch):
    monkeypatch.setattr(recording, "step_writer", StepWriter(clock=lambda: 0.0))  # no time passes
    run = Run.objects.create(
        agent="test-steps", status="queued", input={"steps": 3, "seconds": 0},
        caps=Caps().to_dict(),
    )  # fmt: skip
    counters = []  # the runs each batch wrote the counters of
    original = recording.runs_usage_update

    def counted(usages, **kwargs):
        counters.append(set(usages))
        return original(usages, **kwargs)

    monkeypatch.setattr(recording, "runs_usage_update", counted)
    run_execute(run_id=run.id, worker="test")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.events.count() == 3
    assert (run.tool_calls, run.wall_ms is not None) == (3, True)  # written by the finish
    assert counters == []  # the last batch left them to it


def test_a_running_runs_counters_leave_its_wall_time_to_its_end(recorder):
    recorder.usage_changed(Usage(tool_calls=2, wall_ms=1500))
    recorder.flush()
    run = Run.objects.get(id=recorder.run_id)
    assert (run.tool_calls, run.wall_ms, run.heartbeat_at is not None) == (2, None, True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's heap-only tuples")
def test_a_running_runs_counters_and_heartbeat_are_updated_in_place(recorder):
    # No indexed column changes, so PostgreSQL adds no index entries (a HOT update).
    def hot_updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_get_xact_tuples_hot_updated('runs_run'::regclass)")
            return cursor.fetchone()[0]

    before = hot_updates()
    usage = Usage(tool_calls=1, cost_usd=0, wall_ms=10)
    runs_usage_update({recorder.run_id: usage}, heartbeat_at=timezone.now(), live=True)
    runs_heartbeat([recorder.run_id])
    assert hot_updates() - before == 2
