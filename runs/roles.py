"""Roles are Django groups: support < engineer < admin. A view declares the least role it needs.

    @role_required(ENGINEER)
    def run_cancel(request, run_id): ...

answers 403 to a logged-in user below that role; every page already requires login through
LoginRequiredPagesMiddleware.
"""

from functools import wraps

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import PermissionDenied
from django.urls import reverse

SUPPORT = "support"
ENGINEER = "engineer"
ADMIN = "admin"
ROLES = (SUPPORT, ENGINEER, ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


def user_role(user) -> str | None:
    """The highest role the user holds, or None. Superusers are admins."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_agentops_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in reversed(ROLES) if r in names), None)
    user._agentops_role = role
    return role


def has_role(user, role: str) -> bool:
    held = user_role(user)
    return held is not None and _RANK[held] >= _RANK[role]


def role_required(role: str):
    """Decorate a view so that only users holding `role` (or a higher one) reach it."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"needs the {role} role")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class LoginRequiredPagesMiddleware(LoginRequiredMiddleware):
    """Every page needs a login, except the login page, static files and the API (own auth)."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(("/api/", "/static/")):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


# (label, url name, least role). Only pages that exist are listed; the template shows an item
# to users holding its role.
NAVIGATION = (
    ("Overview", "runs:overview", SUPPORT),
    ("Runs", "runs:list", SUPPORT),
    ("Agents", "runs:agents", SUPPORT),
    ("Waiting", "runs:waiting", ENGINEER),
    ("Caps", "runs:caps", ADMIN),
    ("Prices", "runs:prices", ADMIN),
    ("API keys", "runs:keys", ADMIN),
    ("Webhooks", "runs:webhooks", ADMIN),
    ("Admin", "admin:index", ADMIN),
)


def navigation(request):
    """Template context: the navigation items the current user may use, and their role."""
    user = getattr(request, "user", None)
    role = user_role(user) if user is not None else None
    if role is None:
        return {"nav_items": [], "user_role": None}
    items = [
        {"label": label, "url": reverse(name), "active": request.path == reverse(name)}
        for label, name, needed in NAVIGATION
        if _RANK[role] >= _RANK[needed]
    ]
    return {"nav_items": items, "user_role": role}
