"""An engineer re-executes a run from its page, follows the new run live, compares the two and
plays a run back with the keyboard."""

import pytest

from runs.models import Run
from runs.services.runs import run_create
from tests.runs.run_rows import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_re_execute_follow_live_compare_and_play_back(page_as, celery_worker, tmp_path):
    setting = tmp_path / "setting.txt"
    setting.write_text("blue")
    original = wait_for(run_create(agent="test-setting", input={"path": str(setting)}).id)
    assert original.status == "succeeded"
    setting.write_text("green")  # the tool now answers differently

    page = page_as("engineer")
    page.goto(f"/runs/{original.id}/")
    page.get_by_label("Re-execute").select_option("recorded_model")
    page.get_by_label("If it leaves the recording").select_option("continue")
    page.get_by_role("button", name="Re-execute").click()
    page.wait_for_url(lambda url: str(original.id) not in url and "/runs/" in url)
    new = Run.objects.exclude(id=original.id).get(replay_of=original)
    assert page.url.endswith(f"/runs/{new.id}/")
    # Followed live: the page turns to succeeded by itself.
    page.locator('[data-testid="run-status"]', has_text="succeeded").wait_for(timeout=20_000)

    page.get_by_test_id("compare-original").click()
    page.wait_for_url(f"**/runs/{original.id}/compare/{new.id}/")
    divergence = page.get_by_test_id("first-divergence")
    assert "First divergence" in divergence.inner_text()
    first_row = page.locator("tr.first-divergence")
    assert first_row.count() == 1 and "test_read_setting" in first_row.inner_text()

    page.goto(f"/runs/{original.id}/playback/")
    assert "Step 1 of" in page.locator(".playback-nav").inner_text()
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/playback/?seq=1")
    assert "Step 2 of" in page.locator(".playback-nav").inner_text()
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/playback/?seq=0")


def test_support_sees_no_re_execute_form_and_external_runs_say_why(page_as, live_server):
    support = page_as("support")
    done = Run.objects.create(agent="demo-support", status="succeeded")
    support.goto(f"/runs/{done.id}/")
    assert support.get_by_role("button", name="Re-execute").count() == 0

    engineer = page_as("engineer")
    external = Run.objects.create(agent="their-agent", status="succeeded", source="external")
    engineer.goto(f"/runs/{external.id}/")
    button = engineer.get_by_role("button", name="Re-execute")
    assert button.is_disabled()
    assert "elsewhere" in engineer.locator("#replay-blocked").inner_text()
