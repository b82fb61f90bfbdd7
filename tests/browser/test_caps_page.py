"""An admin lowers demo-loop's tool-call cap in Chromium: the backtest tells how many recent runs
it would have cut before anything is saved; after saving, a new run stops at the new cap."""

import json

import pytest

from runs.models import CapPolicy
from runs.services.runs import run_create
from tests.runs.run_rows import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def wait_finished(run_id):
    return wait_for(run_id, timeout=60)


def test_lower_the_tool_call_cap_backtest_save_and_a_new_run_stops_there(
    page_as, celery_worker, transactional_db
):
    # Recent traffic: three demo-loop runs through the real worker, each stopped at 20 calls.
    history = [
        wait_finished(run_create(agent="demo-loop", input={"question": "stock?"}).id)
        for _ in range(3)
    ]
    assert [(r.status, r.tool_calls) for r in history] == [("budget_exceeded", 20)] * 3
    sixth_call = {
        str(r.id): r.events.filter(kind="tool_call")
        .order_by("seq")
        .values_list("seq", flat=True)[5]
        for r in history
    }

    page = page_as("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Caps").click()
    page.get_by_role("link", name="demo-loop", exact=True).first.click()
    page.wait_for_url("**/caps/?scope=demo-loop")
    assert page.get_by_label("Max tool calls").get_attribute("placeholder") == "inherits 20"

    page.get_by_label("Max tool calls").fill("5")
    page.get_by_role("button", name="Backtest these values").click()
    summary = page.get_by_test_id("backtest-summary")
    summary.wait_for()
    assert "would have stopped 3 of the last 3 finished runs of demo-loop" in summary.inner_text()
    # Each example links to the step where the run would have stopped: its 6th tool call.
    links = page.locator("table.examples tbody tr td:first-child a")
    assert links.count() == 3
    for i in range(3):
        run_id = links.nth(i).inner_text()
        assert links.nth(i).get_attribute("href") == f"/runs/{run_id}/#step-{sixth_call[run_id]}"
    assert page.locator("svg.histogram .cap-line.cap-proposed").count() == 3
    assert not CapPolicy.objects.filter(scope="demo-loop").exists()  # a backtest saves nothing

    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/caps/?scope=demo-loop")
    assert page.get_by_text("Saved the demo-loop policy").is_visible()
    assert page.locator("table.audit").inner_text().count("inherit → 5") == 1
    assert CapPolicy.objects.get(scope="demo-loop").values.get("max_tool_calls") == 5

    # Start a run as this admin through the API with the page's own session.
    answer = page.evaluate(
        """async () => {
            const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
            const r = await fetch('/api/v1/runs', {method: 'POST', headers: {
                'Content-Type': 'application/json', 'X-CSRFToken': csrf},
                body: JSON.stringify({agent: 'demo-loop', input: {question: 'stock?'}})});
            return {status: r.status, body: await r.text()};
        }"""
    )
    assert answer["status"] == 202, answer
    run = wait_finished(json.loads(answer["body"])["id"])
    assert run.caps["max_tool_calls"] == 5
    assert (run.status, run.cap_hit, run.tool_calls) == ("budget_exceeded", "max_tool_calls", 5)
    assert run.events.filter(kind="tool_call", status="ok").count() == 5
