"""Webhooks sent by a real worker process through the real broker to a local HTTP endpoint: a
failed run is told, signed; a 500 is tried again until a 200, and nothing is sent after it; an
endpoint that holds its answer does not hold up runs. (The session's worker retries a fifth of
a second apart: tests/isolation.py.)"""

import time
from datetime import timedelta

import pytest

from runs.engine.webhooks import RUN_FAILED
from runs.models import WebhookDelivery
from runs.services.runs import run_create
from runs.services.webhooks import deliveries_sweep, delivery_attempt, webhook_create
from tests.runs.run_rows import wait_for
from tests.webhook_receiver import WebhookReceiver, verify

pytestmark = pytest.mark.integration
SECRET = "worker-test-secret-0123"


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def broken_run():
    return run_create(agent="demo-broken", input={"question": "Refund order A-1001"})


def wait_until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen")


def test_a_failed_run_is_told_and_a_500_is_tried_again_until_a_200(
    celery_worker, transactional_db, receiver
):
    receiver.statuses = [500]
    webhook_create(url=receiver.url, secret=SECRET, events=[RUN_FAILED])

    run = wait_for(broken_run().id)
    assert run.status == "failed"

    delivered = WebhookDelivery.objects.filter(status="delivered")
    wait_until(delivered.exists, "the delivery")
    delivery = delivered.get()
    assert (delivery.attempts, delivery.response_code) == (2, 200)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert verify(SECRET, request["headers"], request["body"])
        assert request["headers"]["X-Agentops-Delivery"] == str(delivery.id)
        assert request["json"]["run"]["id"] == str(run.id)
        assert request["json"]["run"]["status"] == "failed"
    # Delivered: no attempt and no sweep sends it again.
    assert not delivery_attempt(delivery_id=delivery.id).sent
    assert deliveries_sweep(grace=timedelta(0)) == 0
    assert len(receiver.requests) == 2


def test_an_endpoint_holding_its_answer_does_not_hold_up_runs(
    celery_worker, transactional_db, receiver
):
    receiver.release.clear()  # the endpoint takes the request and does not answer
    webhook_create(url=receiver.url, secret=SECRET, events=[RUN_FAILED])

    first = wait_for(broken_run().id)
    wait_until(receiver.arrived.is_set, "the first delivery")
    second = wait_for(broken_run().id)

    # Both runs ended while the endpoint still held the first delivery open.
    assert not receiver.release.is_set()
    assert (first.status, second.status) == ("failed", "failed")
    assert first.finished_at and second.finished_at

    receiver.release.set()
    delivered = WebhookDelivery.objects.filter(status="delivered")
    wait_until(lambda: delivered.count() == 2, "both deliveries")
