"""POST /api/v1/ingest: per-item validation, idempotency, merging re-sent items, counters,
cost, masking and storable text. Limits, auth and the body format: test_batch_limits.py."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Event, ModelPrice, Run
from tests.ingest.conftest import post_json

URL = "/api/v1/ingest"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def run_item(run_id, **fields):
    return {"id": str(run_id), "agent": "remote-bot", "started_at": at(0), **fields}


def event_item(run_id, event_id=None, **fields):
    item = {"id": str(event_id or uuid.uuid4()), "run_id": str(run_id), "kind": "log"}
    item.update(fields)
    return item


def steps_of(run_id):
    return list(Event.objects.filter(run_id=run_id).order_by("seq"))


def test_a_valid_batch_is_stored_and_answered_200(client, ingest_key):
    run_id = uuid.uuid4()
    events = [
        event_item(
            run_id,
            kind="model_call",
            name="gpt-4o",
            model="gpt-4o",
            started_at=at(1),
            ended_at=at(2),
            input_tokens=100,
            output_tokens=20,
            cost_usd="0.0125",
        ),
        event_item(
            run_id,
            kind="tool_call",
            name="lookup_order",
            started_at=at(3),
            ended_at=at(3.5),
            input={"order": 7},
            output={"status": "shipped"},
        ),
    ]
    body = {"runs": [run_item(run_id, status="succeeded", finished_at=at(4))], "events": events}

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": {"runs": 1, "events": 2}, "rejected": []}
    run = Run.objects.get(id=run_id)
    assert (run.source, run.agent, run.status) == ("external", "remote-bot", "succeeded")
    steps = steps_of(run_id)
    assert [(s.seq, s.kind, s.name) for s in steps] == [
        (0, "model_call", "gpt-4o"),
        (1, "tool_call", "lookup_order"),
    ]
    assert steps[1].output == {"status": "shipped"}
    assert steps[1].duration_ms == 500


def test_a_mixed_batch_stores_the_valid_items_and_lists_each_rejected_one(client, ingest_key):
    run_id, internal = uuid.uuid4(), Run.objects.create(agent="demo-support").id
    good = event_item(run_id, name="ok")
    body = {
        "runs": [run_item(run_id), {"id": "not-a-uuid", "agent": "x"}, run_item(internal)],
        "events": [
            good,
            event_item(run_id, kind="telepathy"),
            "not an object",
            event_item(uuid.uuid4()),  # a run nobody sent
            {**event_item(run_id), "colour": "blue"},
            event_item(internal),
        ],
    }

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 207
    data = response.json()
    assert data["accepted"] == {"runs": 1, "events": 1}
    rejected = {(r["type"], r["index"]): r for r in data["rejected"]}
    assert sorted(rejected) == [
        ("event", 1),
        ("event", 2),
        ("event", 3),
        ("event", 4),
        ("event", 5),
        ("run", 1),
        ("run", 2),
    ]
    assert rejected[("run", 1)]["id"] == "not-a-uuid"
    assert "id" in rejected[("run", 1)]["reason"]
    assert rejected[("run", 2)]["reason"] == "this id belongs to a run executed here"
    assert "kind" in rejected[("event", 1)]["reason"]
    assert rejected[("event", 2)]["id"] == ""
    assert "no external run" in rejected[("event", 3)]["reason"]
    assert "colour" in rejected[("event", 4)]["reason"]
    assert "no external run" in rejected[("event", 5)]["reason"]
    assert [s.id for s in steps_of(run_id)] == [uuid.UUID(good["id"])]
    assert not Event.objects.filter(run_id=internal).exists()
    assert Run.objects.get(id=internal).source == "internal"


def test_the_same_batch_sent_three_times_leaves_the_same_rows(client, ingest_key):
    run_id = uuid.uuid4()
    body = {
        "runs": [run_item(run_id)],
        "events": [event_item(run_id, name=f"s{i}", started_at=at(i)) for i in range(30)],
    }

    answers = [post_json(client, URL, body, ingest_key) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["accepted"] == {"runs": 1, "events": 30} for a in answers)
    steps = steps_of(run_id)
    assert [(s.seq, s.name) for s in steps] == [(i, f"s{i}") for i in range(30)]
    assert Run.objects.filter(id=run_id).count() == 1


def test_each_step_is_priced_at_the_price_in_effect_when_it_started(client, ingest_key):
    # Two changes within one day, and a retirement: each step gets the price of its own moment.
    for start, per_input, retired in ((-3600, 1, None), (600, 2, None), (1200, 4, 1800)):
        ModelPrice.objects.create(
            model="remote-llm",
            input_per_mtok=per_input,
            output_per_mtok=0,
            effective_from=T0 + timedelta(seconds=start),
            retired_at=T0 + timedelta(seconds=retired) if retired else None,
        )
    run_id = uuid.uuid4()
    moments = (300, 900, 1500, 2400)  # before the first change, after each, after the retirement
    events = [
        event_item(run_id, kind="model_call", model="remote-llm", started_at=at(t), seq=n,
                   input_tokens=1_000_000)
        for n, t in enumerate(moments)
    ]  # fmt: skip

    response = post_json(client, URL, {"runs": [run_item(run_id)], "events": events}, ingest_key)

    assert response.status_code == 200
    # At 2400 s the $4 price is retired: the $2 one, still unretired, is in effect again.
    assert [s.cost_usd for s in steps_of(run_id)] == [1, 2, 4, 2]
    assert Run.objects.get(id=run_id).cost_usd == 9


def test_a_running_step_is_completed_by_resending_its_id_with_its_end(client, ingest_key):
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    ModelPrice.objects.create(
        model="remote-llm",
        input_per_mtok=2,
        output_per_mtok=10,
        effective_from=T0 - timedelta(days=1),
    )
    start = event_item(
        run_id,
        step_id,
        kind="model_call",
        name="remote-llm",
        model="remote-llm",
        status="running",
        started_at=at(1),
        input={"prompt": "hi"},
    )
    post_json(client, URL, {"runs": [run_item(run_id)], "events": [start]}, ingest_key)
    assert steps_of(run_id)[0].status == "running"

    end = {
        "id": str(step_id),
        "run_id": str(run_id),
        "kind": "model_call",
        "ended_at": at(3),
        "output": {"text": "hello"},
        "input_tokens": 1000,
        "output_tokens": 100,
    }
    response = post_json(client, URL, {"events": [end]}, ingest_key)

    assert response.status_code == 200
    (step,) = steps_of(run_id)
    assert (step.status, step.seq, step.duration_ms) == ("ok", 0, 2000)
    assert step.input == {"prompt": "hi"}  # not sent again, kept
    assert step.output == {"text": "hello"}
    assert step.cost_usd == Decimal("0.003")  # 1000 × $2/M + 100 × $10/M
    run = Run.objects.get(id=run_id)
    assert (run.model_calls, run.input_tokens, run.output_tokens) == (1, 1000, 100)
    assert run.cost_usd == Decimal("0.003")

    # A late copy of the start (a client retry) does not reopen the step.
    post_json(client, URL, {"events": [start]}, ingest_key)
    assert steps_of(run_id)[0].status == "ok"


def test_a_step_started_and_ended_in_one_batch_is_stored_ended(client, ingest_key):
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    events = [
        event_item(
            run_id,
            step_id,
            kind="tool_call",
            name="search",
            status="running",
            started_at=at(1),
            input={"q": "x"},
        ),
        event_item(run_id, name="between", started_at=at(1.5)),
        event_item(
            run_id,
            step_id,
            kind="tool_call",
            name="search",
            status="ok",
            started_at=at(1),
            ended_at=at(2),
            input={"q": "x"},
            output=[1, 2],
        ),
    ]

    response = post_json(client, URL, {"runs": [run_item(run_id)], "events": events}, ingest_key)

    assert response.json()["accepted"] == {"runs": 1, "events": 3}
    steps = steps_of(run_id)
    assert [(s.name, s.status, s.output) for s in steps] == [
        ("search", "ok", [1, 2]),
        ("between", "ok", None),
    ]


def test_external_run_counters_follow_from_its_steps(client, ingest_key):
    run_id = uuid.uuid4()
    ModelPrice.objects.create(
        model="priced-model",
        input_per_mtok=3,
        output_per_mtok=15,
        effective_from=T0 - timedelta(days=1),
    )
    events = [
        event_item(
            run_id,
            kind="model_call",
            model="priced-model",
            input_tokens=2000,
            output_tokens=400,
            started_at=at(1),
            ended_at=at(2),
        ),  # priced: 0.012
        event_item(
            run_id,
            kind="model_call",
            model="priced-model",
            input_tokens=10,
            output_tokens=10,
            cost_usd="0.5",
            started_at=at(2),
        ),  # its own cost wins
        event_item(
            run_id,
            kind="model_call",
            model="unpriced-model",
            input_tokens=5,
            output_tokens=5,
            started_at=at(3),
        ),  # no price: no cost
        event_item(run_id, kind="tool_call", name="a", started_at=at(4)),
        event_item(run_id, kind="tool_call", name="b", started_at=at(5)),
        event_item(run_id, kind="log", started_at=at(6)),
    ]
    body = {
        "runs": [
            run_item(
                run_id,
                status="failed",
                error={"code": "agent_error", "message": "boom"},
                finished_at=at(10),
            )
        ],
        "events": events,
    }

    assert post_json(client, URL, body, ingest_key).status_code == 200

    run = Run.objects.get(id=run_id)
    assert (run.tool_calls, run.model_calls) == (2, 3)
    assert (run.input_tokens, run.output_tokens) == (2015, 415)
    assert run.cost_usd == Decimal("0.512")
    assert run.wall_ms == 10_000
    assert run.error_code == "agent_error"
    costs = [s.cost_usd for s in steps_of(run_id)[:3]]
    assert costs == [Decimal("0.012"), Decimal("0.5"), None]

    # More steps later: the counters move with them.
    more = [event_item(run_id, kind="tool_call", name="c", started_at=at(7))]
    post_json(client, URL, {"events": more}, ingest_key)
    assert Run.objects.get(id=run_id).tool_calls == 3


def test_resending_a_run_changes_only_what_it_carries(client, ingest_key):
    run_id = uuid.uuid4()
    first = run_item(run_id, input={"question": "q"}, user_ref="cust-1", tags=["a"])
    post_json(client, URL, {"runs": [first]}, ingest_key)
    created_at = Run.objects.get(id=run_id).created_at

    end = {
        "id": str(run_id),
        "agent": "remote-bot",
        "status": "succeeded",
        "output": {"answer": 42},
    }
    assert post_json(client, URL, {"runs": [end]}, ingest_key).status_code == 200

    run = Run.objects.get(id=run_id)
    assert (run.status, run.output, run.input) == ("succeeded", {"answer": 42}, {"question": "q"})
    assert (run.user_ref, run.tags, run.created_at) == ("cust-1", ["a"], created_at)
    assert run.finished_at is not None


def test_secrets_in_prompts_and_tool_arguments_are_stored_masked(client, ingest_key):
    run_id = uuid.uuid4()
    key = "sk-proj-" + "A1b2C3d4" * 5
    events = [
        event_item(run_id, kind="model_call", input={"messages": [{"content": f"use {key}"}]}),
        event_item(run_id, kind="tool_call", input={"url": "https://x", "password": "hunter22"}),
    ]
    body = {"runs": [run_item(run_id, metadata={"api_key": "abc123"})], "events": events}

    assert post_json(client, URL, body, ingest_key).status_code == 200

    prompt, tool = steps_of(run_id)
    assert prompt.input == {"messages": [{"content": "use [masked:openai_key]"}]}
    assert tool.input == {"url": "https://x", "password": "[masked:field]"}
    assert Run.objects.get(id=run_id).metadata == {"api_key": "[masked:field]"}


def test_nul_characters_are_stored_as_replacement_characters(client, ingest_key):
    run_id = uuid.uuid4()
    events = [
        event_item(
            run_id,
            name="bin\u0000ary",
            input={"k\u0000": "a\u0000b", "n": [1.5]},
            attributes={"raw": "\u0000"},
        )
    ]
    body = {
        "runs": [run_item(run_id, input={"q": "x\u0000"}, user_ref="u\u0000")],
        "events": events,
    }

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 200, response.content
    (step,) = steps_of(run_id)
    assert step.name == "bin\ufffdary"
    assert step.input == {"k\ufffd": "a\ufffdb", "n": [1.5]}
    assert step.attributes == {"raw": "\ufffd"}
    run = Run.objects.get(id=run_id)
    assert (run.input, run.user_ref) == ({"q": "x\ufffd"}, "u\ufffd")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused_with_400(client, ingest_key, constant):
    run_id = uuid.uuid4()
    body = f'{{"runs": [{{"id": "{run_id}", "agent": "a", "input": {{"x": {constant}}}}}]}}'

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not Run.objects.filter(id=run_id).exists()


@pytest.mark.parametrize(
    "when, reason",
    [
        ("1969-12-31T23:59:59Z", "between"),
        ("3000-01-01T00:00:00Z", "between"),
        ("9999-12-31T23:59:59-12:00", "range"),
        ("0001-01-01T00:00:00+14:00", "range"),
    ],
)
def test_timestamps_out_of_range_reject_the_item(client, ingest_key, when, reason):
    run_id = uuid.uuid4()
    body = {"runs": [run_item(run_id)], "events": [event_item(run_id, started_at=when)]}

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 207
    assert reason in response.json()["rejected"][0]["reason"]


def test_an_empty_batch_is_invalid(client, ingest_key):
    response = post_json(client, URL, {"runs": [], "events": []}, ingest_key)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_batch_reads_its_runs_steps_and_prices_in_one_round_trip(client, ingest_key):
    """The lock on its runs, the runs, which steps are stored, each run's last seq and the
    prices travel as one request to PostgreSQL (elsewhere, one statement at a time)."""
    run_id = uuid.uuid4()
    post_json(client, URL, {"runs": [run_item(run_id)]}, ingest_key)
    steps = [
        event_item(run_id, kind="model_call", model="gpt-4o", input_tokens=10, output_tokens=2)
        for _ in range(10)
    ]

    with CaptureQueriesContext(connection) as queries:
        assert post_json(client, URL, {"events": steps}, ingest_key).status_code == 200

    assert len(steps_of(run_id)) == 10
    if connection.vendor == "postgresql":
        (read,) = [q["sql"] for q in queries if "pg_advisory_xact_lock" in q["sql"]]
        assert '"runs_run"' in read and "MAX(seq)" in read and '"runs_modelprice"' in read
