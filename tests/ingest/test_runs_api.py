"""The /api/v1/runs endpoints: auth and scopes, the error shape, validation, pagination."""

import json
import uuid
from decimal import Decimal

import pytest
from django.test import override_settings

from runs.models import Event, Run
from runs.services.keys import api_key_create, api_key_revoke

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def key(*scopes) -> str:
    return api_key_create(name="t", scopes=list(scopes))[1]


def call(client, method, path, body=None, token=None, raw=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return getattr(client, method)(
        f"/api/v1{path}", data=data, content_type="application/json", **headers
    )


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_start_a_run_answers_202_with_its_id(client):
    token = key("runs:write", "runs:read")
    response = call(
        client, "post", "/runs", {"agent": "demo-support", "input": {"question": "hi"},
                                  "user_ref": "cust-1", "tags": ["vip"]}, token
    )  # fmt: skip
    assert response.status_code == 202
    body = response.json()
    run = Run.objects.get(id=body["id"])
    assert body == {"id": str(run.id), "status": "queued", "url": f"/runs/{run.id}/"}
    assert run.user_ref == "cust-1" and run.tags == ["vip"]
    assert run.caps["max_tool_calls"] == 20
    assert Decimal(run.caps["max_cost_usd"]) == Decimal("0.50")


def test_read_a_run_by_full_id_and_by_prefix(client):
    token = key("runs:write", "runs:read")
    run_id = call(client, "post", "/runs", {"agent": "demo-loop"}, token).json()["id"]
    full = call(client, "get", f"/runs/{run_id}", token=token)
    assert full.status_code == 200
    body = full.json()
    assert body["id"] == run_id and body["status"] == "queued" and body["source"] == "internal"
    assert body["usage"]["max_tool_calls"] == {"used": 0, "limit": 20}
    prefix = call(client, "get", f"/runs/{run_id[:8]}", token=token)
    assert prefix.status_code == 200 and prefix.json()["id"] == run_id


def test_list_filters_and_paginates_with_a_cursor(client):
    token = key("runs:write", "runs:read")
    ids = [
        call(client, "post", "/runs", {"agent": "demo-loop", "user_ref": "u-7"}, token).json()["id"]
        for _ in range(5)
    ]
    call(client, "post", "/runs", {"agent": "demo-support", "user_ref": "u-8"}, token)
    page1 = call(client, "get", "/runs?user_ref=u-7&limit=3", token=token).json()
    assert [r["id"] for r in page1["items"]] == ids[::-1][:3]
    page2 = call(client, "get", f"/runs?user_ref=u-7&limit=3&cursor={page1['next_cursor']}",
                 token=token).json()  # fmt: skip
    assert [r["id"] for r in page2["items"]] == ids[::-1][3:]
    assert page2["next_cursor"] is None
    only_support = call(client, "get", "/runs?agent=demo-support", token=token).json()
    assert [r["user_ref"] for r in only_support["items"]] == ["u-8"]


def test_events_come_in_order_after_a_seq(client):
    token = key("runs:read", "runs:write")
    run = Run.objects.get(
        id=call(client, "post", "/runs", {"agent": "demo-loop"}, token).json()["id"]
    )
    for seq in range(5):
        Event.objects.create(run=run, seq=seq, kind="log", name=f"step {seq}")
    body = call(client, "get", f"/runs/{run.id}/events?after_seq=1&limit=2", token=token).json()
    assert [e["seq"] for e in body["items"]] == [2, 3] and body["next_after_seq"] == 3


def test_cancel_a_queued_run_then_cancel_again_is_a_conflict(client):
    token = key("runs:write", "runs:read")
    run_id = call(client, "post", "/runs", {"agent": "demo-loop"}, token).json()["id"]
    first = call(client, "post", f"/runs/{run_id}/cancel", token=token)
    assert first.status_code == 202 and first.json()["status"] == "cancelled"
    assert_error(call(client, "post", f"/runs/{run_id}/cancel", token=token), 409, "run_finished")


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"agent": "no-such-agent"}, 422, "unknown_agent"),
        ({"input": {}}, 422, "invalid_input"),
        ({"agent": 42}, 422, "invalid_input"),
        ({"agent": "demo-loop", "tags": "vip"}, 422, "invalid_input"),
        ({"agent": "demo-loop", "tags": ["x" * 51]}, 422, "invalid_input"),
        ({"agent": "demo-loop", "user_ref": "u" * 201}, 422, "invalid_input"),
        ({"agent": "demo-loop", "caps": {"max_tool_calls": "lots"}}, 422, "invalid_caps"),
        ({"agent": "demo-loop", "caps": {"max_tool_calls": 0}}, 422, "invalid_caps"),
        ({"agent": "demo-loop", "caps": {"max_cost_usd": "0.12345"}}, 422, "invalid_caps"),
        ({"agent": "demo-loop", "caps": {"no_such_cap": 1}}, 422, "invalid_caps"),
        ({"agent": "demo-loop", "caps": {"max_tool_calls": 21}}, 403, "cap_above_policy"),
        ({"agent": "demo-loop", "input": {"blob": "x" * 300_000}}, 413, "too_large"),
    ],
)
def test_bad_run_requests_are_refused_and_write_nothing(client, body, status, code):
    token = key("runs:write")
    assert_error(call(client, "post", "/runs", body, token), status, code)
    assert not Run.objects.exists()


