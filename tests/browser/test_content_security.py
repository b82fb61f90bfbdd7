"""In Chromium, the Content-Security-Policy blocks nothing the pages need: no violation is
reported on the pages with bars, the waterfall, htmx and the forms, and htmx still works."""

import pytest

from runs.models import Event
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.browser


def test_no_page_breaks_the_policy(page_as):
    run = make_run(source="external", status="running")
    rows = make_steps(run, 3)
    Event.objects.filter(id=rows[1]["id"]).update(parent_id=rows[0]["id"])
    page = page_as("admin")
    violations = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    for url in ("/", "/runs/", f"/runs/{run.id}/", "/agents/", "/caps/", "/api/v1/docs"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof htmx") in ("object", "undefined")  # the docs page has none
    page.goto(f"/runs/{run.id}/")
    assert page.evaluate("typeof htmx") == "object"
    # A bar drawn as SVG has its width.
    assert page.locator("svg.wf-bar rect").first.get_attribute("width") is not None
    assert violations == []
