"""The role matrix of DESIGN §10 on every page URL: anonymous users are sent to log in, users
without a role are refused, support reads, engineers and admins also act. The checks live in the
views, so a forged POST from support is answered 403 and changes nothing."""

import pytest

from runs.models import Run
from tests.runs.run_rows import make_run, make_steps

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def run():
    run = make_run(status="running", finished_at=None, wall_ms=None, output=None)
    make_steps(run, 3)
    return run


def read_urls(run):
    return [
        ("/", {}),
        ("/?window=30d", {}),
        ("/runs/", {}),
        (f"/runs/?q={run.user_ref or 'x'}", {}),
        (f"/runs/{run.id}/", {}),
        (f"/runs/{run.id}/?part=live", HTMX),
        (f"/runs/{run.id}/steps/?after=0", HTMX),
        (f"/runs/{run.id}/steps/1/", {}),
        (f"/runs/{run.id}/steps/1/", HTMX),
        (f"/runs/{run.id}/export.json", {}),
        ("/agents/", {}),
    ]


def act(client, run):
    """The two page actions, as POSTs with valid data."""
    return [
        client.post(f"/runs/{run.id}/cancel/"),
        client.post("/agents/start/", {"agent": "demo-support", "input": '{"question": "hi"}'}),
    ]


def test_anonymous_users_are_sent_to_log_in_everywhere(client, run):
    for url, headers in read_urls(run):
        response = client.get(url, **headers)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url
    for response in act(client, run):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert Run.objects.count() == 1
    assert Run.objects.get().status == "running"


def test_users_without_a_role_are_refused_everywhere(client, make_user, run):
    client.force_login(make_user(None))
    for url, headers in read_urls(run):
        assert client.get(url, **headers).status_code == 403, url
    assert [r.status_code for r in act(client, run)] == [403, 403]


@pytest.mark.parametrize("role", ["support", "engineer", "admin"])
def test_every_role_reads_every_page(client, make_user, run, role):
    client.force_login(make_user(role))
    for url, headers in read_urls(run):
        response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code)


def test_a_forged_post_from_support_is_refused_and_changes_nothing(client, make_user, run):
    client.force_login(make_user("support"))
    cancel, start = act(client, run)
    assert cancel.status_code == 403
    assert start.status_code == 403
    run.refresh_from_db()
    assert run.status == "running" and run.cancel_requested_at is None
    assert Run.objects.count() == 1
    # Also with htmx's headers, as the page's own button would send it.
    assert client.post(f"/runs/{run.id}/cancel/", **HTMX).status_code == 403


@pytest.mark.parametrize("role", ["engineer", "admin"])
def test_engineers_and_admins_may_act(client, make_user, run, role):
    client.force_login(make_user(role))
    cancel, start = act(client, run)
    assert cancel.status_code == 302 and cancel["Location"] == f"/runs/{run.id}/"
    run.refresh_from_db()
    assert run.cancel_requested_at is not None
    assert start.status_code == 302
    started = Run.objects.exclude(id=run.id).get()
    assert start["Location"] == f"/runs/{started.id}/"


@pytest.mark.parametrize("role", ["support", "engineer"])
def test_actions_only_accept_post(client, make_user, run, role):
    client.force_login(make_user(role))
    assert client.get(f"/runs/{run.id}/cancel/").status_code == 405
    assert client.get("/agents/start/").status_code == 405


def test_support_sees_no_cancel_button_engineer_does(client, make_user, run):
    client.force_login(make_user("support"))
    assert b"Cancel run" not in client.get(f"/runs/{run.id}/").content
    client.force_login(make_user("engineer"))
    assert b"Cancel run" in client.get(f"/runs/{run.id}/").content


@pytest.mark.parametrize("role, sees_form", [("support", False), ("engineer", True)])
def test_start_form_is_shown_to_those_who_may_start(client, make_user, role, sees_form):
    client.force_login(make_user(role))
    html = client.get("/agents/").content.decode()
    assert ('action="/agents/start/"' in html) is sees_form


@pytest.mark.parametrize("role", ["support", "engineer", "admin"])
def test_navigation_lists_the_pages(client, make_user, role):
    client.force_login(make_user(role))
    html = client.get("/runs/").content.decode()
    nav = html[html.index('<nav aria-label="Main">') : html.index("</nav>")]
    for label, url in (("Overview", "/"), ("Runs", "/runs/"), ("Agents", "/agents/")):
        assert f'<a href="{url}"' in nav and f">{label}</a>" in nav
    assert 'href="/runs/" aria-current="page"' in nav


def test_unknown_runs_and_steps_are_404(client, make_user, run):
    client.force_login(make_user("support"))
    assert client.get("/runs/0190f0f0-0000-7000-8000-000000000000/").status_code == 404
    assert client.get("/runs/not-a-run/").status_code == 404
    assert client.get(f"/runs/{run.id}/steps/99/").status_code == 404
