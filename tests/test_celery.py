import uuid

import pytest

from runs.tasks import ping


@pytest.mark.integration
def test_task_round_trip_through_the_real_broker_and_worker(celery_worker, transactional_db):
    token = uuid.uuid4().hex
    assert ping.delay(token).get(timeout=30) == f"pong:{token}"
