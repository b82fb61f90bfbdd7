"""What the console shows: an expected refusal (a role opening a page it may not) is one warning
line, not an error with a traceback."""

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_a_refused_page_is_logged_as_one_line(client, make_user, caplog):
    client.force_login(make_user("support"))
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get("/caps/").status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "Forbidden (Permission denied): /caps/")
    ]
    assert records[0].exc_info is None
    assert "\n" not in logging.Formatter("%(message)s").format(records[0])
    # Printed once: by the root's handler, not again by a handler of Django's own.
    assert logging.getLogger("django").handlers == []
