"""The one-pass reading of an ingest batch (msgspec) against the checked path (pydantic, item by
item): whatever the one-pass reading accepts, the checked path accepts whole, with the same rows;
whatever else it meets, it leaves to the checked path. Many valid and malformed items go through
both."""

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.batch_api import _checked_items
from ingest.batch_fast import valid_batch
from runs.errors import AppError

MAX_ITEMS, MAX_BYTES = 1000, 64 * 1024
RUN_ID = "0b7e2a4e-4c1e-4f7e-9a55-2f0f5a0c1d01"
STEP_ID = "6f1c3b8a-1d2e-4f30-8a41-5b6c7d8e9f00"


def checked(body: bytes):
    """("rows", rows) when the checked path accepts every item, else what it answered."""
    rejected: list = []
    try:
        valid = _checked_items(body, MAX_ITEMS, MAX_BYTES, rejected)
    except AppError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("rows", valid) if not rejected else ("rejected", rejected)


def assert_agree(body: bytes) -> bool:
    """Both paths on `body`; True when the one-pass reading took it."""
    fast = valid_batch(body, max_items=MAX_ITEMS, max_bytes=MAX_BYTES)
    if fast is None:
        return False
    assert checked(body) == ("rows", fast), body[:500]
    return True


def step(**fields) -> dict:
    item = {
        "id": STEP_ID,
        "run_id": RUN_ID,
        "kind": "model_call",
        "name": "chat",
        "status": "ok",
        "started_at": "2025-01-01T00:00:00.001000+00:00",
        "ended_at": "2025-01-01T00:00:00.004000+00:00",
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "output": {"text": "hi"},
        "model": "gpt-4o-mini",
        "input_tokens": 300,
        "output_tokens": 50,
        "attributes": {"i": 1},
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v is not DROP}


def run(**fields) -> dict:
    item = {"id": RUN_ID, "agent": "bench", "started_at": "2025-01-01T00:00:00Z"}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not DROP}


DROP = object()


def body_of(runs=(), events=()) -> bytes:
    return json.dumps({"runs": list(runs), "events": list(events)}).encode()


def test_a_valid_batch_is_read_in_one_pass_with_the_checked_paths_rows():
    events = [step(id=str(uuid.uuid4()), seq=n, cost_usd=0.0012) for n in range(100)]
    events.append(step(id=str(uuid.uuid4()), error="boom", parent_id=STEP_ID, started_at=None))
    runs = [run(status="succeeded", finished_at="2025-01-01T00:05:00Z", tags=["a"], error=None)]

    assert assert_agree(body_of(runs, events))


@pytest.mark.parametrize(
    "body",
    [
        b'{"runs": [{"id": "%s", "agent": "a"}], "runs": []}' % RUN_ID.encode(),
        b'{"\\u0072uns": [{"id": "%s", "agent": "a"}]}' % RUN_ID.encode(),
        b'{"runs": [{"id": "%s", "agent": "a"}], "other": 1}' % RUN_ID.encode(),
        b'{"runs": [{"id": "%s", "agent": "a", "input": 1e400}]}' % RUN_ID.encode(),
        b'{"runs": [{"id": "%s", "agent": "a", "input": NaN}]}' % RUN_ID.encode(),
        b'{"runs": []}',
        b"[]",
        b"",
        body_of(events=[step(input={"deep": json.loads("[" * 150 + "]" * 150)})]),
        body_of(events=[step(output="x" * (MAX_BYTES + 1))]),
        body_of(events=[step(ended_at="2024-01-01T00:00:00Z")]),
        body_of(events=[step(parent_id=STEP_ID)]),
        body_of(events=[step(started_at="2025-01-01T00:00:00.1234567Z")]),
    ],
)
def test_what_is_not_plainly_valid_is_left_to_the_checked_path(body):
    assert valid_batch(body, max_items=MAX_ITEMS, max_bytes=MAX_BYTES) is None


def test_more_items_than_allowed_are_left_to_the_checked_path():
    body = body_of(events=[step(id=str(uuid.uuid4())) for _ in range(3)])
    assert valid_batch(body, max_items=2, max_bytes=MAX_BYTES) is None


# --- many items through both ------------------------------------------------------------

