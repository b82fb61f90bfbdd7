"""The API keys page: admins create (secret shown once), list (last used) and revoke keys."""

import re
import uuid

import pytest
from django.test import Client

from runs.models import ApiKey
from tests.ingest.conftest import post_json

pytestmark = pytest.mark.django_db


def secret_in(html: str) -> str:
    return re.search(r'id="new-key-secret">(ao_[^<]+)<', html).group(1)


def ingest_one(client, secret):
    run = {"id": str(uuid.uuid4()), "agent": "remote-bot"}
    return post_json(client, "/api/v1/ingest", {"runs": [run]}, secret)


def test_an_admin_creates_a_key_sees_it_once_and_it_works_at_once(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)

    response = client.post("/keys/", {"name": "billing-agent", "scopes": ["ingest"]})

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    secret = secret_in(response.content.decode())
    key = ApiKey.objects.get()
    assert (key.name, key.scopes, key.created_by) == ("billing-agent", ["ingest"], admin)
    assert secret not in key.key_hash and secret.startswith(key.prefix)
    assert ingest_one(client, secret).status_code == 200
    listing = client.get("/keys/").content.decode()
    assert secret not in listing and key.prefix in listing


def test_the_list_shows_scopes_creator_and_when_each_key_was_last_used(client, make_user):
    client.force_login(make_user("admin", username="ana"))
    client.post("/keys/", {"name": "used", "scopes": ["ingest", "runs:read"]})
    secret = secret_in(
        client.post("/keys/", {"name": "unused", "scopes": ["ingest"]}).content.decode()
    )
    ingest_one(client, secret)  # "unused" is the one that gets used; the names are for people

    html = client.get("/keys/").content.decode()

    row = re.compile(r'<tr data-key="\d+".*?<th scope="row">([^<]+)</th>.*?</tr>', re.S)
    rows = {m.group(1): m.group(0) for m in row.finditer(html)}
    assert set(rows) == {"used", "unused"}
    assert "ingest, runs:read" in rows["used"] and "by ana" in rows["used"]
    assert "never" in rows["used"] and "never" not in rows["unused"]


def test_revoking_a_key_stops_it_at_once(client, make_user):
    agent = Client()  # the program holding the key: no browser session
    client.force_login(make_user("admin"))
    secret = secret_in(client.post("/keys/", {"name": "k", "scopes": ["ingest"]}).content.decode())
    assert ingest_one(agent, secret).status_code == 200
    key = ApiKey.objects.get()

    response = client.post(f"/keys/{key.id}/revoke/", follow=True)

    assert response.redirect_chain[-1][0] == "/keys/"
    assert "Revoked k" in response.content.decode()
    assert ingest_one(agent, secret).status_code == 401
    # A refused key is refused even beside a logged-in session.
    assert ingest_one(client, secret).status_code == 401
    assert f'action="/keys/{key.id}/revoke/"' not in response.content.decode()
    assert ApiKey.objects.get().revoked_at is not None


def test_a_key_needs_a_name_and_a_scope(client, make_user):
    client.force_login(make_user("admin"))

    response = client.post("/keys/", {"name": "", "scopes": []})

    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("role", ["support", "engineer", None])
def test_only_admins_reach_the_keys_page(client, make_user, role):
    client.force_login(make_user(role))
    other = ApiKey.objects.create(name="x", prefix="ao_abc", key_hash="h" * 64, scopes=["ingest"])

    assert client.get("/keys/").status_code == 403
    assert client.post("/keys/", {"name": "n", "scopes": ["admin"]}).status_code == 403
    assert client.post(f"/keys/{other.id}/revoke/").status_code == 403
    assert list(ApiKey.objects.values_list("name", "revoked_at")) == [("x", None)]


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/keys/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("role, shown", [("admin", True), ("engineer", False)])
def test_the_navigation_offers_api_keys_to_admins_only(client, make_user, role, shown):
    client.force_login(make_user(role))
    html = client.get("/").content.decode()
    nav = html[html.index('<nav aria-label="Main">') : html.index("</nav>")]
    assert ('href="/keys/"' in nav) is shown
