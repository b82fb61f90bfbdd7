"""Spend windows on the pages: the caps page lists them with their account and lets an admin add,
delete and backtest one; a run's page shows the windows that cover it."""

from decimal import Decimal

import pytest

from runs.models import SpendWindow
from runs.services.windows import window_create, windows_add_spend
from tests.runs.run_rows import finished_run, make_run

pytestmark = pytest.mark.django_db


def login(client, make_user, role):
    user = make_user(role)
    client.force_login(user)
    return client


def test_an_admin_adds_a_window_sees_its_account_and_deletes_it(client, make_user):
    login(client, make_user, "admin")
    added = client.post(
        "/caps/windows/", {"scope": "agent:demo-loop", "period": "day", "limit_usd": "5"}
    )
    assert added.status_code == 302 and added["Location"].endswith("#windows")
    window = SpendWindow.objects.get()
    windows_add_spend(spends=[(["agent:demo-loop"], Decimal("1.25"))])
    page = client.get("/caps/").content.decode()
    row = page[page.index(f'data-window="{window.id}"') :]
    assert "$1.2500 of $5.0000" in row[: row.index("</tr>")]
    assert "Added agent:demo-loop: $5.00 per day" in page
    bad = client.post("/caps/windows/", {"scope": "team:x", "period": "day", "limit_usd": "5"},
                      follow=True)  # fmt: skip
    assert "Spend window not added: scope:" in bad.content.decode()
    client.post(f"/caps/windows/{window.id}/delete/")
    assert not SpendWindow.objects.exists()


def test_engineers_cannot_touch_windows(client, make_user):
    login(client, make_user, "engineer")
    response = client.post("/caps/windows/", {"scope": "global", "period": "day", "limit_usd": "1"})
    assert response.status_code == 403 and not SpendWindow.objects.exists()


def test_a_window_backtest_says_which_runs_would_not_have_started(client, make_user):
    login(client, make_user, "admin")
    for ago in (30, 20, 10):  # demo-loop runs of $0.002 each, all today
        finished_run("demo-loop", [("model", "0.002"), "tool"], ago=ago)
    response = client.post(
        "/caps/windows/backtest/",
        {"scope": "agent:demo-loop", "period": "day", "limit_usd": "0.004"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    # $0.002, then $0.002 more: exactly the limit; the third run finds it spent.
    assert "1 of the last 3 finished runs would not have started" in html
    assert "0 would have stopped part way" in html and "would not have started</td>" in html
    bad = client.post("/caps/windows/backtest/", {"scope": "x", "period": "day", "limit_usd": "1"},
                      HTTP_HX_REQUEST="true")  # fmt: skip
    assert bad.status_code == 422 and "Fix this window" in bad.content.decode()


def test_a_run_page_shows_the_windows_covering_it(client, make_user):
    login(client, make_user, "support")
    window_create(scope="user:cust-9", period="week", limit_usd="2")
    window_create(scope="user:someone-else", period="week", limit_usd="2")
    run = make_run(user_ref="cust-9")
    html = client.get(f"/runs/{run.id}/").content.decode()
    assert 'data-window="user:cust-9"' in html and "someone-else" not in html
