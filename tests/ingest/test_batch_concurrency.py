"""The ingest door under concurrent senders and with the database gone: committed rows only,
exact counts, 503 instead of a 500 page."""

import random
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections
from django.test import Client

from runs.models import Event, Run
from runs.services import ingest_steps
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


@pytest.mark.django_db
def test_a_step_id_of_another_run_is_rejected_alone(client, ingest_key):
    first, second = uuid.uuid4(), uuid.uuid4()
    taken = event_item(first, name="first's", input={"q": 1})
    first_body = {"runs": [run_item(first)], "events": [taken]}
    assert post_json(client, URL, first_body, ingest_key).status_code == 200
    steps = [event_item(second, name=f"s{i}", started_at=at(i)) for i in range(10)]
    steps.insert(4, {**taken, "run_id": str(second), "name": "second's", "input": {"q": 2}})

    response = post_json(client, URL, {"runs": [run_item(second)], "events": steps}, ingest_key)

    assert response.status_code == 207, response.content
    assert response.json()["accepted"] == {"runs": 1, "events": 10}
    assert response.json()["rejected"] == [
        {
            "type": "event",
            "index": 4,
            "id": taken["id"],
            "reason": "this id is a step of another run",
        }
    ]
    stored = Event.objects.get(id=taken["id"])
    assert (stored.run_id, stored.name, stored.input) == (first, "first's", {"q": 1})
    assert [e.seq for e in Event.objects.filter(run_id=second).order_by("seq")] == list(range(10))


@pytest.mark.django_db
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="new steps are copied straight in on PostgreSQL"
)
def test_a_step_id_stored_by_another_batch_after_it_was_read_is_read_again(
    client, ingest_key, monkeypatch
):
    # A batch copies steps it read as new straight into the table. Another batch storing one of
    # their ids in between (read here as not stored, once) makes the copy fail on the id; the
    # batch is then read again, whole, and that step found as another run's.
    first, second = uuid.uuid4(), uuid.uuid4()
    taken = event_item(first, name="first's", kind="tool_call")
    first_body = {"runs": [run_item(first)], "events": [taken]}
    assert post_json(client, URL, first_body, ingest_key).status_code == 200
    reads, original = [], ingest_steps._stored_ids_from

    def missing_the_taken_id_once(found):
        stored, last = original(found)
        reads.append(list(stored))
        return (stored if len(reads) > 1 else [], last)

    monkeypatch.setattr(ingest_steps, "_stored_ids_from", missing_the_taken_id_once)
    steps = [event_item(second, kind="tool_call", started_at=at(i)) for i in range(10)]
    steps.append({**taken, "run_id": str(second), "name": "second's"})

    response = post_json(client, URL, {"runs": [run_item(second)], "events": steps}, ingest_key)

    assert response.status_code == 207, response.content
    assert [r["id"] for r in response.json()["rejected"]] == [taken["id"]]
    assert reads == [[uuid.UUID(taken["id"])]] * 2  # read as new, copied, refused, read again
    assert Event.objects.get(id=taken["id"]).name == "first's"
    assert [e.seq for e in Event.objects.filter(run_id=second).order_by("seq")] == list(range(10))
    assert Run.objects.get(id=second).tool_calls == 10
    assert Run.objects.get(id=first).tool_calls == 1
