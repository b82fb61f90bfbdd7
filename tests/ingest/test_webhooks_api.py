"""/api/v1/webhooks: admins only (the `admin` scope, or an admin's session), input checked field
by field with the §9 error shape and nothing written, the secret never answered back, and an
endpoint's delivery log."""

import pytest

from runs.engine.webhooks import RUN_FAILED
from runs.models import Run, Webhook, WebhookDelivery
from runs.services.webhooks import notify_run
from tests.ingest.test_caps_api import assert_error, call, key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]
SECRET = "a-secret-of-twenty-chars"
BODY = {"url": "https://hooks.example.com/agentops", "secret": SECRET, "events": [RUN_FAILED]}


@pytest.fixture(autouse=True)
def _no_sending(monkeypatch):
    monkeypatch.setattr("runs.services.webhooks._enqueue", lambda *a, **k: None)


def a_webhook(client) -> int:
    response = call(client, "post", "/webhooks", BODY, key("admin"))
    assert response.status_code == 201, response.content
    return response.json()["id"]


OPERATIONS = [
    ("get", "/webhooks", None),
    ("post", "/webhooks", BODY),
    ("delete", "/webhooks/1", None),
    ("get", "/webhooks/1/deliveries", None),
]


@pytest.mark.parametrize("method, path, body", OPERATIONS)
def test_no_key_is_401(client, method, path, body):
    assert_error(call(client, method, path, body), 401, "unauthenticated")


@pytest.mark.parametrize("scopes", [("runs:read",), ("runs:write", "runs:read"), ("ingest",)])
@pytest.mark.parametrize("method, path, body", OPERATIONS)
def test_every_operation_needs_the_admin_scope(client, scopes, method, path, body):
    webhook_id = a_webhook(client)
    path = path.replace("/1", f"/{webhook_id}")
    error = assert_error(call(client, method, path, body, key(*scopes)), 403, "insufficient_scope")
    assert "admin" in error["message"]
    assert Webhook.objects.count() == 1


@pytest.mark.parametrize("role, status", [("engineer", 403), ("admin", 201)])
def test_a_session_needs_the_admin_role(client, make_user, role, status):
    user = make_user(role)
    client.force_login(user)
    response = client.post("/api/v1/webhooks", data=BODY, content_type="application/json")
    assert response.status_code == status, response.content
    assert Webhook.objects.count() == (1 if status == 201 else 0)


def test_an_admin_adds_lists_and_deletes_and_the_secret_is_never_answered(client):
    admin = key("admin")
    created = call(client, "post", "/webhooks", BODY, admin)

    assert created.status_code == 201
    body = created.json()
    assert body["url"] == BODY["url"] and body["events"] == [RUN_FAILED]
    assert body["enabled"] is True and body["secret"] is None
    listed = call(client, "get", "/webhooks", token=admin)
    assert [w["id"] for w in listed.json()["items"]] == [body["id"]]
    for response in (created, listed):
        assert SECRET not in response.content.decode()
    assert Webhook.objects.get().secret == SECRET

    assert call(client, "delete", f"/webhooks/{body['id']}", token=admin).status_code == 204
    assert not Webhook.objects.exists()
    assert_error(call(client, "delete", f"/webhooks/{body['id']}", token=admin), 404, "not_found")


def test_a_secret_left_out_is_generated_and_shown_once(client):
    admin = key("admin")
    created = call(client, "post", "/webhooks", {**BODY, "secret": None}, admin).json()
    secret = created["secret"]
    assert secret and len(secret) >= 32 and Webhook.objects.get().secret == secret
    assert secret not in call(client, "get", "/webhooks", token=admin).content.decode()
    left_out = {"url": BODY["url"], "events": BODY["events"]}
    other = call(client, "post", "/webhooks", left_out, admin).json()["secret"]
    assert other and other != secret


@pytest.mark.parametrize(
    "body, fields",
    [
        ({**BODY, "url": "ftp://hooks.example.com/x"}, {"url"}),
        ({**BODY, "url": "javascript:alert(1)"}, {"url"}),
        ({**BODY, "url": "https://"}, {"url"}),
        ({**BODY, "url": "https://example.com/a b"}, {"url"}),
        ({**BODY, "url": "https://example.com:99999/"}, {"url"}),
        ({**BODY, "url": "https://example.com/" + "x" * 2000}, {"url"}),
        ({**BODY, "url": 5}, {"url"}),
        ({**BODY, "secret": "short"}, {"secret"}),
        ({**BODY, "secret": "x" * 201}, {"secret"}),
        ({**BODY, "secret": ["a-secret-of-twenty-chars"]}, {"secret"}),
        ({**BODY, "events": []}, {"events"}),
        ({**BODY, "events": "run.failed"}, {"events"}),
        ({**BODY, "events": ["run.failed", "run.exploded"]}, {"events"}),
        ({**BODY, "events": [1]}, {"events"}),
        ({"url": "gopher://x", "secret": "s", "events": ["nope"]}, {"url", "secret", "events"}),
    ],
)
def test_bad_input_is_422_naming_each_field_and_writes_nothing(client, body, fields):
    error = assert_error(call(client, "post", "/webhooks", body, key("admin")), 422,
                         "invalid_webhook")  # fmt: skip
    assert set(error["details"]["fields"]) == fields
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "body", [{**BODY, "name": "extra"}, {"secret": SECRET, "events": [RUN_FAILED]}, [BODY]]
)
def test_a_body_of_the_wrong_shape_is_422(client, body):
    assert_error(call(client, "post", "/webhooks", body, key("admin")), 422, "invalid_input")
    assert not Webhook.objects.exists()


def test_the_delivery_log_shows_status_attempts_and_response_code(client):
    admin = key("admin")
    webhook_id = call(client, "post", "/webhooks", BODY, admin).json()["id"]
    runs = [Run.objects.create(agent="demo-broken", status="failed") for _ in range(3)]
    for run in runs:
        notify_run(RUN_FAILED, run)
    first = WebhookDelivery.objects.order_by("id").first()
    WebhookDelivery.objects.filter(id=first.id).update(
        status="delivered", attempts=2, response_code=200
    )

    page = call(client, "get", f"/webhooks/{webhook_id}/deliveries?limit=2", token=admin).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = call(client, "get", f"/webhooks/{webhook_id}/deliveries?before={page['next_cursor']}",
                token=admin).json()  # fmt: skip
    assert rest["next_cursor"] is None
    (oldest,) = rest["items"]
    assert oldest["id"] == str(first.id)
    assert (oldest["status"], oldest["attempts"], oldest["response_code"]) == ("delivered", 2, 200)
    assert oldest["event"] == RUN_FAILED and oldest["key"] == f"{RUN_FAILED}:{runs[0].id}"
    delivered = call(client, "get", f"/webhooks/{webhook_id}/deliveries?status=delivered",
                     token=admin).json()  # fmt: skip
    assert [d["id"] for d in delivered["items"]] == [str(first.id)]

    assert_error(call(client, "get", f"/webhooks/{webhook_id}/deliveries?limit=201", token=admin),
                 422, "invalid_input")  # fmt: skip
    assert_error(call(client, "get", f"/webhooks/{webhook_id}/deliveries?status=odd", token=admin),
                 422, "invalid_input")  # fmt: skip
    assert_error(call(client, "get", "/webhooks/999999/deliveries", token=admin), 404, "not_found")
