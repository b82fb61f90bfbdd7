"""POST /api/v1/ingest at its edges: size and rate limits (413, 429), keys and scopes (401,
403), and bodies that are not a batch."""

import json
import uuid

import pytest
from django.test import Client, override_settings

from runs.models import ApiKey, Run
from runs.services.keys import api_key_revoke
from tests.ingest.conftest import post_json
from tests.ingest.test_batch_api import URL, event_item, run_item, steps_of

pytestmark = pytest.mark.django_db


# --- limits -------------------------------------------------------------------------------


@override_settings(AGENTOPS_INGEST_MAX_BODY_BYTES=2000, DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
def test_a_body_over_the_limit_is_answered_413(client, ingest_key):
    run_id = uuid.uuid4()
    body = {"runs": [run_item(run_id, input={"text": "x" * 3000})]}

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not Run.objects.filter(id=run_id).exists()


@override_settings(AGENTOPS_INGEST_MAX_ITEMS=5)
def test_more_items_than_allowed_is_answered_413(client, ingest_key):
    run_id = uuid.uuid4()
    body = {"runs": [run_item(run_id)], "events": [event_item(run_id) for _ in range(5)]}

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "at most 5" in error["message"]
    assert error["details"] == {"max_items": 5, "items": 6}
    assert not Run.objects.filter(id=run_id).exists()


@override_settings(AGENTOPS_INGEST_MAX_ITEM_BYTES=1000)
def test_an_item_over_the_size_limit_is_rejected_alone(client, ingest_key):
    run_id = uuid.uuid4()
    big = event_item(run_id, output="y" * 1200)
    body = {"runs": [run_item(run_id)], "events": [event_item(run_id), big, event_item(run_id)]}

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 207
    (rejected,) = response.json()["rejected"]
    assert (rejected["index"], rejected["id"]) == (1, big["id"])
    assert "limit is 1000" in rejected["reason"]
    assert len(steps_of(run_id)) == 2


@override_settings(AGENTOPS_INGEST_RATE_PER_SECOND=2)
def test_a_key_over_its_rate_gets_429_with_retry_after(client, make_key, monkeypatch):
    monkeypatch.setattr("ingest.throttle._clock", lambda: 1_800_000_000.25)  # one window
    busy, other = make_key("ingest", name="busy"), make_key("ingest", name="busy")
    body = {"runs": [run_item(uuid.uuid4())]}

    answers = [post_json(client, URL, body, busy) for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
    assert answers[2]["Retry-After"] == "1"
    assert answers[2].json()["error"]["code"] == "throttled"
    # Another key (even one with the same name) has its own budget.
    assert post_json(client, URL, body, other).status_code == 200
    # The next second is a new window.
    monkeypatch.setattr("ingest.throttle._clock", lambda: 1_800_000_001.25)
    assert post_json(client, URL, body, busy).status_code == 200


# --- auth ---------------------------------------------------------------------------------


def test_no_key_or_a_wrong_key_is_answered_401(client, ingest_key):
    body = {"runs": [run_item(uuid.uuid4())]}
    for secret in (None, "ao_wrong", ingest_key + "x"):
        response = post_json(client, URL, body, secret)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    assert not Run.objects.exists()


def test_without_a_browser_session_a_bad_key_is_401_not_a_csrf_failure(ingest_key):
    strict = Client(enforce_csrf_checks=True)  # as over real HTTP
    body = {"runs": [run_item(uuid.uuid4())]}
    assert post_json(strict, URL, body, None).status_code == 401
    assert post_json(strict, URL, body, "ao_wrong").status_code == 401
    assert post_json(strict, URL, body, ingest_key).status_code == 200


def test_a_logged_in_page_may_post_with_its_session_and_csrf_token(make_user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_user("admin"))
    body = {"runs": [run_item(uuid.uuid4())]}
    refused = post_json(strict, URL, body, None)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    strict.get("/keys/")  # sets the CSRF cookie, as any page does
    token = strict.cookies["csrftoken"].value
    assert post_json(strict, URL, body, None, HTTP_X_CSRFTOKEN=token).status_code == 200


def test_a_revoked_key_stops_working_at_once(client, ingest_key):
    body = {"runs": [run_item(uuid.uuid4())]}
    assert post_json(client, URL, body, ingest_key).status_code == 200
    api_key_revoke(key_id=ApiKey.objects.get().id)

    response = post_json(client, URL, {"runs": [run_item(uuid.uuid4())]}, ingest_key)

    assert response.status_code == 401
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    "scopes, status",
    [(("runs:read",), 403), (("runs:write",), 403), (("admin",), 200), (("ingest",), 200)],
)
def test_only_keys_with_the_ingest_scope_may_send(client, make_key, scopes, status):
    response = post_json(client, URL, {"runs": [run_item(uuid.uuid4())]}, make_key(*scopes))
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_a_key_records_when_it_was_last_used(client, ingest_key):
    assert ApiKey.objects.get().last_used_at is None
    post_json(client, URL, {"runs": [run_item(uuid.uuid4())]}, ingest_key)
    assert ApiKey.objects.get().last_used_at is not None


# --- the body -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status, code",
    [
        ("{not json", 400, "bad_request"),
        ('{"runs": []} trailing', 400, "bad_request"),
        (b"\xff\xfe", 400, "bad_request"),
        ('[{"id": 1}]', 422, "invalid_input"),
        ('{"runs": {"id": 1}}', 422, "invalid_input"),
        ('{"events": "x"}', 422, "invalid_input"),
        ("{}", 422, "invalid_input"),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(client, ingest_key, body, status, code):
    response = post_json(client, URL, body, ingest_key)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_any_json_layout_is_read_and_unknown_top_level_keys_are_ignored(client, ingest_key):
    run_id = uuid.uuid4()
    body = (
        '\n{ "sdk" : {"name": "mine", "v": [1, 2]} ,\n  "events" : [ \n'
        f'  {{"id": "{uuid.uuid4()}", "run_id": "{run_id}", "kind": "log", "name": "é ✓"}} ],'
        f'\t"runs":[{{"id":"{run_id}","agent":"a"}}]\n}}\n'
    )

    response = post_json(client, URL, body.encode(), ingest_key)

    assert response.json() == {"accepted": {"runs": 1, "events": 1}, "rejected": []}
    assert steps_of(run_id)[0].name == "é ✓"


@override_settings(AGENTOPS_INGEST_MAX_ITEM_BYTES=300)
def test_an_items_size_is_counted_in_bytes_as_sent(client, ingest_key):
    run_id = uuid.uuid4()
    base = event_item(run_id)
    fits = {**base, "name": "x" * (299 - len(json.dumps({**base, "name": ""}).encode()))}
    multibyte = {**base, "id": str(uuid.uuid4()), "name": "é" * 100}  # 100 chars, 200 bytes
    body = {"runs": [run_item(run_id)], "events": [fits, multibyte]}
    assert len(json.dumps(fits).encode()) == 299

    response = post_json(client, URL, json.dumps(body, ensure_ascii=False).encode(), ingest_key)

    data = response.json()
    assert data["accepted"]["events"] == 1
    size = len(json.dumps(multibyte, ensure_ascii=False).encode())
    assert size > 300 > len(json.dumps(multibyte, ensure_ascii=False))
    assert [(r["index"], r["reason"]) for r in data["rejected"]] == [
        (1, f"item is {size} bytes; the limit is 300")
    ]


def test_an_item_nested_too_deep_is_rejected_alone(client, ingest_key):
    run_id = uuid.uuid4()
    deep, shallow = "[" * 150 + "1" + "]" * 150, "[" * 60 + "1" + "]" * 60
    body = (
        f'{{"runs": [{{"id": "{run_id}", "agent": "a"}}], "events": ['
        f'{{"id": "{uuid.uuid4()}", "run_id": "{run_id}", "kind": "log", "input": {deep}}},'
        f'{{"id": "{uuid.uuid4()}", "run_id": "{run_id}", "kind": "log", "input": {shallow}}}]}}'
    )

    response = post_json(client, URL, body, ingest_key)

    assert response.status_code == 207
    (rejected,) = response.json()["rejected"]
    assert rejected["index"] == 0 and "nested more than 100 levels" in rejected["reason"]
    assert len(steps_of(run_id)) == 1
