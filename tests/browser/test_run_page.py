"""Support's journeys in Chromium: paste a run id and land on the run, read a step's full prompt;
search a user ref and see that user's runs; a long timeline loads more steps on scroll; the pages
work without JavaScript."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Event
from tests.conftest import PASSWORD
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.browser

LONG_PROMPT = "My parcel A-1001 was due on Monday. " * 40 + "Please tell me where it is."


def _run_with_prompt():
    run = make_run(user_ref="cust-prompt", input={"question": LONG_PROMPT})
    make_steps(run, 4)
    Event.objects.filter(run=run, seq=0).update(
        input={
            "messages": [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": LONG_PROMPT},
            ]
        }  # fmt: skip
    )
    return run


def test_support_pastes_a_run_id_lands_on_the_run_and_reads_the_full_prompt(page_as):
    run = _run_with_prompt()
    make_run(user_ref="someone-else")
    page = page_as("support")
    page.goto("/runs/")
    page.get_by_label("Search runs").fill(f"  {run.id}  ")
    page.get_by_label("Search runs").press("Enter")
    page.wait_for_url(re.compile(rf"/runs/{run.id}/$"))
    expect(page.get_by_role("heading", name=re.compile("Run"))).to_contain_text(str(run.id))
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")

    # On the timeline, bodies are not on the page until a step is opened; then they come from
    # the server.
    page.get_by_test_id("tab-timeline").click()
    page.wait_for_url(re.compile(r"view=timeline"))
    assert LONG_PROMPT.strip() not in page.locator("#timeline").inner_html()
    page.locator("#step-0 summary").click()
    body = page.locator("#step-0").get_by_test_id("step-body")
    expect(body).to_be_visible()
    expect(body.locator(".prompt")).to_contain_text("Please tell me where it is.")
    expect(body.locator(".prompt")).to_contain_text(LONG_PROMPT.strip()[:200])
    assert LONG_PROMPT.strip() in body.locator(".prompt li").nth(1).inner_text()


def test_support_opens_a_run_from_the_quick_find_with_an_id_prefix(page_as):
    run = make_run()
    page = page_as("support")
    page.get_by_label("Find a run").fill(str(run.id)[:13])
    page.get_by_label("Find a run").press("Enter")
    page.wait_for_url(re.compile(rf"/runs/{run.id}/$"))


def test_support_searching_a_user_ref_sees_that_users_runs(page_as):
    now = timezone.now()
    theirs = [
        make_run(user_ref="cust-4242", created_at=now - timedelta(minutes=i)) for i in range(3)
    ]
    others = [make_run(user_ref="cust-9999"), make_run(user_ref="")]
    page = page_as("support")
    page.goto("/runs/")
    page.get_by_label("Search runs").fill("cust-4242")
    page.get_by_role("button", name="Search").click()
    table = page.get_by_test_id("runs-table")
    expect(page.get_by_text("Runs for user ref cust-4242")).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(3)
    for run in theirs:
        expect(table).to_contain_text(str(run.id))
    for run in others:
        expect(table).not_to_contain_text(str(run.id))
    # The results came in place (htmx), and the address bar holds the search, ready to share.
    assert page.url.endswith("/runs/?q=cust-4242")
    page.reload()
    expect(page.get_by_test_id("runs-table").locator("tbody tr")).to_have_count(3)


def test_a_filter_change_updates_the_list_and_the_url(page_as):
    make_run(agent="demo-loop", status="budget_exceeded", cap_hit="max_tool_calls",
             error_code="budget_exceeded")  # fmt: skip
    make_run(agent="demo-support")
    page = page_as("support")
    page.goto("/runs/")
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Stopped by cap").select_option("max_tool_calls")
    expect(page.get_by_test_id("runs-table").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("runs-table")).to_contain_text("demo-loop")
    expect(page).to_have_url(re.compile(r"/runs/\?.*cap_hit=max_tool_calls"))


def test_a_long_timeline_loads_more_steps_on_scroll(page_as):
    run = make_run()
    make_steps(run, 250)
    page = page_as("support")
    page.goto(f"/runs/{run.id}/?view=timeline")
    steps = page.locator("#steps li.step")
    expect(steps).to_have_count(100)
    page.locator("#steps li.more").scroll_into_view_if_needed()
    expect(steps).to_have_count(200)
    page.locator("#steps li.more").scroll_into_view_if_needed()
    expect(steps).to_have_count(250)
    expect(page.locator("#steps li.more")).to_have_count(0)
    seqs = [int(s) for s in steps.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(250))
    # No step body was fetched by scrolling.
    expect(page.get_by_test_id("step-body")).to_have_count(0)


def test_basic_navigation_works_without_javascript(chromium, live_server, make_user):
    user = make_user("support")
    run = _run_with_prompt()
    make_steps(run, 130, start_seq=4)
    context = chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    page.get_by_label("Search runs").fill("cust-prompt")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=str(run.id)).click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    # The transcript is there without JavaScript, its next page a link away.
    expect(page.locator("#transcript")).to_contain_text("Please tell me where it is.")
    page.get_by_role("link", name="More after step #49").click()
    expect(page.locator("#transcript .t-seq").first).to_have_text("#50")
    page.go_back()
    # On the timeline, a step opens on a page of its own; the next steps are a link away.
    page.get_by_role("link", name="Timeline").click()
    page.locator("#step-0 summary").click()
    page.get_by_role("link", name="Open step #0 on its own page").click()
    expect(page.get_by_test_id("step-input")).to_contain_text("Please tell me where it is.")
    page.go_back()
    page.get_by_role("link", name="More steps after #99").click()
    expect(page.locator("#steps li.step").first).to_have_attribute("data-seq", "100")
    context.close()