def test_malformed_json_is_a_400(client):
    token = key("runs:write")
    response = call(client, "post", "/runs", token=token, raw="{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not Run.objects.exists()


def test_an_admin_key_may_raise_a_cap_above_policy(client):
    token = key("admin")
    response = call(client, "post", "/runs", {"agent": "demo-loop", "caps": {"max_tool_calls": 50}},
                    token)  # fmt: skip
    assert response.status_code == 202
    assert Run.objects.get().caps["max_tool_calls"] == 50


@pytest.mark.parametrize("token", [None, "ao_wrong", "x" * 500])
def test_missing_or_wrong_key_is_401(client, token):
    assert_error(call(client, "get", "/runs", token=token), 401, "unauthenticated")
    assert_error(
        call(client, "post", "/runs", {"agent": "demo-loop"}, token), 401, "unauthenticated"
    )


def test_revoked_key_stops_working_at_once(client):
    created, token = api_key_create(name="soon-revoked", scopes=["runs:read"])
    assert call(client, "get", "/runs", token=token).status_code == 200
    api_key_revoke(key_id=created.id)
    assert_error(call(client, "get", "/runs", token=token), 401, "unauthenticated")


def test_under_scoped_key_is_403(client):
    token = key("runs:read")
    assert_error(
        call(client, "post", "/runs", {"agent": "demo-loop"}, token), 403, "insufficient_scope"
    )
    ingest_only = key("ingest")
    assert_error(call(client, "get", "/runs", token=ingest_only), 403, "insufficient_scope")


@pytest.mark.parametrize(
    "ref, status, code",
    [(str(uuid.UUID(int=0)), 404, "not_found"), ("not-an-id", 404, "not_found"),
     ("0123456", 404, "not_found"), ("ffffffff", 404, "not_found")],
)  # fmt: skip
def test_unknown_run_ids_are_404(client, ref, status, code):
    token = key("runs:read", "runs:write")
    for path in (f"/runs/{ref}", f"/runs/{ref}/events"):
        assert_error(call(client, "get", path, token=token), status, code)
    assert_error(call(client, "post", f"/runs/{ref}/cancel", token=token), status, code)


def test_an_ambiguous_prefix_is_409_listing_the_candidates(client):
    token = key("runs:read")
    a = Run.objects.create(id=uuid.UUID("abcdef01-0000-7000-8000-000000000001"), agent="demo-loop")
    b = Run.objects.create(id=uuid.UUID("abcdef01-0000-7000-8000-000000000002"), agent="demo-loop")
    error = assert_error(
        call(client, "get", "/runs/abcdef01", token=token), 409, "ambiguous_prefix"
    )
    assert set(error["details"]["candidates"]) == {str(a.id), str(b.id)}


@pytest.mark.parametrize(
    "query",
    ["status=nope", "limit=0", "limit=100000", "since=yesterday", "cursor=%%%"],
)
def test_bad_list_queries_are_422(client, query):
    token = key("runs:read")
    response = call(client, "get", f"/runs?{query}", token=token)
    assert response.status_code == 422 and response.json()["error"]["code"] in (
        "invalid_input", "invalid_cursor",
    )  # fmt: skip


@pytest.mark.parametrize("query", ["after_seq=x", "after_seq=-2", "limit=0", "limit=5000"])
def test_bad_event_queries_are_422(client, query):
    token = key("runs:read", "runs:write")
    run_id = Run.objects.create(agent="demo-loop").id
    assert_error(call(client, "get", f"/runs/{run_id}/events?{query}", token=token), 422,
                 "invalid_input")  # fmt: skip


def test_session_user_gets_the_scopes_of_their_role(client, make_user):
    client.force_login(make_user("support"))
    assert client.get("/api/v1/runs").status_code == 200
    client.force_login(make_user("engineer"))
    with override_settings(CSRF_COOKIE_HTTPONLY=False):
        response = client.post(
            "/api/v1/runs", json.dumps({"agent": "demo-loop"}), content_type="application/json"
        )
    assert response.status_code == 202
