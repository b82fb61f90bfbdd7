"""`Idempotency-Key` on POST /api/v1/runs and /replay: a retry returns the first run; the same key
with another body, a key in use, a bad key; refused requests leave no key; keys expire."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import IdempotencyKey, Run
from runs.services import idempotency
from runs.services.idempotency import KeyInUse, idempotency_keys_prune, run_create_once
from runs.services.runs import run_create
from tests.ingest.conftest import post_json
from tests.runs.run_rows import finished_run

pytestmark = pytest.mark.django_db
BODY = {"agent": "demo-support", "input": {"question": "Where is A-1001?"}}


@pytest.fixture
def key(make_key):
    return make_key("runs:write", "runs:read")


def start(client, secret, body=BODY, idem="retry-1", path="/api/v1/runs"):
    extra = {} if idem is None else {"HTTP_IDEMPOTENCY_KEY": idem}
    return post_json(client, path, body, secret, **extra)


def test_a_retry_with_the_same_key_returns_the_first_run(client, key, no_enqueue):
    first = start(client, key)
    again = start(client, key, body={"input": BODY["input"], "agent": "demo-support"})
    assert first.status_code == again.status_code == 202, again.content
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Run.objects.count() == 1


def test_without_a_key_each_request_starts_a_run(client, key, no_enqueue):
    start(client, key, idem=None)
    start(client, key, idem=None)
    assert Run.objects.count() == 2


def test_the_same_key_with_another_body_is_422(client, key, no_enqueue):
    start(client, key)
    other = start(client, key, body={**BODY, "user_ref": "someone-else"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Run.objects.count() == 1


def test_keys_belong_to_their_caller(client, key, make_key, no_enqueue):
    start(client, key)
    start(client, make_key("runs:write"))
    assert Run.objects.count() == 2


@pytest.mark.parametrize("bad", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_an_unusable_key_is_422_and_starts_nothing(client, key, bad, no_enqueue):
    response = start(client, key, idem=bad)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not Run.objects.exists() and not IdempotencyKey.objects.exists()


def test_a_key_of_255_characters_is_fine(client, key, no_enqueue):
    assert start(client, key, idem="k" * 255).status_code == 202


def test_a_refused_request_leaves_no_key(client, key, no_enqueue):
    refused = start(client, key, body={**BODY, "agent": "no-such-agent"})
    assert refused.status_code == 422
    assert not IdempotencyKey.objects.exists()
    invalid = start(client, key, body={"agent": 5})
    assert invalid.status_code == 422 and not IdempotencyKey.objects.exists()
    assert start(client, key).status_code == 202  # the key is free for the real request


def test_a_request_under_way_with_the_same_key_is_409_retry_after(
    client, key, no_enqueue, monkeypatch
):
    from ingest import runs_api

    answers, real = [], runs_api.run_create

    def create_while_a_retry_arrives(**kwargs):
        answers.append(start(client, key))
        return real(**kwargs)

    monkeypatch.setattr(runs_api, "run_create", create_while_a_retry_arrives)
    first = start(client, key)
    assert first.status_code == 202
    (retry,) = answers
    assert retry.status_code == 409, retry.content
    assert retry.json()["error"]["code"] == "idempotency_key_in_use"
    assert retry["Retry-After"] == "1"
    assert Run.objects.count() == 1
    assert start(client, key).json()["id"] == first.json()["id"]  # once it is done


def create_once(create=None):
    create = create or (lambda: run_create(agent="demo-support", input={}))
    return run_create_once(owner="key:1", key="k", fingerprint="f", create=create)


def test_an_abandoned_pending_key_is_taken_over_after_ten_seconds(no_enqueue):
    # A request that died with its key pending (its web process killed, the database gone under
    # it): a client retrying gets its run within seconds, not after a minute of 409s.
    now = timezone.now()
    row = IdempotencyKey.objects.create(
        owner="key:1", key="k", fingerprint="f", created_at=now - timedelta(seconds=9)
    )
    with pytest.raises(KeyInUse):
        create_once()
    IdempotencyKey.objects.filter(pk=row.pk).update(created_at=now - timedelta(seconds=11))
    run, replayed = create_once()
    assert not replayed and IdempotencyKey.objects.get().run_id == run.id


def test_a_request_whose_key_was_taken_over_meanwhile_creates_nothing(no_enqueue, monkeypatch):
    real_take = idempotency._take

    def take_then_stall(*args):  # while this request stalls, a retry takes its key over
        row = real_take(*args)
        later = row.created_at + idempotency.ABANDONED_AFTER + timedelta(seconds=1)
        IdempotencyKey.objects.filter(pk=row.pk).update(created_at=later)
        return row

    monkeypatch.setattr(idempotency, "_take", take_then_stall)
    with pytest.raises(KeyInUse):
        create_once()
    assert not Run.objects.exists()  # its run was rolled back
    taken = IdempotencyKey.objects.get()  # and the row is the retry's, left for it to finish
    assert taken.state == "pending" and taken.run_id is None


def test_a_key_is_kept_24_hours(client, key, no_enqueue):
    first = start(client, key).json()["id"]
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    assert start(client, key).json()["id"] == first
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    assert start(client, key).json()["id"] != first
    assert Run.objects.count() == 2


def test_old_keys_are_pruned():
    IdempotencyKey.objects.create(owner="a", key="old", fingerprint="f")
    IdempotencyKey.objects.create(owner="a", key="new", fingerprint="f")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_prune() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_replay_honours_the_key(client, key, no_enqueue):
    original = finished_run("demo-support")
    path = f"/api/v1/runs/{original.id}/replay"
    first = start(client, key, body={"mode": "live"}, path=path)
    again = start(client, key, body={"mode": "live"}, path=path)
    assert first.status_code == again.status_code == 202, first.content
    assert first.json()["id"] == again.json()["id"]
    assert Run.objects.filter(replay_of=original).count() == 1
    other = start(client, key, body={"mode": "recorded_model"}, path=path)
    assert other.status_code == 422
