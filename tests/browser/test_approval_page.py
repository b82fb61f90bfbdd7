"""An engineer's journey in Chromium with a real worker: the Overview shows a run awaiting
approval, its page says what it holds, the engineer extends the cap from the page, and the page
goes live again until the run finishes."""

import re

import pytest
from playwright.sync_api import expect

from runs.models import ModelPrice
from runs.services import caps
from runs.services.runs import run_create
from tests.agents import WINDOW_MODEL
from tests.runs.run_rows import wait_for

pytestmark = pytest.mark.browser
SPEND = "max_cost_usd"


def test_an_engineer_approves_a_waiting_run_and_the_page_goes_live_again(
    page_as, celery_worker, transactional_db
):
    ModelPrice.objects.create(model=WINDOW_MODEL, input_per_mtok=1, output_per_mtok=40)
    caps.cap_policy_set(
        scope="test-spend", values={"on_cap": "ask", "max_extension": {SPEND: "0.01"}}
    )
    run = run_create(agent="test-spend", input={"calls": 2}, caps={SPEND: "0.0021"})
    wait_for(run.id, {"awaiting_approval"})

    page = page_as("engineer")
    page.goto("/")
    page.get_by_test_id("awaiting-count").click()
    page.wait_for_url(re.compile(r"/runs/\?status=awaiting_approval"))
    page.get_by_role("link", name=str(run.id)).first.click()
    page.wait_for_url(re.compile(rf"/runs/{run.id}/"))

    waiting = page.get_by_test_id("awaiting-approval")
    expect(waiting).to_contain_text(SPEND)
    expect(waiting).to_contain_text("it has used $0.002011 of $0.0021")
    expect(waiting).to_contain_text("Spent so far: $0.002011, 0 tool calls, 1 model call")
    expect(page.get_by_test_id("run-status")).to_have_text("awaiting_approval")
    # The page keeps polling while the run waits, and what is typed stays put.
    page.get_by_label(f"Extend {SPEND} to").fill("0.01")
    page.wait_for_timeout(2500)
    expect(page.get_by_label(f"Extend {SPEND} to")).to_have_value("0.01")
    page.get_by_role("button", name="Extend and go on").click()

    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=20_000)
    expect(page.get_by_test_id("awaiting-approval")).to_have_count(0)
    expect(page.get_by_test_id("waited")).to_be_visible()
    expect(page.locator("#steps li.step[data-status=running]")).to_have_count(0)
    assert wait_for(run.id).model_calls == 2
