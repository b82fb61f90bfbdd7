"""A database restart does not strand a run: a pooled connection it closed is replaced before
use, a connection error before the claim is retried once, and a run whose execution failed
before it was claimed stays queued and is sent again by the outbox."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from runs.engine.caps import Caps
from runs.models import Run
from runs.services import runs as run_writes
from runs.services.runs import REDISPATCH_AFTER, runs_redispatch
from runs.worker import run_execute

pytestmark = pytest.mark.django_db(transaction=True)


def queued(**fields) -> Run:
    return Run.objects.create(
        agent="test-steps", input={"steps": 2}, status="queued", caps=Caps().to_dict(),
        dispatched_at=timezone.now(), dispatches=1, **fields,
    )  # fmt: skip


def failing_first(monkeypatch, times: int):
    real, calls = run_writes.run_claim_queued, {"n": 0}

    def claim(**kwargs):
        calls["n"] += 1
        if calls["n"] <= times:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr("runs.worker.run_claim_queued", claim)
    return calls


def test_a_connection_error_before_the_claim_is_retried_once(monkeypatch):
    run = queued()
    calls = failing_first(monkeypatch, times=1)
    run_execute(run_id=run.id, worker="w")
    run.refresh_from_db()
    assert calls["n"] == 2 and run.status == "succeeded" and run.attempt == 1


def test_a_run_that_failed_before_its_claim_is_sent_again_by_the_outbox(monkeypatch):
    run = queued()
    failing_first(monkeypatch, times=2)
    with pytest.raises(OperationalError):
        run_execute(run_id=run.id, worker="w")
    run.refresh_from_db()
    assert run.status == "queued"  # not claimed, not lost
    sent = []
    monkeypatch.setattr(run_writes, "_send", sent.append)
    later = timezone.now() + REDISPATCH_AFTER + timedelta(seconds=1)
    assert runs_redispatch(now=later) == 1 and sent == [run.id]
    monkeypatch.undo()
    run_execute(run_id=run.id, worker="w")
    assert Run.objects.get(id=run.id).status == "succeeded"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connection pool")
def test_a_pooled_connection_closed_by_the_server_is_replaced():
    import psycopg

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    connection.close()  # back to the pool, as the worker does between steps
    s = connection.settings_dict
    with psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None,
        port=s["PORT"] or None, autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with connection.cursor() as cursor:  # as after a PostgreSQL restart
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
