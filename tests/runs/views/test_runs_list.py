"""/runs/: what the search box does with an id, a prefix, a ref or text; the filters and sort in
the URL; pages by cursor; htmx fragments that keep the URL; a constant number of queries."""

import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def support(client, make_user):
    client.force_login(make_user("support"))
    return client


def ids_in(response) -> list[str]:
    html = response.content.decode()
    found = []
    for run in Run.objects.all():
        at = html.find(f'class="mono run-link" href="/runs/{run.id}/"')
        if at >= 0:
            found.append((at, str(run.id)))
    return [run_id for _, run_id in sorted(found)]


def test_each_row_shows_the_run_with_every_value_escaped(support):
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    capped = make_run(status="budget_exceeded", cap_hit="max_cost_usd",
                      error_code="budget_exceeded", user_ref="a&b <x>",
                      input={"q": "<b>bold</b>"}, created_at=at,
                      wall_ms=1500, tool_calls=7, cost_usd=Decimal("0.0125"))  # fmt: skip
    failed = make_run(status="failed", error_code="agent_error", user_ref="", source="external",
                      created_at=at - timedelta(minutes=1))  # fmt: skip
    html = support.get("/runs/").content.decode()
    assert (
        f'<td><a class="mono run-link" href="/runs/{capped.id}/">{capped.id}</a></td>\n'
        '<td><span class="status status-budget_exceeded">budget_exceeded</span>'
        '<br><span class="cap-hit">max_cost_usd</span></td>\n'
        '<td class="agent">demo-support</td>\n'
        '<td class="user"><a href="/runs/?q=a%26b%20%3Cx%3E">a&amp;b &lt;x&gt;</a></td>\n'
        '<td class="preview">{&quot;q&quot;: &quot;&lt;b&gt;bold&lt;/b&gt;&quot;}</td>\n'
        f'<td class="nowrap">{at:%Y-%m-%d %H:%M:%S}</td>\n'
        '<td class="num">1.50 s</td>\n<td class="num">7</td>\n<td class="num">$0.0125</td>'
    ) in html
    assert (
        '<span class="status status-failed">failed</span><br><span class="muted">agent_error'
        '</span></td>\n<td class="agent">demo-support <span class="muted">(external)</span></td>'
        '\n<td class="user"><span class="muted">—</span></td>'
    ) in html
    assert ids_in(support.get("/runs/")) == [str(capped.id), str(failed.id)]


def test_a_full_id_opens_the_run(support):
    run = make_run()
    response = support.get("/runs/", {"q": f"  {run.id} "})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/"


