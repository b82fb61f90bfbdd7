"""The engineer's journey in Chromium: start a demo-slow run from the agents page, watch it update
live on its page, cancel it, and see `cancelled` without reloading. A real Celery worker runs it."""

import re

import pytest
from playwright.sync_api import expect

from runs.models import Event, Run

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_engineer_starts_a_slow_run_watches_it_live_and_cancels_it(
    page_as, celery_worker, transactional_db
):
    page = page_as("engineer")
    page.goto("/agents/")
    page.get_by_label("Agent", exact=True).select_option("demo-slow")
    page.get_by_label("Input").fill('{"question": "Is the nightly batch done?"}')
    page.get_by_label("User ref").fill("cust-live-1")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}/$"))
    run = Run.objects.get(user_ref="cust-live-1")
    assert page.url.endswith(f"/runs/{run.id}/")
    assert run.agent == "demo-slow" and run.created_by.username == page.user.username

    # Everything from here on must arrive without a page load: this flag would not survive one.
    page.evaluate("window.__sameDocument = true")
    live_polls = []
    page.on("request", lambda r: "part=live" in r.url and live_polls.append(r.url))

    status = page.get_by_test_id("run-status")
    expect(status).to_have_text("running", timeout=30_000)
    # The worker's first step (a 20 s wait_for_batch call) appears while it is still running.
    step = page.locator("li.step.kind-tool_call").first
    expect(step).to_have_attribute("data-status", "running", timeout=15_000)
    expect(step).to_contain_text("wait_for_batch")
    expect(page.locator("[data-cap=max_wall_seconds] .bar-text")).to_contain_text("of 300 s")

    page.get_by_role("button", name="Cancel run").click()
    expect(status).to_have_text("cancelled", timeout=15_000)
    # The abandoned call is shown as cancelled too, and the run says why it ended.
    expect(step).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_role("alert")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True
    assert live_polls, "the page never polled for live updates"

    # Polling stopped once the run finished.
    polls_at_end = len(live_polls)
    page.wait_for_timeout(2_500)
    assert len(live_polls) == polls_at_end

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert Event.objects.filter(run=run, kind="tool_call", status="cancelled").exists()


def test_support_sees_agents_but_no_start_form(page_as):
    page = page_as("support")
    page.goto("/agents/")
    expect(page.get_by_role("heading", name="demo-slow")).to_be_visible()
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)
