"""The replay pages: re-execute form (POST), playback and compare, by role."""

from decimal import Decimal

import pytest
from django.utils import timezone

from runs.models import Event, Run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def finished_run(agent="demo-support", **fields) -> Run:
    now = timezone.now()
    fields.setdefault("input", {"question": "Where is A-1001?"})
    fields.setdefault("status", "succeeded")
    return Run.objects.create(agent=agent, started_at=now, finished_at=now, **fields)


def add_steps(run, steps):
    start = run.started_at
    for seq, (kind, name, output, extra) in enumerate(steps):
        Event.objects.create(
            run=run, seq=seq, kind=kind, name=name, output=output, status="ok",
            started_at=start + timezone.timedelta(seconds=seq), **extra,
        )  # fmt: skip


def test_support_cannot_re_execute(client, make_user):
    client.force_login(make_user("support"))
    run = finished_run()
    assert client.post(f"/runs/{run.id}/replay/", {"mode": "live"}).status_code == 403
    assert Run.objects.count() == 1


def test_engineer_re_executes_and_lands_on_the_new_run(client, make_user):
    client.force_login(make_user("engineer"))
    run = finished_run()
    response = client.post(
        f"/runs/{run.id}/replay/", {"mode": "recorded_model", "max_tool_calls": "5"}
    )
    new = Run.objects.exclude(id=run.id).get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{new.id}/"
    assert new.replay_of_id == run.id and new.replay_mode == "recorded_model"
    assert new.caps["max_tool_calls"] == 5


@pytest.mark.parametrize(
    "agent, source, post, expected",
    [("their-agent", "external", {"mode": "live"}, "elsewhere"),
     ("demo-support", "internal", {"mode": "live", "max_tool_calls": "500"}, "only an admin"),
     ("demo-support", "internal", {"mode": "nope"}, "mode must be")],
)  # fmt: skip
def test_a_refused_re_execution_says_why_and_creates_nothing(
    client, make_user, agent, source, post, expected
):
    client.force_login(make_user("engineer"))
    run = finished_run(agent=agent, source=source)
    response = client.post(f"/runs/{run.id}/replay/", post, follow=True)
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert Run.objects.count() == 1


def test_playback_steps_through_with_the_spend_so_far(client, make_user):
    client.force_login(make_user("support"))
    run = finished_run()
    add_steps(run, [
        ("model_call", "scripted-mini", {"content": "thinking"},
         {"input": {"messages": [{"role": "user", "content": "<b>hi</b>"}]},
          "cost_usd": Decimal("0.01"), "input_tokens": 10, "output_tokens": 5}),
        ("tool_call", "lookup_order", {"found": True}, {"input": {"order_id": "A-1001"}}),
        ("tool_call", "search_kb", [], {}),
    ])  # fmt: skip
    first = client.get(f"/runs/{run.id}/playback/").content.decode()
    assert "Step <strong>1</strong> of 3" in first
    assert "&lt;b&gt;hi&lt;/b&gt;" in first and "<b>hi</b>" not in first
    assert 'rel="next"' in first and 'href="?seq=1"' in first
    second = client.get(f"/runs/{run.id}/playback/?seq=1").content.decode()
    assert "Step <strong>2</strong> of 3" in second
    assert 'data-testid="spent-tool-calls">1' in second and "$0.010000" in second
    assert client.get(f"/runs/{run.id}/playback/?seq=9").status_code == 404
    assert client.get(f"/runs/{run.id}/playback/?seq=x").status_code == 404


def test_compare_highlights_the_first_divergence(client, make_user):
    client.force_login(make_user("support"))
    left, right = finished_run(), finished_run(status="failed")
    add_steps(left, [("tool_call", "a", {"v": 1}, {}), ("tool_call", "b", {"v": 2}, {})])
    add_steps(right, [("tool_call", "a", {"v": 1}, {}), ("tool_call", "b", {"v": 3}, {})])
    html = client.get(f"/runs/{left.id}/compare/{right.id}/").content.decode()
    assert "First divergence: step" in html and "seq 1 ↔ seq 1" in html
    assert 'id="pair-1" class="differs first-divergence"' in html
    assert "changed" in html


@pytest.mark.parametrize("url", ["/runs/{a}/playback/", "/runs/{a}/compare/{b}/"])
def test_replay_pages_need_a_login_and_a_role(client, make_user, url):
    a, b = finished_run(), finished_run()
    path = url.format(a=a.id, b=b.id)
    assert client.get(path).status_code == 302
    client.force_login(make_user(None))
    assert client.get(path).status_code == 403
