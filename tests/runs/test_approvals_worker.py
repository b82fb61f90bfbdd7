"""Runs that wait for a person, executed by a real worker process (and, where the clock is
moved by the test, by the worker's code in this process): extend, stop, the timeout, tools that
require approval, and a worker killed while a run waits."""

import json
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from runs.models import Approval, ModelPrice, Run
from runs.services import caps
from runs.services.approvals import DbApprovals, approval_decide
from runs.services.runs import run_cancel, run_create, runs_reap
from runs.tasks import execute_run
from runs.worker import run_execute
from tests.agents import WINDOW_MODEL
from tests.conftest import WorkerProcess
from tests.runs.engine.test_runner import ManualClock
from tests.runs.run_rows import wait_for

pytestmark = pytest.mark.integration
SPEND = "max_cost_usd"
WAITING = {"awaiting_approval"}


@pytest.fixture
def asking(transactional_db):
    """test-spend asks at its caps, with a $0.01 ceiling on spend; one call costs ~$0.002."""
    ModelPrice.objects.create(model=WINDOW_MODEL, input_per_mtok=1, output_per_mtok=40)
    caps.cap_policy_set(
        scope="test-spend",
        values={"on_cap": "ask", "approval_timeout_seconds": 30, "max_extension": {SPEND: "0.01"}},
    )


def spender() -> Run:
    # The first call costs $0.002011; the second does not fit the $0.0001 left.
    return run_create(agent="test-spend", input={"calls": 2}, caps={SPEND: "0.0021"})


def answer(client, user, run, body):
    client.force_login(user)
    return client.post(
        f"/api/v1/runs/{run.id}/approval", json.dumps(body), content_type="application/json"
    )


def test_an_extension_lets_the_held_model_call_go_on(celery_worker, asking, client, make_user):
    run = wait_for(spender().id, WAITING)
    question = Approval.objects.get(run=run)
    assert question.kind == "cap" and question.subject == SPEND
    assert question.request["call"] == "model_call" and question.request["used"] == "0.002011"
    support = make_user("support")
    assert answer(client, support, run, {"decision": "stop"}).status_code == 403
    engineer = make_user("engineer")
    response = answer(client, engineer, run, {"decision": "extend", "caps": {SPEND: 0.01}})
    assert response.status_code == 200, response.content
    run = wait_for(run.id)
    assert run.status == "succeeded", run.error
    assert run.model_calls == 2 and run.caps[SPEND] == "0.01"
    wait = run.events.get(kind="lifecycle", name="awaiting_approval")
    assert wait.status == "ok" and wait.output["by"] == f"user:{engineer.username}"
    assert wait.output["caps"] == {SPEND: "0.01"}
    assert run.events.filter(kind="model_call", status="ok").count() == 2


def test_stop_ends_the_run_budget_exceeded(celery_worker, asking, client, make_user):
    run = wait_for(spender().id, WAITING)
    assert answer(client, make_user("engineer"), run, {"decision": "stop"}).status_code == 200
    run = wait_for(run.id)
    assert run.status == "budget_exceeded" and run.cap_hit == SPEND
    assert run.model_calls == 1
    assert run.events.get(kind="lifecycle", name="awaiting_approval").status == "error"


def test_nobody_answering_ends_the_run_at_the_timeout_without_holding_a_connection(
    asking, no_enqueue
):
    # Executed here, by the worker's code, on a clock the test moves (no worker is told).
    clock = ManualClock()
    looks = []

    def sleep(seconds):
        looks.append(connection.connection is None)  # no connection held between looks
        clock.advance(seconds)

    run = spender()
    run_execute(run_id=run.id, worker="here", clock=clock, sleep=sleep)
    run = Run.objects.get(id=run.id)
    assert run.status == "budget_exceeded" and run.cap_hit == SPEND
    assert len(looks) == 30 and all(looks)
    assert Approval.objects.get(run=run).decision == "timeout"
    wait = run.events.get(kind="lifecycle", name="awaiting_approval")
    assert wait.status == "timeout" and wait.output["waited_s"] == 30
    assert run.wall_ms < 30_000  # the wait is not on the wall clock


