"""The forms that start a run carry a one-time token: submitted twice, they start one run and
both submits land on it. A fresh rendering of the form starts a new one."""

import re

import pytest
from django.utils import timezone

from runs.models import Run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def token_in(html: str) -> str:
    return re.search(r'<input type="hidden" name="submission" value="([0-9a-f]{32})">', html)[1]


@pytest.fixture
def engineer(client, make_user):
    client.force_login(make_user("engineer"))
    return client


def test_the_start_form_submitted_twice_starts_one_run(engineer):
    token = token_in(engineer.get("/agents/").content.decode())
    form = {"agent": "demo-support", "input": '{"question": "A-1001?"}', "submission": token}
    first = engineer.post("/agents/start/", form)
    second = engineer.post("/agents/start/", form)
    run = Run.objects.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/runs/{run.id}/"
    fresh = token_in(engineer.get("/agents/").content.decode())
    assert fresh != token
    engineer.post("/agents/start/", {**form, "submission": fresh})
    assert Run.objects.count() == 2


def test_a_start_form_refused_leaves_its_token_free(engineer):
    token = token_in(engineer.get("/agents/").content.decode())
    form = {"agent": "demo-loop", "input": "{}", "max_tool_calls": "500", "submission": token}
    assert engineer.post("/agents/start/", form).status_code == 422  # above the policy
    assert engineer.post("/agents/start/", {**form, "max_tool_calls": "5"}).status_code == 302
    assert Run.objects.count() == 1


def test_the_re_execute_form_submitted_twice_starts_one_run(engineer):
    now = timezone.now()
    original = Run.objects.create(
        agent="demo-support", input={}, status="succeeded", started_at=now, finished_at=now
    )
    token = token_in(engineer.get(f"/runs/{original.id}/").content.decode())
    form = {"mode": "live", "on_divergence": "stop", "submission": token}
    first = engineer.post(f"/runs/{original.id}/replay/", form)
    second = engineer.post(f"/runs/{original.id}/replay/", form)
    replay = Run.objects.get(replay_of=original)
    assert first["Location"] == second["Location"] == f"/runs/{replay.id}/"
