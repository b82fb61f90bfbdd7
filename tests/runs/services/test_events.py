"""runs.services.events.events_record, the one write path for steps, as ingest uses it: the
single-row path the runner takes and the bulk path (COPY on PostgreSQL) behave the same."""

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from runs.engine.masking import compile_patterns, mask
from runs.models import Event, Run
from runs.services import events

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def rows(run, count, **fields):
    return [
        {
            "id": uuid.uuid4(),
            "run_id": run.id,
            "seq": i,
            "kind": "log",
            "name": f"s{i}",
            "started_at": T0 + timedelta(seconds=i),
            **fields,
        }
        for i in range(count)
    ]


@pytest.fixture
def run():
    return Run.objects.create(agent="remote", source="external")


@pytest.mark.parametrize("count", [1, events.COPY_MIN_ROWS - 1, events.COPY_MIN_ROWS, 50])
def test_upsert_by_id_keeps_run_and_seq_of_the_first_write(run, count):
    other = Run.objects.create(agent="other", source="external")
    first = rows(run, count, status="running", input={"q": 1})
    assert events.events_record(events=first) == count

    again = [
        {
            **row,
            "run_id": other.id,
            "seq": row["seq"] + 1000,
            "status": "ok",
            "ended_at": T0 + timedelta(minutes=1),
            "output": {"a": row["seq"]},
        }
        for row in first
    ]
    assert events.events_record(events=again) == count

    stored = list(Event.objects.filter(run=run).order_by("seq"))
    assert [e.seq for e in stored] == list(range(count))
    assert all(e.status == "ok" and e.input == {"q": 1} for e in stored)
    assert [e.output for e in stored] == [{"a": i} for i in range(count)]
    assert not Event.objects.filter(run=other).exists()


@pytest.mark.parametrize(("count", "new"), [(1, False), (20, False), (20, True)])
def test_agent_text_is_masked_and_made_storable_on_both_paths(run, count, new):
    secret = "ghp_" + "a1B2c3D4e5" * 4
    batch = rows(
        run,
        count,
        name="n\u0000",
        model="m\u0000",
        input={"token": "t0ps3cret", "text": f"key {secret}", "k\u0000": "\u0000"},
        output={"ratio": math.nan, "big": math.inf, "list": [-math.inf, 1.0]},
        attributes={"a\\u0000": "backslash-u kept as text"},
    )

    events.events_record(events=batch, new=new)

    for event in Event.objects.filter(run=run):
        assert (event.name, event.model) == ("n\ufffd", "m\ufffd")
        assert event.input == {
            "token": "[masked:field]",
            "text": "key [masked:github_token]",
            "k\ufffd": "\ufffd",
        }
        assert event.output == {"ratio": "nan", "big": "inf", "list": ["-inf", 1.0]}
        assert event.attributes == {"a\\u0000": "backslash-u kept as text"}


@pytest.mark.parametrize("scan", [True, False])
def test_clean_steps_and_secret_holding_ones_in_one_batch_are_each_stored_as_mask_makes_them(
    run, scan, monkeypatch
):
    # On the COPY path the batch's texts are scanned at once and only suspects are walked
    # (`scan`, where hyperscan is installed); walked one by one otherwise: the same rows.
    patterns = compile_patterns(settings.AGENTOPS_SECRET_PATTERNS)
    if not scan:
        monkeypatch.setattr(patterns, "_words", None)
    values = [
        {"text": "the order shipped", "n": [1, 2.5, None, True], "empty": {}},
        {"db_pass-word": "hunter2", "note": "caf\u00e9 \U0001f600"},
        {"text": "key ghp_" + "a1B2c3D4e5" * 4, "plain": "no secret here"},
        {"quote": 'a "b" \\ c\nd\te', "unicode": "\u212a\u0130\u03a3\u2028"},
        ["Bearer abc1234567890abcdef", "postgres://app:pw@db/x"],
        "a plain string",
    ]
    batch = [
        {**row, "input": values[i % 6], "output": values[(i + 1) % 6], "error": {"m": "x"}}
        for i, row in enumerate(rows(run, 24))
    ]

    events.events_record(events=batch, new=True)

    for row in batch:
        stored = Event.objects.get(id=row["id"])
        assert stored.input == mask(row["input"], patterns)
        assert stored.output == mask(row["output"], patterns)
        assert stored.error == {"m": "x"}
    masked_fields = [e.input for e in Event.objects.filter(run=run) if "db_pass-word" in e.input]
    assert masked_fields == [{"db_pass-word": "[masked:field]", "note": "caf\u00e9 \U0001f600"}] * 4


