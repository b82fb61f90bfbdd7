"""Users and their roles (Django groups: support < engineer < admin)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from ..errors import InvalidInput
from ..roles import ADMIN, ROLES


@transaction.atomic
def user_set_role(*, username: str, role: str, password: str | None = None):
    """Create or update `username` so it holds exactly `role`. Admins may use the Django admin."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    if password is not None:
        user.set_password(password)
    user.is_staff = role == ADMIN
    user.is_superuser = role == ADMIN
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role)[0]])
    return user
