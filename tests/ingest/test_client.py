"""ingest/client.py against a real HTTP server: batching, steps that start and end, retries
while the server or its database is down (nothing lost), drops counted, exit flushes."""

import logging
import subprocess
import sys
import time
import uuid

import pytest

from ingest.client import Client, uuid7
from runs.models import Event, Run
from tests.conftest import ROOT, subprocess_env
from tests.ingest.conftest import database_down

pytestmark = pytest.mark.django_db(transaction=True)


def fast_client(url, key, **options) -> Client:
    settings = {"flush_interval": 0.05, "retry_initial": 0.05, "retry_max": 0.3, "timeout": 5}
    return Client(url, key, **{**settings, **options})


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_run_with_steps_arrives_with_nesting_and_usage(app_server, ingest_key):
    client = fast_client(app_server.start().url, ingest_key)

    with client.run(agent="remote-bot", input={"question": "where?"}, user_ref="cust-7") as run:
        with run.step("model_call", name="gpt-4o", model="gpt-4o", input=[{"q": 1}]) as chat:
            with run.step("tool_call", name="lookup_order", input={"order": 7}) as tool:
                tool.end(output={"status": "shipped"})
            chat.end(output="It shipped.", input_tokens=120, output_tokens=30)
        run.event("decision", name="escalate", output={"choice": "no"})
        run.output = {"answer": "It shipped."}
    assert client.flush(timeout=20)

    stored = Run.objects.get(id=run.id)
    assert (stored.status, stored.agent, stored.user_ref) == ("succeeded", "remote-bot", "cust-7")
    assert stored.output == {"answer": "It shipped."}
    assert (stored.model_calls, stored.tool_calls, stored.input_tokens) == (1, 1, 120)
    steps = {e.name: e for e in Event.objects.filter(run_id=run.id)}
    assert steps["gpt-4o"].status == "ok" and steps["gpt-4o"].output == "It shipped."
    assert steps["lookup_order"].parent_id == steps["gpt-4o"].id
    assert steps["escalate"].parent_id is None
    assert [steps[n].seq for n in ("gpt-4o", "lookup_order", "escalate")] == [0, 1, 2]
    assert client.stats["dropped"] == 0 and client.stats["rejected"] == 0
    client.close()


def test_a_step_is_visible_while_it_runs(app_server, ingest_key):
    client = fast_client(app_server.start().url, ingest_key)
    with client.run(agent="remote-bot") as run:
        with run.step("tool_call", name="slow_tool") as step:
            assert client.flush(timeout=20)
            assert Event.objects.get(id=step.id).status == "running"
    assert client.flush(timeout=20)
    assert Event.objects.get(id=step.id).status == "ok"
    client.close()


def test_an_agent_error_is_recorded_and_still_raised(app_server, ingest_key):
    client = fast_client(app_server.start().url, ingest_key)

    with pytest.raises(KeyError):
        with client.run(agent="remote-bot") as run:
            with run.step("tool_call", name="explodes"):
                raise KeyError("order 7")
    assert client.flush(timeout=20)

    stored = Run.objects.get(id=run.id)
    assert stored.status == "failed" and stored.error_code == "agent_error"
    assert stored.error["type"] == "KeyError"
    step = Event.objects.get(run_id=run.id)
    assert step.status == "error" and step.error["type"] == "KeyError"
    client.close()


def test_it_retries_until_the_server_is_up_and_loses_nothing(app_server, ingest_key):
    client = fast_client(app_server.url, ingest_key, batch_size=10)  # not started yet

    with client.run(agent="patient-bot") as run:
        ids = [run.event("log", name=f"s{i}") for i in range(35)]
    assert wait_for(lambda: client.stats["retries"] >= 3)
    assert not Run.objects.filter(id=run.id).exists()

    app_server.start()
    assert client.flush(timeout=30)

    assert set(Event.objects.filter(run_id=run.id).values_list("id", flat=True)) == {
        uuid.UUID(i) for i in ids
    }
    assert Run.objects.get(id=run.id).status == "succeeded"
    assert client.stats["dropped"] == 0 and client.stats["sent"] == 37
    client.close()


