"""Login throttling: a username at one address is locked after AXES_FAILURE_LIMIT wrong
passwords in a row (logged), with a clear page; the right password does not get in meanwhile;
other addresses and other users are not affected; the lock ends after the cool-off."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/accounts/login/"


def attempt(client, username, password, ip="10.0.0.1"):
    return client.post(URL, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_username_is_locked_after_the_failure_limit(client, make_user, caplog):
    user = make_user("engineer")
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = attempt(client, user.username, "wrong")
        assert response.status_code == 200 and b"didn't match" in response.content
    locked = attempt(client, user.username, "wrong")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert f"after {limit} wrong passwords".encode() in locked.content
    assert b"Try again in 15 minutes" in locked.content
    # The right password does not get in while locked.
    assert attempt(client, user.username, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    assert "Locking out" in caplog.text and user.username in caplog.text
    assert PASSWORD not in caplog.text


def test_the_lock_is_per_username_and_address(client, make_user):
    user, other = make_user("engineer"), make_user("support")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, user.username, "wrong")
    assert attempt(client, other.username, PASSWORD).status_code == 302
    client.logout()
    assert attempt(client, user.username, PASSWORD, ip="10.0.0.2").status_code == 302


def test_a_forwarded_header_does_not_escape_the_lock(client, make_user):
    user = make_user("engineer")
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            URL,
            {"username": user.username, "password": "wrong"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    assert attempt(client, user.username, PASSWORD).status_code == 429


def test_the_lock_ends_after_the_cool_off_and_a_success_resets_the_count(client, make_user):
    from axes.models import AccessAttempt

    user = make_user("engineer")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, user.username, "wrong")
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert attempt(client, user.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, PASSWORD).status_code == 302
