"""A running run whose worker went quiet is shown as such at once, in the API and the pages,
before the reaper ends it `lost`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run

pytestmark = pytest.mark.django_db


def running(silent_for: timedelta, **fields) -> Run:
    now = timezone.now()
    return Run.objects.create(
        agent="demo-support", input={}, status="running", started_at=now - silent_for,
        heartbeat_at=now - silent_for, **fields,
    )  # fmt: skip


def test_the_api_shows_how_long_a_running_run_has_been_silent(client, make_key):
    quiet = running(timedelta(minutes=4, seconds=3))
    alive = running(timedelta(seconds=0))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_key('runs:read')}"}
    body = client.get(f"/api/v1/runs/{quiet.id}", **auth).json()
    assert body["status"] == "running" and 243 <= body["no_heartbeat_seconds"] < 250
    assert body["heartbeat_at"] is not None
    assert client.get(f"/api/v1/runs/{alive.id}", **auth).json()["no_heartbeat_seconds"] is None
    listed = {r["id"]: r for r in client.get("/api/v1/runs", **auth).json()["items"]}
    assert listed[str(quiet.id)]["no_heartbeat_seconds"] >= 243
    assert listed[str(alive.id)]["no_heartbeat_seconds"] is None


def test_a_finished_or_external_run_has_no_silence(client, make_key):
    external = running(timedelta(hours=1), source="external")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_key('runs:read')}"}
    assert client.get(f"/api/v1/runs/{external.id}", **auth).json()["no_heartbeat_seconds"] is None


def test_the_pages_say_no_heartbeat_for_4_min(client, make_user):
    client.force_login(make_user("support"))
    quiet = running(timedelta(minutes=4, seconds=3))
    html = client.get(f"/runs/{quiet.id}/").content.decode()
    assert 'data-testid="run-status">running</span>, ' in html
    assert "no heartbeat for 4 min" in html
    assert "no heartbeat for 4 min" in client.get("/runs/").content.decode()
