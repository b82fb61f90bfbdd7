"""A page asked for while the database is down answers 503 with Retry-After, not a 500."""

import pytest
from django.test import Client

from tests.ingest.conftest import database_down


@pytest.fixture
def signed_in(transactional_db, make_user):
    client = Client(raise_request_exception=False)
    client.force_login(make_user("support"))
    return client


@pytest.mark.parametrize("path", ["/", "/runs/", "/runs/0190aaaa-0000-7000-8000-000000000000/"])
def test_a_page_answers_503_while_the_database_is_down(signed_in, path):
    with database_down():
        response = signed_in.get(path)

    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert b"The database is not answering" in response.content
    # Back up: the same page is served again.
    assert signed_in.get("/runs/").status_code == 200


def test_any_other_failure_is_still_a_500(signed_in, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("not a database problem")

    monkeypatch.setattr("runs.views.runs_list.render", broken)
    response = signed_in.get("/runs/")
    assert response.status_code == 500
    assert "Retry-After" not in response
