"""The ingest door under concurrent senders and with the database gone: committed rows only,
exact counts, 503 instead of a 500 page."""

import random
import threading
import uuid
from collections import Counter

from django.db import connections
from django.test import Client

from runs.models import Event, Run
from tests.ingest.conftest import database_down, post_json
from tests.ingest.test_batch_api import at, event_item, run_item

URL = "/api/v1/ingest"


def test_eight_threads_sending_overlapping_batches_store_each_step_once(
    transactional_db, ingest_key
):
    runs = [uuid.uuid4() for _ in range(4)]
    steps = [
        event_item(
            run_id,
            kind=("tool_call", "model_call", "log")[i % 3],
            name=f"{n}-{i}",
            started_at=at(i),
            input_tokens=10,
            output_tokens=1,
        )
        for n, run_id in enumerate(runs)
        for i in range(60)
    ]
    for step in steps:
        if step["kind"] != "model_call":
            step.pop("input_tokens"), step.pop("output_tokens")
    errors, codes = [], Counter()

    def sender(seed: int):
        rng = random.Random(seed)
        client = Client()
        try:
            # Every thread sends every step, in its own order and batch cuts, each batch with
            # the runs its steps need: all of them overlap with all the others.
            order = steps[:]
            rng.shuffle(order)
            while order:
                size = rng.randint(5, 40)
                batch, order = order[:size], order[size:]
                needed = {e["run_id"] for e in batch}
                body = {"runs": [run_item(r) for r in needed], "events": batch}
                response = post_json(client, URL, body, ingest_key)
                codes[response.status_code] += 1
                if response.status_code != 200:
                    errors.append(response.content)
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors[:3]
    assert set(codes) == {200}
    assert Event.objects.count() == len(steps)
    assert Run.objects.filter(source="external").count() == 4
    for n, run_id in enumerate(runs):
        stored = list(Event.objects.filter(run_id=run_id).order_by("seq"))
        assert [e.seq for e in stored] == list(range(60))  # unique and gapless
        assert sorted(e.name for e in stored) == sorted(f"{n}-{i}" for i in range(60))
        run = Run.objects.get(id=run_id)
        assert (run.tool_calls, run.model_calls) == (20, 20)
        assert (run.input_tokens, run.output_tokens) == (200, 20)


def test_database_down_is_answered_503_and_nothing_is_half_written(transactional_db, ingest_key):
    run_id = uuid.uuid4()
    body = {"runs": [run_item(run_id)], "events": [event_item(run_id) for _ in range(3)]}
    client = Client()

    with database_down():
        response = post_json(client, URL, body, ingest_key)
        health = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == "2"
    assert health.status_code == 503 and health.json()["database"]["ok"] is False
    assert not Run.objects.filter(id=run_id).exists()
    # Back up: the same batch goes through.
    assert post_json(client, URL, body, ingest_key).status_code == 200
    assert Event.objects.filter(run_id=run_id).count() == 3