def test_it_retries_through_a_database_outage_and_loses_nothing(app_server, ingest_key):
    client = fast_client(app_server.start().url, ingest_key)
    with database_down():
        with client.run(agent="patient-bot") as run:
            ids = [run.event("tool_call", name=f"t{i}") for i in range(20)]
        # The server answers 503 meanwhile; the client keeps the batch and tries again.
        assert wait_for(lambda: client.stats["retries"] >= 3)
        assert client.stats["sent"] == 0

    assert client.flush(timeout=30)
    assert Event.objects.filter(run_id=run.id).count() == len(ids) == 20
    assert Run.objects.get(id=run.id).tool_calls == 20
    assert client.stats["dropped"] == 0
    client.close()


def test_a_full_queue_drops_counts_and_logs_but_never_blocks(app_server, ingest_key, caplog):
    client = fast_client(app_server.url, ingest_key, max_queue=20, batch_size=5)
    caplog.set_level(logging.WARNING, logger="agentops.client")

    started = time.monotonic()
    run_id = str(uuid.uuid4())
    for i in range(200):
        client.event(run_id, "log", name=f"s{i}")
    elapsed = time.monotonic() - started

    assert elapsed < 10  # a blocking send would wait on the server for each of 200 calls
    # At most the queue and the batch in the sender's hands were kept.
    assert 200 - 20 - 5 <= client.stats["dropped"] <= 200 - 20
    assert "dropped" in caplog.text and "queue is full" in caplog.text
    client.close(timeout=0.3)  # unreachable: gives up, counts the rest
    assert client.stats["dropped"] == 200
    assert "still unsent" in caplog.text or "dropped" in caplog.text


def test_what_the_server_rejects_is_counted_and_logged(app_server, ingest_key, caplog):
    client = fast_client(app_server.start().url, ingest_key)
    caplog.set_level(logging.WARNING, logger="agentops.client")
    with client.run(agent="remote-bot") as run:
        run.event("telepathy", name="not a kind")
        run.event("log", name="fine", input={"obj": object()})  # sent as its str()
        run.event("log", name="loop", input=(loop := {}))
        loop["self"] = loop  # cannot be JSON at all: dropped
    assert client.flush(timeout=20)

    assert client.stats["rejected"] == 1 and client.stats["dropped"] == 1
    assert "kind" in caplog.text
    assert list(Event.objects.filter(run_id=run.id).values_list("name", flat=True)) == ["fine"]
    client.close()


def test_a_wrong_key_drops_batches_instead_of_retrying_forever(app_server, caplog):
    client = fast_client(app_server.start().url, "ao_not-a-key")
    caplog.set_level(logging.WARNING, logger="agentops.client")
    client.event(str(uuid.uuid4()), "log")
    assert client.flush(timeout=20)
    assert client.stats["dropped"] == 1 and client.stats["retries"] == 0
    assert "401" in caplog.text
    client.close()


def test_calls_after_close_never_raise(app_server, ingest_key):
    client = fast_client(app_server.start().url, ingest_key)
    client.close()
    with client.run(agent="late") as run:
        run.event("log")
    assert client.stats["dropped"] == 3


def test_the_queue_is_flushed_when_the_program_exits(app_server, ingest_key):
    app_server.start()
    run_id = uuid7()
    script = (
        "from ingest.client import Client\n"
        f"c = Client({app_server.url!r}, {ingest_key!r}, flush_interval=5)\n"
        f"with c.run(agent='exiting-bot', id={run_id!r}) as run:\n"
        "    for i in range(25):\n"
        "        run.event('log', name=str(i))\n"
        "print('exiting without close')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), timeout=60,
        capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert Event.objects.filter(run_id=run_id).count() == 25
    assert Run.objects.get(id=run_id).status == "succeeded"


def test_a_finished_step_without_times_never_ends_before_it_starts(monkeypatch):
    # Each clock reading later than the last, as on a real clock between two calls.
    ticks = iter(f"2026-01-01T00:00:{second:02d}+00:00" for second in range(60))
    monkeypatch.setattr("ingest.client.now", lambda: next(ticks))
    client = Client("http://127.0.0.1:9", "ao_unused")
    sent = []
    monkeypatch.setattr(client, "_put", lambda kind, item: sent.append(item))
    with client.run(agent="remote-bot") as run:
        run.event("decision", name="escalate")
        run.event("tool_call", name="late", ended_at="2026-01-01T00:00:30+00:00")
    steps = [item for item in sent if item.get("kind")]
    assert [(s["started_at"] <= s["ended_at"]) for s in steps] == [True, True]
    client.close(timeout=0)


def test_uuid7_ids_are_valid_and_time_ordered():
    first, second = uuid7(), (time.sleep(0.002), uuid7())[1]
    assert uuid.UUID(first).version == 7 and uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second
