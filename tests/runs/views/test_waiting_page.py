"""/runs/waiting/: the runs awaiting approval for engineers, each with what it waits on and a
link to the page that answers it; not for support; text the agent wrote stays escaped."""

import pytest

from runs.models import Run
from tests.runs.views.test_approval_pages import SPEND, as_role, waiting

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]
URL = "/runs/waiting/"


def test_an_engineer_sees_each_waiting_run_and_what_it_waits_on(client, make_user):
    capped = waiting()
    tool = waiting(kind="tool", subject="<b>refund</b>")
    Run.objects.create(agent="demo-support", input={}, status="running")

    response = as_role(client, make_user, "engineer").get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<tr data-run=") == 2
    assert f'href="/runs/{capped.id}/"' in html and f'href="/runs/{tool.id}/"' in html
    assert f'the <strong class="mono">{SPEND}</strong> cap: $0.49 of $0.50' in html
    assert "(ceiling $1.00)" in html
    assert "&lt;b&gt;refund&lt;/b&gt;" in html and "<b>refund</b>" not in html
    assert html.index(str(capped.id)) < html.index(str(tool.id))  # longest-waiting first
    assert 'href="/runs/waiting/"' in html  # in the navigation


def test_nothing_waiting_says_so(client, make_user):
    html = as_role(client, make_user, "admin").get(URL).content.decode()
    assert "No run is waiting for approval." in html


def test_support_may_not_open_it_nor_sees_it_in_the_navigation(client, make_user):
    waiting()
    support = as_role(client, make_user, "support")
    assert support.get(URL).status_code == 403
    assert 'href="/runs/waiting/"' not in support.get("/runs/").content.decode()


def test_the_page_reads_the_same_number_of_queries_however_many_wait(
    client, make_user, django_assert_max_num_queries
):
    engineer = as_role(client, make_user, "engineer")
    waiting()
    engineer.get(URL)  # warm the session and the caps
    for _ in range(4):
        waiting()
    with django_assert_max_num_queries(8):
        response = engineer.get(URL)
    assert response.content.decode().count("<tr data-run=") == 5
