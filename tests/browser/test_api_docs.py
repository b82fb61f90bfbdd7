"""/api/v1/docs works on a machine without internet: Swagger UI comes from our own static files,
and with every other host blocked it still lists the API's operations."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_api_docs_load_with_the_network_blocked(chromium, live_server):
    ours = urlsplit(live_server.url).netloc
    context = chromium.new_context(base_url=live_server.url)
    elsewhere = []

    def only_ours(route):
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_ours)
    page = context.new_page()
    page.goto("/api/v1/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/runs").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/ingest")).to_be_visible()
    assert elsewhere == []
    context.close()
