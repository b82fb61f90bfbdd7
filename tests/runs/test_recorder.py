"""runs.worker.DbRecorder: steps are written in batches, without hiding what a page shows while
the run runs (a finished step appears within FLUSH_S of the runner calling in, a step still
running when the runner checks in appears as running, a finished run has every step)."""

import threading

import pytest

from runs.engine.caps import Caps
from runs.models import Event, Run
from runs.worker import DbRecorder, Heartbeat, run_execute

pytestmark = pytest.mark.django_db
FLUSH_S, FLUSH_ROWS = DbRecorder.FLUSH_S, DbRecorder.FLUSH_ROWS


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def recorder(clock):
    run = Run.objects.create(agent="test-steps", status="running")
    return DbRecorder(run, threading.Event(), clock=clock)


def stored(recorder) -> list[tuple[int, str]]:
    steps = Event.objects.filter(run_id=recorder.run_id).order_by("seq")
    return list(steps.values_list("seq", "status"))


def finish(recorder, count: int) -> None:
    for i in range(count):
        ref = recorder.step_started("tool_call", f"t{i}", input={"i": i})
        recorder.step_ended(ref, "ok", output={"i": i})


def test_finished_steps_are_written_together_when_flush_rows_wait(recorder):
    finish(recorder, FLUSH_ROWS - 1)
    assert stored(recorder) == []
    finish(recorder, 1)
    assert stored(recorder) == [(i, "ok") for i in range(FLUSH_ROWS)]


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


def test_a_step_still_running_when_the_runner_checks_in_is_written_running(recorder):
    finish(recorder, 2)
    ref = recorder.step_started("tool_call", "slow", input={"q": 1})
    assert stored(recorder) == []  # started, not yet checked in: nothing written yet
    recorder.cancel_requested()
    assert stored(recorder) == [(0, "ok"), (1, "ok"), (2, "running")]
    recorder.step_ended(ref, "ok", output={"a": 1})
    recorder.flush()
    assert stored(recorder)[-1] == (2, "ok")
    step = Event.objects.get(run_id=recorder.run_id, seq=2)
    assert step.input == {"q": 1} and step.output == {"a": 1} and step.ended_at is not None


def test_the_heartbeat_writes_steps_an_agent_left_waiting_without_calling_in(recorder, clock):
    beat = Heartbeat(interval=60)
    beat.flushes(recorder.run_id, recorder)
    finish(recorder, 1)
    clock.now = FLUSH_S - 0.001
    beat.flush_waiting()
    assert stored(recorder) == []
    clock.now = FLUSH_S
    beat.flush_waiting()
    assert stored(recorder) == [(0, "ok")]
    beat.unwatch(recorder.run_id)
    finish(recorder, 1)
    clock.now = 10.0
    beat.flush_waiting()
    assert stored(recorder) == [(0, "ok")]  # a run no longer watched is the runner's to write


def test_a_finished_run_has_every_step_written_in_batches(monkeypatch):
    writes = []
    import runs.worker as worker

    original = worker.events_record
    monkeypatch.setattr(
        worker,
        "events_record",
        lambda events: writes.append(len(events)) or original(events=events),
    )
    steps = 2 * FLUSH_ROWS + 1
    run = Run.objects.create(
        agent="test-steps",
        status="queued",
        input={"steps": steps},
        caps=Caps(max_tool_calls=steps).to_dict(),
    )
    run_execute(run_id=run.id, worker="test", clock=lambda: 0.0)  # no time passes: rows only
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert writes == [FLUSH_ROWS, FLUSH_ROWS, 1]
    assert set(run.events.values_list("status", flat=True)) == {"ok"}
    assert sorted(run.events.values_list("seq", flat=True)) == list(range(steps))
