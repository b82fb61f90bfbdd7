import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from runs.models import ApiKey
from tests.conftest import PASSWORD


def test_login_page_is_public(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/admin/"])
def test_pages_redirect_anonymous_users_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_login_with_password_lands_on_overview(client, make_user):
    user = make_user("support")
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert b"Overview" in response.content


def test_wrong_password_is_refused(client, make_user):
    user = make_user("support")
    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content
    assert "_auth_user_id" not in client.session


def test_user_without_a_role_is_forbidden(client, make_user):
    client.force_login(make_user(None))
    assert client.get("/").status_code == 403


@pytest.mark.parametrize(
    "role, visible, hidden",
    [("support", ["Overview"], ["Admin"]),
     ("engineer", ["Overview"], ["Admin"]),
     ("admin", ["Overview", "Admin"], [])],
)  # fmt: skip
def test_each_role_sees_only_its_navigation(client, make_user, role, visible, hidden):
    client.force_login(make_user(role))
    html = client.get("/").content.decode()
    nav = html[html.index('<nav aria-label="Main">') : html.index("</nav>")]
    for label in visible:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


@pytest.mark.parametrize(
    "role, admin_status", [("support", 302), ("engineer", 302), ("admin", 200)]
)
def test_django_admin_is_for_admins_only(client, make_user, role, admin_status):
    client.force_login(make_user(role))
    assert client.get("/admin/").status_code == admin_status


def test_logout_ends_the_session(client, make_user):
    client.force_login(make_user("engineer"))
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_add_user_command_sets_exactly_one_role(capsys):
    call_command("add_user", "ana", "--role", "engineer", "--password", "s3cret-pass")
    call_command("add_user", "ana", "--role", "support", "--password", "s3cret-pass")
    user = get_user_model().objects.get(username="ana")
    assert list(user.groups.values_list("name", flat=True)) == ["support"]
    assert user.check_password("s3cret-pass")
    assert not user.is_staff


@pytest.mark.django_db
def test_create_api_key_prints_the_key_alone_on_the_last_line_and_stores_a_hash(capsys):
    call_command("create_api_key", "ci-bot", "--scopes", "ingest,runs:read")
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("ao_") and " " not in secret and len(secret) > 40
    key = ApiKey.objects.get(name="ci-bot")
    assert key.scopes == ["ingest", "runs:read"]
    assert secret not in key.key_hash and key.key_hash != secret
    assert secret.startswith(key.prefix)


@pytest.mark.django_db
def test_create_api_key_rejects_unknown_scopes():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="scopes"):
        call_command("create_api_key", "x", "--scopes", "ingest,root")
    assert not ApiKey.objects.exists()
