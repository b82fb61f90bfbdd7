import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_login_in_chromium_shows_the_overview(chromium, live_server, make_user):
    user = make_user("engineer")
    context = chromium.new_context(base_url=live_server.url)
    page = context.new_page()
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_role("heading", name="Overview").is_visible()
    # htmx is served by django-htmx from our own static files and loads.
    assert page.evaluate("typeof htmx") == "object"
    context.close()


@pytest.mark.parametrize("role, has_admin", [("support", False), ("admin", True)])
def test_navigation_per_role_in_the_browser(page_as, role, has_admin):
    page = page_as(role)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Overview").is_visible()
    assert (nav.get_by_role("link", name="Admin").count() == 1) is has_admin
