"""Everything an agent wrote is text: script, event-handler and javascript: payloads in a run's
input, output, tool arguments, tool results, error messages, refs, tags and names show up as
text on every page and execute nothing (checked in Chromium)."""

import pytest
from playwright.sync_api import expect

from runs.models import Event
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__pwned = 'script'</script>"
IMG = "<img src=x onerror=\"window.__pwned = 'img'; alert(1)\">"
JS_URL = "javascript:window.__pwned='href';alert(2)"
BREAKOUT = "\"'><svg onload=\"window.__pwned='svg'\"></svg>"
PAYLOADS = (SCRIPT, IMG, JS_URL, BREAKOUT)


@pytest.fixture
def hostile_run(db):
    run = make_run(
        agent="demo-support",
        status="failed",
        user_ref=JS_URL,
        session_ref=BREAKOUT,
        tags=[SCRIPT, JS_URL],
        input={"question": SCRIPT + IMG, "link": JS_URL},
        output={"answer": IMG, "html": BREAKOUT},
        error={"code": "agent_error", "message": SCRIPT + IMG + JS_URL},
        error_code="agent_error",
    )
    make_steps(run, 2)
    Event.objects.filter(run=run, seq=0).update(
        name=IMG[:200], input={"messages": [{"role": "user", "content": SCRIPT + BREAKOUT}]}
    )
    Event.objects.filter(run=run, seq=1).update(
        name=BREAKOUT,
        status="error",
        input={"url": JS_URL, "query": IMG},
        output={"error": "tool_error", "message": SCRIPT},
        error={"error": "tool_error", "message": IMG + JS_URL},
    )
    # An ingested run from an agent with a hostile name (shown under "Other agents seen").
    make_run(agent=IMG[:100], source="external", input={"q": SCRIPT})
    return run


def _watch(page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return dialogs


def _assert_inert(page, dialogs):
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    # None of the payloads became an element: no injected img, svg or script outside our own.
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("svg[onload]").count() == 0
    assert (
        page.evaluate("[...document.scripts].filter(s => s.textContent.includes('__pwned')).length")
        == 0
    )
    hrefs = page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href') || '')")
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")]


def test_payloads_on_the_run_page_and_its_steps_are_text(page_as, hostile_run):
    page = page_as("support")
    dialogs = _watch(page)
    page.goto(f"/runs/{hostile_run.id}/")
    expect(page.get_by_role("alert")).to_contain_text(SCRIPT + IMG + JS_URL)
    expect(page.locator("#run-live")).to_contain_text(BREAKOUT)  # session ref, as text
    expect(page.locator("#run-live")).to_contain_text(JS_URL)  # user ref, as text
    # The receipt and the transcript (support's first view) show every payload as text.
    expect(page.get_by_test_id("receipt-outcome")).to_contain_text(SCRIPT + IMG + JS_URL)
    expect(page.get_by_test_id("receipt-question")).to_contain_text(SCRIPT + IMG)
    expect(page.get_by_test_id("receipt-answer")).to_have_text(IMG)
    expect(page.locator("#transcript .t-user").first).to_contain_text(SCRIPT + BREAKOUT)
    expect(page.locator("#transcript .t-tool")).to_contain_text(JS_URL)
    expect(page.locator("#transcript .t-tool")).to_contain_text(IMG + JS_URL)
    page.wait_for_timeout(300)  # let any injected handler fire
    _assert_inert(page, dialogs)
    page.get_by_role("link", name="Timeline").click()
    for seq in (0, 1):
        page.locator(f"#step-{seq} summary").click()
        expect(page.locator(f"#step-{seq}").get_by_test_id("step-body")).to_be_visible()
    step0 = page.locator("#step-0").get_by_test_id("step-body")
    expect(step0.locator(".prompt")).to_contain_text(SCRIPT + BREAKOUT)
    step1 = page.locator("#step-1")
    expect(step1.get_by_test_id("step-input")).to_contain_text(JS_URL)
    expect(step1.get_by_test_id("step-input")).to_contain_text("onerror")
    expect(step1.get_by_test_id("step-output")).to_contain_text(SCRIPT)
    expect(step1.locator("summary")).to_contain_text(BREAKOUT)
    page.wait_for_timeout(300)  # let any injected handler fire
    _assert_inert(page, dialogs)

    # The step's own page.
    page.goto(f"/runs/{hostile_run.id}/steps/1/")
    expect(page.get_by_test_id("step-input")).to_contain_text("<img src=x onerror=")
    expect(page.locator("h1")).to_contain_text(BREAKOUT)
    _assert_inert(page, dialogs)


@pytest.mark.parametrize("path", ["/runs/", "/runs/?q=javascript", "/", "/agents/"])
def test_payloads_on_lists_are_text(page_as, hostile_run, path):
    page = page_as("admin")
    dialogs = _watch(page)
    page.goto(path)
    page.wait_for_timeout(300)
    _assert_inert(page, dialogs)
    if path.startswith("/runs/"):
        # The input preview and the user ref show the payloads as text.
        expect(page.get_by_test_id("runs-table")).to_contain_text("<script>window.__pwned")
        expect(page.get_by_test_id("runs-table")).to_contain_text(JS_URL)
    if path == "/agents/":
        expect(page.get_by_text(IMG[:100])).to_be_visible()


def test_following_a_hostile_user_ref_link_only_searches(page_as, hostile_run):
    page = page_as("support")
    dialogs = _watch(page)
    page.goto(f"/runs/{hostile_run.id}/")
    page.locator("#run-live dd").get_by_role("link", name=JS_URL).first.click()
    expect(page.get_by_text("Runs for user ref")).to_be_visible()
    assert "/runs/?q=javascript" in page.url
    _assert_inert(page, dialogs)
