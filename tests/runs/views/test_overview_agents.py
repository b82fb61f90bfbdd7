"""/ (overview) and /agents/: the numbers are right, each links to the runs it counts, and the
start form creates a run with the caps a role may ask for and lands on its page."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import Run
from runs.selectors.stats import WINDOWS, runs_over_time, window_bounds
from tests.runs.run_rows import make_run, make_steps

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def login(client, make_user, role):
    client.force_login(make_user(role))
    return client


def test_window_buckets_cover_the_window_and_count_what_falls_in_them():
    now = datetime(2025, 3, 10, 14, 25, tzinfo=UTC)
    bounds = window_bounds(WINDOWS["24h"], now)
    assert len(bounds) == 24
    assert bounds[-1] == (
        datetime(2025, 3, 10, 14, tzinfo=UTC),
        datetime(2025, 3, 10, 15, tzinfo=UTC),
    )
    assert bounds[0][0] == datetime(2025, 3, 9, 15, tzinfo=UTC)
    make_run(created_at=datetime(2025, 3, 10, 14, 5, tzinfo=UTC), cost_usd=Decimal("0.2"))
    make_run(created_at=datetime(2025, 3, 10, 14, 20, tzinfo=UTC), status="failed")
    make_run(created_at=datetime(2025, 3, 10, 9, 59, tzinfo=UTC), status="budget_exceeded",
             cap_hit="max_cost_usd")  # fmt: skip
    make_run(created_at=datetime(2025, 3, 9, 14, 59, tzinfo=UTC))  # before the window
    buckets = runs_over_time(WINDOWS["24h"], now)
    last, nine = buckets[-1], buckets[-6]
    assert (last["runs"], last["failures"], last["cap_hits"]) == (2, 1, 0)
    assert last["spend"] == Decimal("0.200081")
    assert nine["start"].hour == 9 and (nine["runs"], nine["cap_hits"]) == (1, 1)
    assert sum(b["runs"] for b in buckets) == 3


def test_overview_numbers_link_to_the_runs_they_count(client, make_user):
    now = timezone.now()
    make_run(created_at=now - timedelta(minutes=5), status="failed")
    make_run(created_at=now - timedelta(minutes=6), status="lost")
    capped = make_run(created_at=now - timedelta(minutes=7), status="budget_exceeded",
                      cap_hit="max_tool_calls")  # fmt: skip
    make_run(created_at=now - timedelta(minutes=8))
    html = login(client, make_user, "support").get("/").content.decode()
    totals = {
        n: unescape(href)
        for href, n in re.findall(r'<a href="([^"]+)" data-testid="total-\d">([^<]+)</a>', html)
    }
    assert set(totals) >= {"4", "2", "1"}
    # Following each total lists exactly the runs it counts.
    for number, href in totals.items():
        if number.startswith("$"):
            continue
        listed = client.get(href).content.decode().count('class="mono run-link"')
        assert listed == int(number), (number, href)
    assert parse_qs(urlsplit(totals["2"]).query)["status"] == ["failed", "lost"]
    # Each bar is a link with a readable title; the recent cap hit is listed.
    assert len(re.findall(r'<a href="/runs/\?since=[^"]*" aria-label="\d\d:00: ', html)) == 4 * 24
    assert "<title>" in html
    assert f'href="/runs/{capped.id}/"' in html and "?cap_hit=max_tool_calls" in html


def test_overview_lists_the_slowest_and_most_failing_tools(client, make_user):
    run = make_run(started_at=timezone.now() - timedelta(seconds=30))
    make_steps(run, 6)  # seq 1, 3, 5 are lookup_order tool calls of 8 ms
    slow = make_run(started_at=timezone.now() - timedelta(seconds=30))
    rows = make_steps(slow, 2, name="fetch_report", status="timeout")
    from runs.models import Event

    Event.objects.filter(id=rows[1]["id"]).update(
        ended_at=rows[1]["started_at"] + timedelta(seconds=2)
    )
    html = login(client, make_user, "support").get("/").content.decode()
    slowest = html[html.index("Slowest tools") : html.index("Most failing tools")]
    assert slowest.index("fetch_report") < slowest.index("lookup_order")
    assert "2.00 s" in slowest
    failing = html[html.index("Most failing tools") : html.index("Recent cap hits")]
    assert "fetch_report" in failing and "lookup_order" not in failing
    failed_link = re.search(
        r'<a href="([^"]*tool=fetch_report[^"]*tool_failed=on[^"]*)">1</a>', failing
    )
    assert failed_link
    listed = client.get(unescape(failed_link.group(1))).content.decode()
    assert f'href="/runs/{slow.id}/"' in listed and f'href="/runs/{run.id}/"' not in listed


def test_overview_query_count_does_not_grow(client, make_user):
    login(client, make_user, "support")

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/?window=7d").status_code == 200
        return len(ctx.captured_queries)

    make_run(status="budget_exceeded", cap_hit="max_cost_usd")
    small = count()
    for _ in range(30):
        make_steps(make_run(status="budget_exceeded", cap_hit="max_tool_calls"), 3)
    assert count() == small


def test_agents_page_shows_registered_agents_caps_and_recent_numbers(client, make_user):
    make_run(agent="demo-loop", status="budget_exceeded", cap_hit="max_tool_calls")
    make_run(agent="demo-loop")
    make_run(agent="somebody-elses-agent", source="external")
    html = login(client, make_user, "support").get("/agents/").content.decode()
    for name in ("demo-support", "demo-loop", "demo-spender", "demo-slow", "demo-hang",
                 "demo-broken"):  # fmt: skip
        assert f'data-agent="{name}"' in html
    loop = html[html.index('data-agent="demo-loop"') :]
    loop = loop[: loop.index("</section>")]
    assert "2 runs</a>" in loop and "1 cap hit</a>" in loop
    assert "<dt>Max tool calls</dt><dd>20</dd>" in loop and "<dd>$0.50</dd>" in loop
    # Each tool's own timeout, not the cap's 10 s, is what applies to its calls.
    hang = html[html.index('data-agent="demo-hang"') :]
    assert "<dt>Tool timeouts</dt><dd>fetch_report 2 s</dd>" in hang[: hang.index("</section>")]
    support = html[html.index('data-agent="demo-support"') :]
    support = support[: support.index("</section>")]
    assert "<dd>lookup_order 5 s, search_kb 5 s</dd>" in support
    assert "Other agents seen" in html and "somebody-elses-agent" in html


def test_starting_a_run_lands_on_its_page_with_what_was_asked(client, make_user):
    login(client, make_user, "engineer")
    response = client.post("/agents/start/", {
        "agent": "demo-loop", "input": '{"question": "stock?"}', "user_ref": "cust-3",
        "session_ref": "s-3", "tags": "vip, urgent ,", "max_tool_calls": "5",
    })  # fmt: skip
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/"
    assert (run.agent, run.status, run.user_ref, run.session_ref) == (
        "demo-loop", "queued", "cust-3", "s-3")  # fmt: skip
    assert run.input == {"question": "stock?"} and run.tags == ["vip", "urgent"]
    assert run.caps["max_tool_calls"] == 5 and run.created_by.username.startswith("engineer")


def test_the_start_form_reports_bad_input_and_caps_it_may_not_raise(client, make_user):
    login(client, make_user, "engineer")
    bad_json = client.post("/agents/start/", {"agent": "demo-loop", "input": "{nope"})
    assert bad_json.status_code == 422 and "Not valid JSON" in bad_json.content.decode()
    raised = client.post(
        "/agents/start/", {"agent": "demo-loop", "input": "{}", "max_tool_calls": "500"}
    )
    assert raised.status_code == 422
    assert "only an admin may raise a cap" in raised.content.decode()
    unknown = client.post("/agents/start/", {"agent": "no-such-agent", "input": "{}"})
    assert unknown.status_code == 422
    assert Run.objects.count() == 0
    # An admin may raise a cap above the policy.
    login(client, make_user, "admin")
    ok = client.post(
        "/agents/start/", {"agent": "demo-loop", "input": "{}", "max_tool_calls": "500"}
    )
    assert ok.status_code == 302 and Run.objects.get().caps["max_tool_calls"] == 500


@pytest.mark.parametrize("levels", [101, 100_000])
def test_the_start_form_refuses_input_nested_past_100_levels(client, make_user, levels):
    login(client, make_user, "engineer")
    nested = "[" * levels + "]" * levels
    deep = client.post("/agents/start/", {"agent": "demo-loop", "input": nested})
    assert deep.status_code == 422  # 100,000 levels overflowed the JSON decoder: it was a 500
    assert "Nested more than 100 levels deep." in deep.content.decode()
    taken = client.post("/agents/start/", {"agent": "demo-loop", "input": "[" * 100 + "]" * 100})
    assert taken.status_code == 302 and Run.objects.count() == 1
