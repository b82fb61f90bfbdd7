"""Every answer carries a Content-Security-Policy that allows no inline script or style, and no
page needs one: scripts and styles come from our static files, bars are drawn with SVG."""

import re

import pytest

from runs.models import Event
from tests.runs.run_rows import make_run, make_steps

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=|\son[a-z]+=", re.I)


def test_pages_send_a_policy_without_inline_script_or_style(client, make_user):
    client.force_login(make_user("admin"))
    run = make_run(source="external")
    rows = make_steps(run, 3)
    Event.objects.filter(id=rows[1]["id"]).update(parent_id=rows[0]["id"])
    for url in ("/", "/runs/", f"/runs/{run.id}/", "/agents/", "/caps/", "/prices/", "/keys/",
                f"/runs/{run.id}/playback/"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (url, INLINE_SCRIPT.search(html).group(0))
        assert not INLINE_STYLE.search(html), (url, INLINE_STYLE.search(html).group(0))


def test_the_login_page_and_the_api_send_it_too(client):
    assert "default-src 'self'" in client.get("/accounts/login/")["Content-Security-Policy"]
    assert "default-src 'self'" in client.get("/api/v1/health")["Content-Security-Policy"]


def test_the_api_docs_page_loads_its_scripts_from_here(client):
    html = client.get("/api/v1/docs").content.decode()
    sources = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    assert sources and all(src.startswith("/static/") for src in sources), sources
    # Besides them only a data block (JSON is not executed, so the CSP lets it be).
    assert all('type="application/json"' in tag for tag in INLINE_SCRIPT.findall(html))
