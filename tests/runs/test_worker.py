"""Runs executed by a real worker process through the real broker, on the configured database."""

import time
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from runs.engine.caps import Caps
from runs.models import CapPolicy, Event, Run
from runs.services.runs import run_cancel, run_create, runs_reap
from runs.tasks import execute_run
from runs.worker import run_execute
from tests.conftest import WorkerProcess
from tests.runs.run_rows import wait_for

pytestmark = pytest.mark.integration


def wait_for_events(run_id, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while Event.objects.filter(run_id=run_id).count() < count:
        assert time.monotonic() < deadline, "steps did not appear"
        time.sleep(0.05)


def unqueued(agent: str, **fields) -> Run:
    """A queued run that no worker was told about (this session's worker may be running)."""
    fields.setdefault("input", {"steps": 2})
    return Run.objects.create(agent=agent, status="queued", caps=Caps().to_dict(), **fields)


def start(agent: str, **kwargs) -> Run:
    kwargs.setdefault("input", {"question": "Where is order A-1001?"})
    return run_create(agent=agent, **kwargs)


def test_demo_support_succeeds_with_its_tool_calls_recorded(celery_worker, transactional_db):
    run = wait_for(start("demo-support").id)
    assert run.status == "succeeded", run.error
    assert "A-1001 is shipped" in run.output["answer"]
    steps = list(run.events.order_by("seq"))
    assert [s.seq for s in steps] == list(range(len(steps)))
    tools = [s.name for s in steps if s.kind == "tool_call"]
    assert sorted(tools) == ["lookup_order", "search_kb"]
    assert all(s.status == "ok" and s.ended_at for s in steps)
    assert run.tool_calls == 2 and run.model_calls == 2
    model_steps = [s for s in steps if s.kind == "model_call"]
    # Cost came from the seeded scripted-mini price and adds up on the run.
    assert sum(s.cost_usd for s in model_steps) == run.cost_usd > 0
    assert run.worker and run.attempt == 1 and run.started_at and run.finished_at


def test_max_tool_calls_stops_demo_loop_at_exactly_twenty(celery_worker, transactional_db):
    run = wait_for(start("demo-loop").id)
    assert run.status == "budget_exceeded"
    assert run.cap_hit == "max_tool_calls"
    assert run.error["code"] == "budget_exceeded" and run.error["limit"] == 20
    executed = run.events.filter(kind="tool_call", status="ok").count()
    refused = run.events.filter(kind="tool_call", status="cancelled")
    assert executed == 20 and run.tool_calls == 20
    assert refused.count() == 1 and refused.get().attributes["refused"] is True
    assert run.events.filter(kind="lifecycle", name="max_tool_calls").exists()


def test_a_lowered_cap_is_frozen_on_the_run_and_enforced(celery_worker, transactional_db):
    run = wait_for(start("demo-loop", caps={"max_tool_calls": 3}).id)
    assert run.caps["max_tool_calls"] == 3
    assert run.tool_calls == 3 and run.cap_hit == "max_tool_calls"


def test_spend_never_passes_max_cost_usd(celery_worker, transactional_db):
    run = wait_for(start("demo-spender").id)
    assert run.status == "budget_exceeded" and run.cap_hit == "max_cost_usd"
    assert Decimal("0.40") < run.cost_usd <= Decimal("0.50")
    charged = sum(e.cost_usd for e in run.events.filter(kind="model_call", status="ok"))
    assert charged == run.cost_usd


def test_per_agent_override_applies_to_that_agent_only(celery_worker, transactional_db):
    CapPolicy.objects.create(scope="demo-loop", values={"max_tool_calls": 5})
    loop = wait_for(start("demo-loop").id)
    support = start("demo-support")
    assert loop.caps["max_tool_calls"] == 5 and loop.tool_calls == 5
    assert support.caps["max_tool_calls"] == 20


def test_wall_clock_cap_ends_the_run_without_awaiting_the_call_in_flight(
    celery_worker, transactional_db
):
    # The engine's tests pin where the deadline is seen on an injected clock; on a worker: the
    # frozen cap is enforced and the 20 s step in flight is abandoned, not awaited.
    run = wait_for(start("demo-slow", caps={"max_wall_seconds": 3}).id, timeout=20)
    assert run.status == "budget_exceeded" and run.cap_hit == "max_wall_seconds"
    assert 3000 <= run.wall_ms < 20_000
    # The abandoned in-flight tool call is closed, not left running.
    assert not run.events.filter(status="running").exists()


def test_hanging_tool_times_out_and_the_agent_finishes(celery_worker, transactional_db):
    run = wait_for(start("demo-hang").id)
    assert run.status == "succeeded"
    step = run.events.get(kind="tool_call")
    assert step.status == "timeout"
    assert "did not answer within 2 s" in run.output["answer"]


def test_raising_tool_fails_the_run_with_agent_error(celery_worker, transactional_db):
    run = wait_for(start("demo-broken").id)
    assert run.status == "failed" and run.error["code"] == "agent_error"
    assert run.events.get(kind="tool_call").status == "error"


def test_cancel_a_queued_run_before_it_starts(transactional_db):
    run = unqueued("demo-support")
    run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.error["code"] == "cancelled"
    # The task arriving later finds nothing to do.
    run_execute(run_id=run.id, worker="test")
    assert Run.objects.get(id=run.id).status == "cancelled"
    assert not Event.objects.filter(run=run).exists()


def test_cancel_a_running_run_records_the_in_flight_step_cancelled(celery_worker, transactional_db):
    run = start("demo-slow")
    wait_for(run.id, {"running"})
    wait_for_events(run.id, 1)
    run_cancel(run=Run.objects.get(id=run.id))
    run = wait_for(run.id, timeout=10)
    assert run.status == "cancelled" and run.error["code"] == "cancelled"
    assert run.events.get(kind="tool_call").status == "cancelled"
    assert (run.finished_at - timezone.now()).total_seconds() < 5


def test_sigkilled_worker_leaves_a_lost_run_with_its_steps_and_no_second_execution(
    transactional_db, tmp_path
):
    # Its own queue, so this session's shared worker cannot take the run instead.
    queue = f"victim-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(tmp_path / "victim.log", queue=queue).start()
    try:
        run = unqueued("test-steps", input={"steps": 40, "seconds": 0.1})
        execute_run.apply_async(args=[str(run.id)], queue=queue)
        wait_for(run.id, {"running"})
        wait_for_events(run.id, 6)
    finally:
        worker.stop(sig=9)  # SIGKILL: no shutdown, no ack
    kept = set(Event.objects.filter(run_id=run.id).values_list("id", flat=True))
    assert 6 <= len(kept) < 40
    assert Run.objects.get(id=run.id).status == "running"

    # The task comes back (redelivery) while the heartbeat is stale: the run is ended lost,
    # not executed again.
    Run.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    run_execute(run_id=run.id, worker="redelivered")
    run = Run.objects.get(id=run.id)
    assert run.status == "lost" and run.error["code"] == "worker_lost"
    after = Event.objects.filter(run_id=run.id)
    assert set(after.values_list("id", flat=True)) == kept
    assert not after.filter(status="running").exists()


def test_reaper_ends_a_run_whose_heartbeat_stopped(transactional_db):
    run = unqueued("test-steps")
    stale = timezone.now() - timezone.timedelta(seconds=120)
    Run.objects.filter(id=run.id).update(status="running", heartbeat_at=stale, attempt=1)
    fresh = unqueued("test-steps")
    Run.objects.filter(id=fresh.id).update(status="running", heartbeat_at=timezone.now())
    assert runs_reap(stale_after_seconds=30) == 1
    assert Run.objects.get(id=run.id).status == "lost"
    assert Run.objects.get(id=fresh.id).status == "running"


def test_a_duplicate_delivery_while_the_run_is_alive_does_nothing(transactional_db):
    run = unqueued("test-steps")
    Run.objects.filter(id=run.id).update(status="running", heartbeat_at=timezone.now(), attempt=1)
    run_execute(run_id=run.id, worker="duplicate")
    run = Run.objects.get(id=run.id)
    assert run.status == "running" and run.attempt == 1
    assert not Event.objects.filter(run=run).exists()


def test_an_agent_safe_to_retry_runs_again_after_a_lost_worker(transactional_db):
    run = unqueued("test-steps-retryable")
    stale = timezone.now() - timezone.timedelta(hours=1)
    Run.objects.filter(id=run.id).update(status="running", heartbeat_at=stale, attempt=1)
    run_execute(run_id=run.id, worker="retry")
    run = Run.objects.get(id=run.id)
    assert run.status == "succeeded" and run.attempt == 2


def test_a_run_whose_message_was_lost_is_sent_again_and_executed_once(
    celery_worker, transactional_db, monkeypatch
):
    from runs.services import runs as run_writes
    from runs.services.runs import REDISPATCH_AFTER, runs_redispatch

    # The broker took nothing although the send looked fine: the message was lost on the way.
    monkeypatch.setattr(run_writes, "_send", lambda run_id: None)
    run = run_create(agent="test-steps", input={"steps": 2})
    monkeypatch.undo()
    time.sleep(1)
    assert Run.objects.get(id=run.id).status == "queued"
    later = timezone.now() + REDISPATCH_AFTER + timezone.timedelta(seconds=1)
    assert runs_redispatch(now=later) == 1
    run_writes._send(run.id)  # and a duplicate message on top: it must find nothing to do
    run = wait_for(run.id)
    assert run.status == "succeeded" and run.attempt == 1
    time.sleep(1)  # the second delivery has been taken and found nothing to do
    assert Event.objects.filter(run_id=run.id, kind="tool_call").count() == 2
    assert Run.objects.get(id=run.id).attempt == 1


# Spend windows across workers.


def _price_window_model():
    from runs.models import ModelPrice
    from tests.agents import WINDOW_MODEL

    # A call of max_tokens=50 costs about $0.002; each run makes two.
    ModelPrice.objects.create(model=WINDOW_MODEL, input_per_mtok=1, output_per_mtok=40)


def test_50_concurrent_runs_never_spend_past_a_day_window(transactional_db, tmp_path):
    from django.db import connection

    from runs.selectors.windows import windows_state
    from runs.services.windows import SpendWindowExhausted, window_create

    _price_window_model()
    window = window_create(scope="agent:test-spend", period="day", limit_usd="0.05")
    queue = f"window-{uuid.uuid4().hex[:8]}"
    # Four threads; on PostgreSQL, two worker processes of four threads each.
    processes = 2 if connection.vendor == "postgresql" else 1
    workers = [
        WorkerProcess(tmp_path / f"w{i}.log", queue=queue, concurrency=4).start()
        for i in range(processes)
    ]
    started, refused_at_start = [], 0
    try:
        for _ in range(50):
            try:
                run = run_create(agent="test-spend", input={"calls": 2, "max_tokens": 50})
            except SpendWindowExhausted:
                refused_at_start += 1
                continue
            # The outbox sent it to the session's queue too; this queue's workers get their own
            # copy (a run is executed once whichever delivery claims it).
            execute_run.apply_async(args=[str(run.id)], queue=queue)
            started.append(run.id)
        runs = [wait_for(run_id, timeout=120) for run_id in started]
    finally:
        for worker in workers:
            worker.stop()
    spent = sum((r.cost_usd for r in runs), Decimal(0))
    stopped = [r for r in runs if r.cap_hit == "spend_window"]
    state = next(s for s in windows_state() if s.window.id == window.id)
    assert spent <= Decimal("0.05")
    assert state.spent == spent and state.reserved == 0
    assert stopped or refused_at_start, "the window never refused anything"
    assert all(r.status in ("succeeded", "budget_exceeded") for r in runs)
    assert spent > Decimal("0.04")  # it was used, not just refused (each call is ~$0.002)


def test_a_killed_workers_hold_is_released_by_the_reaper(transactional_db, tmp_path):
    from runs.selectors.windows import windows_state
    from runs.services.windows import window_create

    _price_window_model()
    window_create(scope="global", period="hour", limit_usd="1")
    queue = f"victim-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(tmp_path / "victim.log", queue=queue).start()
    try:
        run = unqueued("test-hang-model", input={})
        execute_run.apply_async(args=[str(run.id)], queue=queue)
        deadline = time.monotonic() + 30
        while windows_state()[0].reserved == 0:
            assert time.monotonic() < deadline, "the model call never held anything"
            time.sleep(0.05)
    finally:
        worker.stop(sig=9)
    assert windows_state()[0].reserved > 0
    time.sleep(1.5)
    assert runs_reap(stale_after_seconds=1) == 1
    assert Run.objects.get(id=run.id).status == "lost"
    held = windows_state()[0]
    assert (held.reserved, held.spent) == (0, 0)