@pytest.mark.parametrize(("count", "new"), [(1, False), (20, False), (20, True)])
def test_text_that_copy_would_read_as_its_own_syntax_is_stored_as_sent_on_both_paths(
    run, count, new
):
    """COPY's text format gives tabs, line breaks, backslashes and `\\N` a meaning of their own;
    the rows are written as that text, so each must arrive as sent."""
    hostile = 'a\tb\nc\rd\\e \\N \\t {"q": "x\\"y"} é 😀'
    batch = rows(
        run,
        count,
        name=hostile[:200],
        model="\\N",
        input={"text": hostile, "nested": [hostile, {"k\t": "\\"}], "n": None},
        output=hostile,
        error={"message": "\\N"},
        attributes={"big": 2**70, "small": 1e-7, "neg": -0.0, "t": True, "uni": "\u2028"},
        input_tokens=7,
        cost_usd=Decimal("0.000001"),
    )

    events.events_record(events=batch, new=new)

    for event in Event.objects.filter(run=run):
        assert (event.name, event.model, event.output) == (hostile[:200], "\\N", hostile)
        assert event.input == {"text": hostile, "nested": [hostile, {"k\t": "\\"}], "n": None}
        assert event.error == {"message": "\\N"}
        assert event.attributes == {
            "big": 2**70,
            "small": 1e-7,
            "neg": -0.0,
            "t": True,
            "uni": "\u2028",
        }
        assert (event.input_tokens, event.cost_usd) == (7, Decimal("0.000001"))


def test_a_step_given_twice_in_one_call_is_written_once_with_its_last_fields(run):
    batch = rows(run, 10)
    step = dict(batch[3], status="running")
    end = dict(step, seq=99, status="ok", output="done")

    assert events.events_record(events=[*batch[:3], step, *batch[4:], end]) == 10

    stored = Event.objects.get(id=step["id"])
    assert (stored.seq, stored.status, stored.output) == (3, "ok", "done")


def test_missing_fields_take_the_model_defaults_on_both_paths(run):
    small = [{"id": uuid.uuid4(), "run_id": run.id, "seq": 0, "kind": "log"}]
    large = [{"id": uuid.uuid4(), "run_id": run.id, "seq": i, "kind": "log"} for i in range(1, 21)]

    events.events_record(events=small)
    events.events_record(events=large)

    for event in Event.objects.filter(run=run):
        assert (event.name, event.status, event.model, event.attributes) == ("", "ok", "", {})
        assert event.started_at is not None and event.ended_at is None


def test_postgresql_writes_large_batches_through_copy_and_single_steps_without(run):
    if connection.vendor != "postgresql":
        assert not events.use_copy(1000)  # SQLite keeps the ORM's bulk upsert
        return
    with CaptureQueriesContext(connection) as single:
        events.events_record(events=rows(run, 1))
    with CaptureQueriesContext(connection) as bulk:
        events.events_record(events=rows(run, 30)[1:])

    assert len(single) == 1 and "agentops_event_load" not in single[0]["sql"]
    sql = " ".join(q["sql"] for q in bulk)
    assert "CREATE TEMPORARY TABLE IF NOT EXISTS agentops_event_load" in sql
    assert "ON CONFLICT (id) DO UPDATE" in sql
    assert Event.objects.filter(run=run).count() == 30


def test_new_steps_are_copied_straight_into_the_table_and_a_stored_id_among_them_writes_none(
    run,
):
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    with CaptureQueriesContext(connection) as new:
        assert events.events_record(events=rows(run, 30), new=True) == 30

    assert new.captured_queries == []  # one COPY (not captured): no load table, no upsert
    assert [e.seq for e in Event.objects.filter(run=run).order_by("seq")] == list(range(30))
    stored = Event.objects.filter(run=run).first()
    again = rows(run, 20)
    again[7] = {**again[7], "id": stored.id, "name": "overwritten?"}
    with pytest.raises(IntegrityError), transaction.atomic():
        events.events_record(events=again, new=True)
    assert Event.objects.filter(run=run).count() == 30
    assert Event.objects.get(id=stored.id).name == stored.name


@pytest.mark.django_db(transaction=True)
def test_the_load_table_is_emptied_to_nothing_at_each_commit():
    # A session (a pooled connection) lives for thousands of batches: rows only deleted would
    # leave dead pages behind that every later COPY and scan of the load table wades through.
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path and its load table are PostgreSQL's")
    run = Run.objects.create(agent="remote", source="external")
    for start in (0, 40, 80):
        events.events_record(events=_numbered(run, start, 40))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_relation_size('agentops_event_load')")
            assert cursor.fetchone()[0] == 0
    assert Event.objects.filter(run=run).count() == 120


def _numbered(run, start, count):
    return [{**row, "seq": start + row["seq"]} for row in rows(run, count)]


def test_json_safe_leaves_clean_values_untouched():
    value = {"a": [1, "x", {"b": None}], "c": 1.5}
    assert events.json_safe(value) is value
    assert events.json_text({"s": "a\\u0000\u0000"}) == '{"s": "a\\\\u0000\\ufffd"}'
