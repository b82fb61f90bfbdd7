"""What a worker does per run, held to its few statements, and what keeps a thousand runs in one
process from failing each other: the claim is one statement, the heartbeat never waits for a row
another transaction holds, and a run waits for a pooled connection instead of failing."""

import threading
import time

import pytest
from django.db import OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext

from runs.engine.caps import Caps
from runs.models import Run
from runs.services.keys import api_key_create
from runs.services.recording import DbRecorder
from runs.services.runs import run_claim_queued, run_scopes, runs_heartbeat
from runs.worker import wait_for_connections

pytestmark = pytest.mark.django_db(transaction=True)
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's row locks and connection pool"
)


def queued(**fields) -> Run:
    fields.setdefault("status", "queued")
    return Run.objects.create(
        agent="test-steps", input={"steps": 1}, caps=Caps().to_dict(), **fields
    )


def test_a_queued_run_is_claimed_in_one_statement_with_what_its_start_needs():
    key, _ = api_key_create(name="billing", scopes=["runs:write"])
    run = queued(api_key=key, user_ref="u-7")
    with CaptureQueriesContext(connection) as queries:
        claimed = run_claim_queued(run_id=run.id, worker="w/1")
        scopes = run_scopes(claimed)
        recorder = DbRecorder(claimed, threading.Event())
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert claimed.status == "running" and claimed.worker == "w/1" and claimed.attempt == 1
    assert claimed.started_at == claimed.heartbeat_at is not None
    assert claimed.input == {"steps": 1} and claimed.caps == Caps().to_dict()
    assert scopes == ["global", "agent:test-steps", "user:u-7", f"key:{key.prefix}"]
    assert recorder._next_seq == 0
    stored = Run.objects.get(id=run.id)
    assert (stored.status, stored.worker, stored.started_at) == (
        "running",
        "w/1",
        claimed.started_at,
    )


def test_a_run_without_a_key_or_not_queued_is_told_apart():
    run = queued()
    claimed = run_claim_queued(run_id=run.id, worker="w/1")
    assert run_scopes(claimed) == ["global", "agent:test-steps"]
    # Taken once only: a second delivery finds it running.
    assert run_claim_queued(run_id=run.id, worker="w/2") is None
    assert Run.objects.get(id=run.id).worker == "w/1"


@postgres_only
def test_the_heartbeat_skips_a_run_whose_row_another_transaction_holds():
    held, free = queued(status="running"), queued(status="running")
    Run.objects.filter(id__in=[held.id, free.id]).update(heartbeat_at=None)
    locked, release = threading.Event(), threading.Event()

    def hold():  # a batch writing the run's counters, say
        with connections["default"].cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT 1 FROM runs_run WHERE id = %s FOR UPDATE", [held.id])
            locked.set()
            release.wait(10)
            cursor.execute("ROLLBACK")
        connections["default"].close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:  # waiting on the row would fail, not hang
            cursor.execute("SET lock_timeout = '1s'")
        try:
            runs_heartbeat([held.id, free.id])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        holder.join()
    beats = dict(Run.objects.filter(id__in=[held.id, free.id]).values_list("id", "heartbeat_at"))
    assert beats[free.id] is not None and beats[held.id] is None


@postgres_only
def test_a_worker_waits_for_a_pooled_connection_longer_than_a_request_does():
    db = connections["default"]
    options = db.settings_dict["OPTIONS"]["pool"]
    default_wait, max_size = db.pool.timeout, options["max_size"]
    connection.close()
    db.close_pool()
    options["max_size"] = 1  # the pool made again on first use has one connection
    taken, release = threading.Event(), threading.Event()

    def hold():  # another run's transaction holding the process's only connection
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            taken.set()
            release.wait(10)
        connections["default"].close()

    def query():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]

    holder = threading.Thread(target=hold)
    try:
        holder.start()
        assert taken.wait(10)
        threading.Timer(default_wait + 1, release.set).start()
        with pytest.raises(OperationalError):  # a request's wait: it answers 503
            query()
        connection.close()
        holder.join()
        taken.clear()
        release.clear()
        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(10)
        wait_for_connections(default_wait + 10)
        started = time.monotonic()
        threading.Timer(default_wait + 1, release.set).start()
        assert query() == 1  # a worker's wait: the run goes on once the connection is back
        assert time.monotonic() - started >= default_wait
    finally:
        release.set()
        holder.join()
        connection.close()
        wait_for_connections(default_wait)
        options["max_size"] = max_size
        db.close_pool()