def test_a_unique_prefix_opens_the_run_and_htmx_gets_a_client_redirect(support):
    run = make_run()
    response = support.get("/runs/", {"q": str(run.id)[:8]})
    assert response["Location"] == f"/runs/{run.id}/"
    response = support.get("/runs/", {"q": str(run.id)[:13]}, **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/runs/{run.id}/"


def test_an_ambiguous_prefix_lists_the_candidates(support):
    base = "0000abcd12"  # no run made now starts like this
    a = make_run(id=uuid.UUID(f"{base}{'0' * 22}"))
    b = make_run(id=uuid.UUID(f"{base}{'f' * 22}"))
    other = make_run()
    response = support.get("/runs/", {"q": base})
    assert response.status_code == 200
    assert "Several runs start with" in response.content.decode()
    assert set(ids_in(response)) == {str(a.id), str(b.id)}
    assert str(other.id) not in ids_in(response)


def test_a_user_ref_or_session_ref_lists_that_users_runs(support):
    now = timezone.now()
    mine = [make_run(user_ref="cust-7", created_at=now - timedelta(minutes=i)) for i in range(3)]
    make_run(user_ref="cust-8")
    session = make_run(session_ref="chat-99")
    response = support.get("/runs/", {"q": "cust-7"})
    assert ids_in(response) == [str(r.id) for r in mine]
    assert "Runs for user ref <strong>cust-7</strong>" in response.content.decode()
    assert ids_in(support.get("/runs/", {"q": "chat-99"})) == [str(session.id)]


def test_other_text_searches_inputs_outputs_and_errors(support):
    by_input = make_run(input={"question": "Where is the blue umbrella?"})
    by_output = make_run(output={"answer": "The umbrella shipped."})
    by_error = make_run(status="failed", error={"code": "agent_error", "message": "umbrella 502"})
    make_run(input={"question": "Where is my order?"})
    response = support.get("/runs/", {"q": "umbrella"})
    assert set(ids_in(response)) == {str(by_input.id), str(by_output.id), str(by_error.id)}


def test_an_id_that_matches_nothing_says_so(support):
    response = support.get("/runs/", {"q": "0123abcd"})
    assert response.status_code == 200
    assert "No run has an id starting with" in response.content.decode()


def test_filters_combine_and_the_form_shows_them(support):
    now = timezone.now()
    hit = make_run(agent="demo-loop", status="budget_exceeded", cap_hit="max_tool_calls",
                   error_code="budget_exceeded", tags=["vip", "eu"], cost_usd=Decimal("0.3"),
                   created_at=now - timedelta(hours=2))  # fmt: skip
    make_run(agent="demo-loop", status="succeeded", tags=["vip"], cost_usd=Decimal("0.3"))
    make_run(agent="demo-loop", status="budget_exceeded", cap_hit="max_tool_calls",
             created_at=now - timedelta(days=3))  # fmt: skip
    make_run(agent="demo-spender", status="budget_exceeded", cap_hit="max_cost_usd")
    params = {"agent": "demo-loop", "status": ["budget_exceeded", "failed"], "cap_hit":
              "max_tool_calls", "error_code": "budget_exceeded", "tag": "eu", "period": "24h",
              "cost_min": "0.2", "cost_max": "0.5", "source": "internal"}  # fmt: skip
    response = support.get("/runs/", params)
    assert ids_in(response) == [str(hit.id)]
    html = response.content.decode()
    assert 'name="status" value="budget_exceeded" checked' in html
    assert '<option value="max_tool_calls" selected>' in html
    assert '<details class="more-filters" open>' in html
    assert ids_in(support.get("/runs/", {"cap_hit": "any", "agent": "demo-spender"})) != []


def test_time_range_and_tool_filters(support):
    now = timezone.now()
    early = make_run(created_at=now - timedelta(days=2))
    late = make_run(created_at=now - timedelta(hours=1))
    since = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids_in(support.get("/runs/", {"since": since})) == [str(late.id)]
    assert ids_in(support.get("/runs/", {"until": since})) == [str(early.id)]
    make_steps(late, 2)  # seq 1 is a lookup_order tool call
    make_steps(early, 2, status="error")
    assert ids_in(support.get("/runs/", {"tool": "lookup_order"})) == [str(late.id), str(early.id)]
    assert ids_in(support.get("/runs/", {"tool": "lookup_order", "tool_failed": "on"})) == [
        str(early.id)
    ]


def test_bad_filter_values_are_reported_and_ignored(support):
    run = make_run()
    response = support.get("/runs/", {"cost_min": "lots", "since": "yesterday", "status": "nope"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Some filters were not understood" in html
    assert ids_in(response) == [str(run.id)]


def test_sort_orders(support):
    now = timezone.now()
    cheap = make_run(cost_usd=Decimal("0.01"), wall_ms=50, created_at=now - timedelta(minutes=3))
    dear = make_run(cost_usd=Decimal("0.40"), wall_ms=10, created_at=now - timedelta(minutes=2))
    unfinished = make_run(cost_usd=Decimal("0.02"), wall_ms=None, created_at=now)
    order = lambda sort: ids_in(support.get("/runs/", {"sort": sort}))  # noqa: E731
    assert order("newest") == [str(unfinished.id), str(dear.id), str(cheap.id)]
    assert order("oldest") == [str(cheap.id), str(dear.id), str(unfinished.id)]
    assert order("cost") == [str(dear.id), str(unfinished.id), str(cheap.id)]
    assert order("duration") == [str(cheap.id), str(dear.id), str(unfinished.id)]


def test_pages_follow_the_cursor_and_keep_the_filters(support):
    now = timezone.now()
    runs = [make_run(agent="demo-loop", created_at=now - timedelta(seconds=i)) for i in range(120)]
    make_run(agent="demo-support")
    seen, url = [], "/runs/?agent=demo-loop"
    while url:
        response = support.get(url)
        seen += ids_in(response)
        html = response.content.decode()
        marker = 'rel="next"'
        if marker not in html:
            break
        start = html.rindex('href="', 0, html.index(marker)) + len('href="')
        url = html[start : html.index('"', start)].replace("&amp;", "&")
        assert parse_qs(urlsplit(url).query)["agent"] == ["demo-loop"]
    assert seen == [str(r.id) for r in runs]


def test_a_broken_cursor_shows_the_first_page_with_a_note(support):
    run = make_run()
    response = support.get("/runs/", {"cursor": "garbage"})
    assert "not valid any more" in response.content.decode()
    assert ids_in(response) == [str(run.id)]


def test_htmx_gets_only_the_results_and_a_clean_url_to_show(support):
    make_run(agent="demo-loop")
    response = support.get(
        "/runs/", {"q": "", "agent": "demo-loop", "status": "", "sort": "newest"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="results"') and "<html" not in html
    assert response["HX-Push-Url"] == "/runs/?agent=demo-loop"
    assert "HX-Request" in response["Vary"]
    # A history restore asks for the whole page.
    full = support.get("/runs/?agent=demo-loop", HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)
    assert "<html" in full.content.decode()


def _count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url",
    ["/runs/", "/runs/?q=cust-1", "/runs/?q=umbrella", "/runs/?status=failed&tag=vip&sort=cost",
     "/runs/?tool=lookup_order"],
)  # fmt: skip
def test_the_list_runs_a_constant_number_of_queries(support, url):
    def add(n):
        for i in range(n):
            run = make_run(user_ref="cust-1", status="failed", tags=["vip"],
                           input={"question": f"umbrella {i}"}, replay_of=None)  # fmt: skip
            make_steps(run, 2)

    add(2)
    small = _count_queries(support, url)
    add(80)
    large = _count_queries(support, url)
    assert small == large
    assert large <= 8
