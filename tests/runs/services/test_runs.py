"""Writes to runs executed here (runs.services.runs): the dispatch outbox. A run is committed
`queued` and sent to the broker after; a send that fails or a message that is lost leaves the
run queued, and `runs_redispatch` sends it again, once per backoff period."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from runs.services import runs as run_writes
from runs.services.runs import REDISPATCH_AFTER, UNSENT_GRACE, run_create, runs_redispatch

pytestmark = pytest.mark.django_db(transaction=True)


class Broker:
    """Stands in for the broker's publish: records what it took, or refuses while `down`."""

    def __init__(self):
        self.taken: list[str] = []
        self.down = False

    def send(self, run_id) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.taken.append(str(run_id))


@pytest.fixture
def broker(monkeypatch):
    fake = Broker()
    monkeypatch.setattr(run_writes, "_send", fake.send)
    return fake


def new_run() -> Run:
    return run_create(agent="demo-support", input={"question": "Where is A-1001?"})


def test_a_run_is_sent_after_its_commit_and_the_send_is_noted(broker):
    run = new_run()
    assert broker.taken == [str(run.id)]
    run.refresh_from_db()
    assert run.status == "queued" and run.dispatches == 1 and run.dispatched_at is not None


def test_a_refused_send_keeps_the_run_queued_and_unsent_without_raising(broker):
    broker.down = True
    run = new_run()
    run.refresh_from_db()
    assert run.status == "queued" and run.dispatched_at is None and run.dispatches == 0


def test_an_unsent_run_is_sent_once_the_broker_is_back(broker):
    broker.down = True
    run = new_run()
    broker.down = False
    # Within the grace period the send after commit may still be under way: left alone.
    assert runs_redispatch() == 0 and broker.taken == []
    later = timezone.now() + UNSENT_GRACE + timedelta(seconds=1)
    assert runs_redispatch(now=later) == 1
    assert broker.taken == [str(run.id)]
    run.refresh_from_db()
    assert run.dispatches == 1 and run.dispatched_at == later
    # Sent: the next pass leaves it to the worker.
    assert runs_redispatch(now=later + timedelta(seconds=1)) == 0


def test_a_message_not_taken_is_sent_again_with_a_doubling_wait(broker):
    run = new_run()
    first = Run.objects.get(id=run.id).dispatched_at
    assert runs_redispatch(now=first + REDISPATCH_AFTER - timedelta(seconds=1)) == 0
    second = first + REDISPATCH_AFTER
    assert runs_redispatch(now=second) == 1
    # The second send waits twice as long before a third.
    assert runs_redispatch(now=second + REDISPATCH_AFTER) == 0
    assert runs_redispatch(now=second + 2 * REDISPATCH_AFTER) == 1
    assert broker.taken == [str(run.id)] * 3
    assert Run.objects.get(id=run.id).dispatches == 3


def test_a_pass_stops_at_the_first_refused_send_and_keeps_the_rest_for_later(broker):
    broker.down = True
    runs = [new_run() for _ in range(3)]
    later = timezone.now() + UNSENT_GRACE + timedelta(seconds=1)
    assert runs_redispatch(now=later) == 0
    assert broker.taken == []
    assert all(r.dispatched_at is None for r in Run.objects.filter(id__in=[r.id for r in runs]))
    broker.down = False
    assert runs_redispatch(now=later) == 3


def test_only_queued_runs_are_sent_again(broker):
    broker.down = True
    running, cancelled = new_run(), new_run()
    Run.objects.filter(id=running.id).update(status="running")
    Run.objects.filter(id=cancelled.id).update(status="cancelled")
    broker.down = False
    assert runs_redispatch(now=timezone.now() + timedelta(hours=2)) == 0
    assert broker.taken == []


def test_the_api_answers_202_while_the_broker_is_down(broker, client):
    from runs.services.keys import api_key_create

    broker.down = True
    _, secret = api_key_create(name="t", scopes=["runs:write"])
    response = client.post(
        "/api/v1/runs",
        {"agent": "demo-support", "input": {"question": "Where is A-1001?"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 202, response.content
    run = Run.objects.get(id=response.json()["id"])
    assert run.status == "queued" and run.dispatched_at is None