def refund_run(tmp_path: Path) -> tuple[Run, Path]:
    ledger = tmp_path / f"refunds-{uuid.uuid4().hex[:6]}.txt"
    return run_create(agent="test-refund", input={"path": str(ledger)}), ledger


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_tool_that_requires_approval_runs_only_once_approved(
    celery_worker, transactional_db, tmp_path, make_user, decision
):
    run, ledger = refund_run(tmp_path)
    run = wait_for(run.id, WAITING)
    step = run.events.get(kind="lifecycle", name="awaiting_approval")
    assert step.status == "running" and step.input["args"]["amount"] == 5
    assert not ledger.exists()
    engineer = make_user("engineer")
    approval_decide(run=run, decision=decision, decided_by=engineer)
    run = wait_for(run.id)
    assert run.status == "succeeded"
    if decision == "approve":
        assert run.output == {"refund": {"refunded": 5}}
        assert ledger.read_text() == "5\n"
    else:
        denied = {"error": "tool_denied", "tool": "test_refund", "by": f"user:{engineer}"}
        assert run.output == {"refund": denied} and not ledger.exists()
    wait = run.events.get(kind="lifecycle", name="awaiting_approval")
    assert wait.output["decision"] == decision
    assert wait.parent_id == run.events.get(kind="tool_call").id


def test_a_tool_nobody_approves_is_denied_at_the_timeout(transactional_db, tmp_path, no_enqueue):
    caps.cap_policy_set(scope="test-refund", values={"approval_timeout_seconds": 5})
    run, ledger = refund_run(tmp_path)
    clock = ManualClock()
    run_execute(run_id=run.id, worker="here", clock=clock, sleep=clock.advance)
    run = Run.objects.get(id=run.id)
    assert run.output["refund"] == {"error": "tool_denied", "tool": "test_refund", "by": "timeout"}
    assert not ledger.exists()
    assert run.events.get(kind="lifecycle", name="awaiting_approval").status == "timeout"


def test_a_worker_killed_while_a_run_waits_never_runs_the_held_call(
    transactional_db, tmp_path, make_user, no_enqueue
):
    queue = f"victim-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(tmp_path / "victim.log", queue=queue).start()
    ledger = tmp_path / "refunds.txt"
    try:
        run = Run.objects.get(id=run_create(agent="test-refund", input={"path": str(ledger)}).id)
        # Sent to the victim's own queue only, so this session's worker cannot take it.
        execute_run.apply_async(args=[str(run.id)], queue=queue)
        run = wait_for(run.id, WAITING)
    finally:
        worker.stop(sig=9)  # SIGKILL while it waits: no shutdown, no ack
    assert Run.objects.get(id=run.id).status == "awaiting_approval"
    # Someone approves while no worker holds the run; then the task comes back.
    approval_decide(run=run, decision="approve", decided_by=make_user("engineer"))
    Run.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    run_execute(run_id=run.id, worker="redelivered")
    assert runs_reap() == 0  # already ended
    run = Run.objects.get(id=run.id)
    assert run.status == "lost" and run.error["code"] == "worker_lost"
    assert not ledger.exists(), "the held call ran"
    question = Approval.objects.get(run=run)
    assert question.closed_at is not None
    assert not run.events.filter(status="running").exists()


def test_a_cancel_reaches_a_waiting_run(celery_worker, asking):
    run = wait_for(spender().id, WAITING)
    run_cancel(run=run)
    run = wait_for(run.id)
    assert run.status == "cancelled" and run.error["code"] == "cancelled"
    assert Approval.objects.get(run=run).decision == "cancelled"
    assert run.events.get(kind="lifecycle", name="awaiting_approval").status == "cancelled"


def test_the_reaper_ends_a_waiting_run_whose_worker_stopped(transactional_db, no_enqueue):
    run, _ = refund_run(Path("/nonexistent"))
    stale = timezone.now() - timezone.timedelta(hours=1)
    Run.objects.filter(id=run.id).update(status="running", heartbeat_at=stale, attempt=1)
    DbApprovals(run_id=run.id).ask(kind="tool", subject="test_refund", request={})
    assert runs_reap() == 1
    run = Run.objects.get(id=run.id)
    assert run.status == "lost" and run.error["code"] == "worker_lost"
    question = Approval.objects.get(run=run)
    assert question.decision == "lost" and question.closed_at is not None
