"""Regression tests for what fuzzing the API found (test_schema_fuzz.py), outside the ingest
door itself: every answer in the error shape and documented, never a 500."""

import json

import pytest

from runs.models import Run
from tests.ingest.conftest import post_json

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "since", ["1402-07-26T06:54:56-16:55", "0001-01-01T00:00:00+05:00", "2025-01-01T00:00:00"]
)
def test_run_list_times_with_any_offset_are_read_as_utc_not_a_500(client, make_key, since):
    # Found by the schema fuzzing: PostgreSQL refuses offsets beyond ±15:59.
    response = client.get(
        "/api/v1/runs", {"since": since}, HTTP_AUTHORIZATION=f"Bearer {make_key('runs:read')}"
    )
    # Year 1 at +05:00 is before year 1 in UTC: out of range, not a crash.
    assert response.status_code == (422 if since.startswith("0001") else 200), response.content


def test_json_nested_deeper_than_python_can_walk_is_422_not_500(client, make_key):
    body = '{"agent": "demo-support", "input": %s}' % ("[" * 900 + "1" + "]" * 900)
    response = post_json(client, "/api/v1/runs", body, make_key("runs:write"))
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] in ("bad_request", "invalid_input")


def test_a_method_an_api_path_does_not_take_is_405_in_the_error_shape(client):
    response = client.get("/api/v1/ingest")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_schema_documents_405_where_a_parameter_value_names_another_path(client):
    schema = client.get("/api/v1/openapi.json").json()
    put = schema["paths"]["/api/v1/caps/{scope}"]["put"]["responses"]
    assert "405" in put and "405" not in schema["paths"]["/api/v1/runs/{ref}"]["get"]["responses"]
    assert {"401", "403", "503"} <= set(schema["paths"]["/api/v1/ingest"]["post"]["responses"])


@pytest.mark.parametrize("field", ["q", "agent", "user_ref", "cursor"])
def test_a_nul_in_a_run_list_filter_is_422(client, make_key, field):
    key = make_key("runs:read")
    response = client.get("/api/v1/runs", {field: "a\x00b"}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 422
    assert field in str(response.json()["error"]["details"])


def test_a_nul_in_a_new_runs_refs_is_422_and_in_its_input_is_replaced(client, make_key):
    key = make_key("runs:write", "runs:read")
    body = {"agent": "demo-support", "input": {"question": "hi\x00"}, "user_ref": "u\x00"}
    refused = post_json(client, "/api/v1/runs", body, key)
    assert refused.status_code == 422 and "user_ref" in str(refused.json()["error"]["details"])

    accepted = post_json(client, "/api/v1/runs", {**body, "user_ref": "u"}, key)

    assert accepted.status_code == 202
    run = client.get(f"/api/v1/runs/{accepted.json()['id']}", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert run.json()["input"] == {"question": "hi\ufffd"}


def test_a_value_the_database_refuses_is_answered_422_not_500(rf):
    # The safety net under every operation, for a check that upstream validation missed.
    from django.db import DataError

    from ingest.api import api

    request = rf.get("/api/v1/runs")
    response = api.on_exception(request, DataError("time zone displacement out of range\nLINE"))

    assert response.status_code == 422
    body = json.loads(response.content)["error"]
    assert body["code"] == "invalid_input"
    assert body["details"] == {"reason": "time zone displacement out of range"}


@pytest.mark.parametrize("field", ["input", "metadata"])
def test_a_run_nested_past_100_levels_is_422_at_101_and_taken_at_100(client, make_key, field):
    # Refused by its measured depth, not by whichever walk of it overflows first: before, the
    # same body was a 422 or, after some other requests in the process, a 500.
    key = make_key("runs:write")

    def nested(levels: int) -> str:  # an object holding lists: `levels` deep in all
        lists = "[" * (levels - 1) + "1" + "]" * (levels - 1)
        return json.dumps({"agent": "demo-support", field: {"a": "x"}}).replace('"x"', lists)

    refused = post_json(client, "/api/v1/runs", nested(101), key)
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invalid_input", "message": f"{field} is nested more than 100 levels deep",
        "details": None,
    }  # fmt: skip
    assert post_json(client, "/api/v1/runs", nested(100), key).status_code == 202


def test_a_replay_whose_caps_nest_past_100_levels_is_422_not_500(client, make_key):
    run = Run.objects.create(agent="demo-support", status="succeeded")
    caps = "[" * 900 + "1" + "]" * 900  # pydantic's serializer gave up on it: a 500
    body = json.dumps({"mode": "live", "caps": {"x": "deep"}}).replace('"deep"', caps)
    response = post_json(client, f"/api/v1/runs/{run.id}/replay", body, make_key("runs:write"))
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "caps is nested more than 100 levels deep"
    assert Run.objects.count() == 1
