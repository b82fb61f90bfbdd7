"""The webhooks pages: admins only; add an endpoint (a generated secret shown once, one typed in
never shown back); a disabled endpoint says so and can be enabled; the delivery log shows each
delivery's status, attempts and response code."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.engine.webhooks import RUN_FAILED
from runs.models import Run, Webhook, WebhookDelivery
from runs.services.webhooks import notify_run, webhook_create

pytestmark = pytest.mark.django_db
SECRET = "typed-in-secret-1234"


@pytest.fixture(autouse=True)
def _no_sending(monkeypatch):
    monkeypatch.setattr("runs.services.webhooks._enqueue", lambda *a, **k: None)


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.mark.parametrize("role", ["support", "engineer"])
def test_only_admins_reach_the_pages(client, make_user, role):
    webhook = webhook_create(url="https://a.example.com/", secret=SECRET, events=[RUN_FAILED])[0]
    client.force_login(make_user(role))
    assert client.get("/webhooks/").status_code == 403
    assert client.get(f"/webhooks/{webhook.id}/").status_code == 403
    post = {"url": "https://b.example.com/", "events": [RUN_FAILED]}
    assert client.post("/webhooks/", post).status_code == 403
    assert client.post(f"/webhooks/{webhook.id}/delete/").status_code == 403
    assert list(Webhook.objects.values_list("url", flat=True)) == ["https://a.example.com/"]
    assert "/webhooks/" not in client.get("/").content.decode()


def test_an_admin_adds_an_endpoint_and_a_typed_in_secret_is_never_shown(admin_client):
    assert 'href="/webhooks/"' in admin_client.get("/").content.decode()  # in the navigation
    response = admin_client.post(
        "/webhooks/",
        {
            "url": "https://hooks.example.com/in",
            "secret": SECRET,
            "events": [RUN_FAILED, "run.lost"],
        },
    )
    assert response.status_code == 201
    html = response.content.decode()
    assert SECRET not in html and "Added https://hooks.example.com/in" in html
    webhook = Webhook.objects.get()
    assert webhook.events == [RUN_FAILED, "run.lost"] and webhook.secret == SECRET
    listing = admin_client.get("/webhooks/").content.decode()
    assert SECRET not in listing and "run.failed, run.lost" in listing


def test_a_generated_secret_is_shown_once(admin_client):
    response = admin_client.post(
        "/webhooks/", {"url": "https://hooks.example.com/in", "events": [RUN_FAILED]}
    )
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-webhook-secret">([^<]+)<', response.content.decode()).group(1)
    assert Webhook.objects.get().secret == secret
    assert secret not in admin_client.get("/webhooks/").content.decode()


def test_bad_input_is_shown_beside_its_field_and_nothing_is_added(admin_client):
    response = admin_client.post(
        "/webhooks/", {"url": "ftp://x.example.com/", "secret": "short", "events": [RUN_FAILED]}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "must be an http:// or https:// URL" in html and "16 to 200 characters" in html
    assert not Webhook.objects.exists()
    missing = admin_client.post("/webhooks/", {"url": "https://x.example.com/"})
    assert missing.status_code == 422 and not Webhook.objects.exists()


def test_a_disabled_endpoint_says_so_and_can_be_enabled_again(admin_client):
    webhook = webhook_create(url="https://down.example.com/", secret=SECRET, events=[RUN_FAILED])[0]
    Webhook.objects.filter(id=webhook.id).update(
        disabled_at=timezone.now(), disabled_reason="20 failed attempts in a row",
        consecutive_failures=20,
    )  # fmt: skip
    html = admin_client.get("/webhooks/").content.decode()
    row = re.search(rf'<tr data-webhook="{webhook.id}".*?</tr>', html, re.S).group(0)
    assert "Disabled" in row and "20 failed attempts in a row" in row
    assert "Disabled" in admin_client.get(f"/webhooks/{webhook.id}/").content.decode()

    response = admin_client.post(f"/webhooks/{webhook.id}/enable/", follow=True)
    assert "Enabled https://down.example.com/ again" in response.content.decode()
    webhook.refresh_from_db()
    assert webhook.disabled_at is None and webhook.consecutive_failures == 0


def test_the_delivery_log_shows_status_attempts_and_response_code(admin_client):
    webhook = webhook_create(url="https://a.example.com/", secret=SECRET, events=[RUN_FAILED])[0]
    run = Run.objects.create(agent="<script>x</script>", status="failed")
    notify_run(RUN_FAILED, run)
    WebhookDelivery.objects.update(attempts=3, response_code=503, error="HTTP 503")

    html = admin_client.get(f"/webhooks/{webhook.id}/").content.decode()

    row = re.search(r'<tr data-delivery=".*?</tr>', html, re.S).group(0)
    assert "run.failed" in row and "pending" in row and ">3<" in row and "503" in row
    assert "<script>x</script>" not in html
    delivered = admin_client.get(f"/webhooks/{webhook.id}/?status=delivered").content.decode()
    assert "No deliveries yet." in delivered
    assert admin_client.get(f"/webhooks/{webhook.id}/?before=nonsense").status_code == 400
    assert admin_client.get("/webhooks/999999/").status_code == 404


def test_deleting_an_endpoint_removes_it_and_its_log(admin_client):
    webhook = webhook_create(url="https://a.example.com/", secret=SECRET, events=[RUN_FAILED])[0]
    notify_run(RUN_FAILED, Run.objects.create(agent="demo-broken", status="failed"))
    response = admin_client.post(f"/webhooks/{webhook.id}/delete/", follow=True)
    assert "Deleted the webhook" in response.content.decode()
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()


def test_the_pages_take_as_many_queries_for_many_rows_as_for_one(admin_client):
    def queries(path):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(path).status_code == 200
        return len(captured)

    webhook = webhook_create(url="https://a.example.com/", secret=SECRET, events=[RUN_FAILED])[0]
    notify_run(RUN_FAILED, Run.objects.create(agent="demo-broken", status="failed"))
    one = (queries("/webhooks/"), queries(f"/webhooks/{webhook.id}/"))
    for n in range(5):
        webhook_create(url=f"https://b.example.com/{n}", secret=SECRET, events=[RUN_FAILED])
        notify_run(RUN_FAILED, Run.objects.create(agent="demo-broken", status="failed"))
    assert (queries("/webhooks/"), queries(f"/webhooks/{webhook.id}/")) == one
