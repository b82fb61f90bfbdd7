"""Input that must be refused with a clear answer, never stored: numbers too large for a float,
steps that end before they start or are their own ancestors, a body sent in chunks, a run's
wall-clock cap below its bound; and who may read the caps' audit trail."""

import uuid

import pytest

from runs.models import Event, Run
from tests.ingest.conftest import post_json

URL = "/api/v1/ingest"

pytestmark = pytest.mark.django_db


def run_item(run_id, **fields):
    return {"id": str(run_id), "agent": "remote-bot", **fields}


def step(run_id, step_id=None, **fields):
    return {"id": str(step_id or uuid.uuid4()), "run_id": str(run_id), "kind": "log", **fields}


@pytest.mark.parametrize("number", ["1e400", "-1E+400", "123.4e999"])
def test_a_number_too_large_for_a_float_is_refused_like_nan(client, ingest_key, number):
    run_id = uuid.uuid4()
    body = f'{{"runs": [{{"id": "{run_id}", "agent": "a", "input": {{"x": {number}}}}}]}}'
    response = post_json(client, URL, body, ingest_key)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert not Run.objects.filter(id=run_id).exists()


def test_a_huge_number_in_a_run_request_is_refused(client, make_key):
    response = post_json(
        client,
        "/api/v1/runs",
        '{"agent": "demo-support", "input": {"x": 1e400}}',
        make_key("runs:write"),
    )
    assert response.status_code == 400, response.content
    assert "error" in response.json()
    assert not Run.objects.exists()


def test_a_step_that_ends_before_it_starts_is_rejected_alone(client, ingest_key):
    run_id = uuid.uuid4()
    good, bad = (
        step(run_id),
        step(run_id, started_at="2025-03-01T12:00:05Z", ended_at="2025-03-01T12:00:04Z"),
    )
    body = {"runs": [run_item(run_id)], "events": [good, bad]}
    response = post_json(client, URL, body, ingest_key)
    assert response.status_code == 207, response.content
    (rejected,) = response.json()["rejected"]
    assert rejected["index"] == 1 and "before started_at" in rejected["reason"]
    assert list(Event.objects.values_list("id", flat=True)) == [uuid.UUID(good["id"])]


def test_a_resent_end_before_the_stored_start_is_rejected(client, ingest_key):
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    first = {
        "runs": [run_item(run_id)],
        "events": [step(run_id, step_id, status="running", started_at="2025-03-01T12:00:05Z")],
    }
    assert post_json(client, URL, first, ingest_key).status_code == 200
    end = step(run_id, step_id, status="ok", ended_at="2025-03-01T12:00:01Z")
    response = post_json(client, URL, {"events": [end]}, ingest_key)
    assert response.status_code == 207, response.content
    assert "before started_at" in response.json()["rejected"][0]["reason"]
    assert Event.objects.get(id=step_id).status == "running"


def test_a_run_that_finishes_before_it_starts_is_rejected(client, ingest_key):
    run_id = uuid.uuid4()
    item = run_item(
        run_id,
        status="succeeded",
        started_at="2025-03-01T12:00:05Z",
        finished_at="2025-03-01T12:00:00Z",
    )
    response = post_json(client, URL, {"runs": [item]}, ingest_key)
    assert response.status_code == 207
    assert "before started_at" in response.json()["rejected"][0]["reason"]
    assert not Run.objects.filter(id=run_id).exists()


def test_steps_whose_parents_make_a_cycle_are_rejected_per_item(client, ingest_key):
    run_id = uuid.uuid4()
    a, b, c, own, fine = (uuid.uuid4() for _ in range(5))
    events = [
        step(run_id, a, parent_id=str(b)),
        step(run_id, b, parent_id=str(a)),
        step(run_id, own, parent_id=str(own)),
        step(run_id, c),
        step(run_id, fine, parent_id=str(c)),
    ]
    response = post_json(client, URL, {"runs": [run_item(run_id)], "events": events}, ingest_key)
    assert response.status_code == 207, response.content
    rejected = response.json()["rejected"]
    assert sorted(r["index"] for r in rejected) == [0, 1, 2]
    assert all("cycle" in r["reason"] or "itself" in r["reason"] for r in rejected)
    assert set(Event.objects.values_list("id", flat=True)) == {c, fine}


def test_a_cycle_closed_through_stored_steps_is_rejected(client, ingest_key):
    run_id = uuid.uuid4()
    a, b, c = (uuid.uuid4() for _ in range(3))
    chain = [step(run_id, a), step(run_id, b, parent_id=str(a)), step(run_id, c, parent_id=str(b))]
    body = {"runs": [run_item(run_id)], "events": chain}
    assert post_json(client, URL, body, ingest_key).status_code == 200
    # a's parent would become c, whose parents lead back to a.
    response = post_json(client, URL, {"events": [step(run_id, a, parent_id=str(c))]}, ingest_key)
    assert response.status_code == 207, response.content
    assert "cycle" in response.json()["rejected"][0]["reason"]
    assert Event.objects.get(id=a).parent_id is None


def test_a_chunked_body_is_answered_411_with_a_clear_message(client, ingest_key):
    response = client.generic(
        "POST",
        URL,
        b"",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {ingest_key}",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    error = response.json()["error"]
    assert error["code"] == "length_required" and "Content-Length" in error["message"]


@pytest.mark.parametrize("seconds", [0, 0.5, -1, 604_801])
def test_a_run_wall_clock_cap_outside_the_policy_bounds_is_refused(client, make_key, seconds):
    body = {"agent": "demo-support", "input": {}, "caps": {"max_wall_seconds": seconds}}
    response = post_json(client, "/api/v1/runs", body, make_key("runs:write", "admin"))
    assert response.status_code == 422, response.content
    assert "from 1 to 604800" in response.json()["error"]["details"]["reason"]
    assert not Run.objects.exists()


def test_the_caps_audit_trail_is_readable_with_runs_read(client, make_key):
    response = client.get(
        "/api/v1/caps/changes", HTTP_AUTHORIZATION=f"Bearer {make_key('runs:read')}"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"items": []}