_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_times = (
    st.sampled_from(
        [
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00.5+02:00",
            "2025-01-01T00:00:00",
            "2025-01-01 00:00:00Z",
            "2025-01-01t00:00:00z",
            "2025-01-01T00:00:00.1234567Z",
            "2025-01-01T00:00:00.9999999Z",
            "2025-01-01T00:00Z",
            "2025-01-01",
            "1969-12-31T23:59:59Z",
            "2999-12-31T23:59:59.999999Z",
            "3000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "2025-02-30T00:00:00Z",
            "2025-01-01T00:00:60Z",
            "2025-01-01T00:00:00+0100",
            "2025-01-01T00:00:00+23:59",
            "2025-01-01T00:00:00,5Z",
            "",
            "now",
        ]
    )
    | st.integers(0, 2_000_000_000)
    | st.floats(0, 2e9)
    | st.none()
)
_uuids = (
    st.sampled_from(
        [
            RUN_ID,
            RUN_ID.upper(),
            RUN_ID.replace("-", ""),
            "{" + RUN_ID + "}",
            "urn:uuid:" + RUN_ID,
            RUN_ID[:-1],
            RUN_ID + "0",
            STEP_ID,
            "",
        ]
    )
    | st.uuids().map(str)
    | st.integers()
    | st.none()
)
_counts = (
    st.integers(-5, 2**31 + 5)
    | st.sampled_from([2**31 - 1, 2**31, 0, -1, 1.0, 1.5, "7", True, False, 10**40])
    | st.none()
)
_costs = (
    st.floats(-1, 2e6, allow_nan=False)
    | st.integers(-1, 2_000_000)
    | st.sampled_from([0.1, 1e-6, 1e-7, 0.0000015, 999999.999999, 1e6, 1e6 + 1e-6, "0.5", True])
    | st.none()
)
_texts = st.text(max_size=210) | st.sampled_from(["x" * 200, "x" * 201, "😀" * 200, "😀" * 201])
_json = _junk | st.just(DROP)


def _maybe(strategy):
    return strategy | st.just(DROP)


_steps = st.fixed_dictionaries(
    {},
    optional={
        "id": _uuids,
        "run_id": _uuids,
        "seq": _counts,
        "parent_id": _uuids,
        "kind": st.sampled_from(["model_call", "tool_call", "log", "decision", "other", None, 1]),
        "name": _texts | st.integers(),
        "status": st.sampled_from(["ok", "error", "running", "OK", None]),
        "started_at": _times,
        "ended_at": _times,
        "input": _junk,
        "output": _junk,
        "model": _texts | st.none(),
        "input_tokens": _counts,
        "output_tokens": _counts,
        "cost_usd": _costs,
        "error": _junk,
        "attributes": _junk,
        "extra": _junk,
    },
)
_runs = st.fixed_dictionaries(
    {},
    optional={
        "id": _uuids,
        "agent": _texts | st.sampled_from(["", None, 3]),
        "status": st.sampled_from(["running", "succeeded", "failed", "budget_exceeded", "nope"]),
        "input": _junk,
        "output": _junk,
        "error": _junk,
        "user_ref": _texts,
        "session_ref": _texts,
        "tags": st.lists(_texts | st.integers(), max_size=22) | _junk,
        "metadata": _junk,
        "created_at": _times,
        "started_at": _times,
        "finished_at": _times,
        "extra": _junk,
    },
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=_steps, base=st.booleans())
def test_steps_agree(step, base):
    item = {**globals()["step"](), **step} if base else step
    assert_agree(body_of(events=[item]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=_runs, base=st.booleans())
def test_runs_agree(run, base):
    item = {**globals()["run"](), **run} if base else run
    assert_agree(body_of(runs=[item]))


_raw_values = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "1e400",
        "-1e400",
        "1" + "0" * 400,
        "1e-400",
        "1.7976931348623157e308",
        "-0",
        "-0.0",
        "01",
        '"\\ud800"',
        '"\\u0000"',
        '"a\\/b"',
        "[1,]",
        '{"a": 1, "a": 2}',
        "[" * 120 + "]" * 120,
        "tru",
        '"\xe9"',
        '"\\u0072uns"',
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_raw_values, field=st.sampled_from(["input", "output", "attributes", "seq", "name"]))
def test_json_edge_values_agree(value, field):
    """Values written as text: numbers JSON cannot hold, duplicate keys, escapes, junk."""
    item = json.dumps(step(**{field: "@@"})).replace('"@@"', value)
    run_item = f'{{"id": "{RUN_ID}", "agent": "a", "input": {value}}}'
    for body in (
        f'{{"events": [{item}]}}',
        f'{{"events": [{item}], "runs": [{run_item}]}}',
        f' \n{{ "events" : [ {item} ] }} \t',
        f'{{"events": [{item}], "events": [{item}]}}',
    ):
        assert_agree(body.encode("utf-8", "surrogatepass"))
