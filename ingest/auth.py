"""API authentication: `Authorization: Bearer <key>`, or the session of a logged-in page user.

Either way the request gets a Principal with scopes; operations check the scope they need with
`require_scope`. A revoked key fails on its next request: keys are looked up on every call.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from ninja.errors import AuthenticationError
from ninja.security import APIKeyCookie, HttpBearer

from runs.errors import Forbidden
from runs.models import ApiKey, ApiScope
from runs.roles import ADMIN, ENGINEER, SUPPORT, user_role
from runs.services.keys import api_key_hash
from runs.services.sql import instances, quoted, read_together, update_by_pk

ROLE_SCOPES = {
    SUPPORT: {ApiScope.RUNS_READ},
    ENGINEER: {ApiScope.RUNS_READ, ApiScope.RUNS_WRITE},
    ADMIN: set(ApiScope.values),
}
# last_used_at is a hint for people, not an audit log: write it at most this often per key.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass
class Principal:
    name: str
    scopes: set = field(default_factory=set)
    user: object = None
    key: ApiKey | None = None

    @property
    def is_admin(self) -> bool:
        return ApiScope.ADMIN in self.scopes


_KEY_FIELDS = [f.name for f in ApiKey._meta.concrete_fields]


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request, token):
        if not token or len(token) > 200:
            return None
        # On every request: one statement without the ORM's query compiler.
        columns = ", ".join(quoted(ApiKey, name) for name in _KEY_FIELDS)
        sql = (
            f"SELECT {columns} FROM {quoted(ApiKey)} WHERE {quoted(ApiKey, 'key_hash')} = %s "
            f"AND {quoted(ApiKey, 'revoked_at')} IS NULL"
        )
        found = instances(ApiKey, _KEY_FIELDS, read_together([(sql, [api_key_hash(token)])])[0])
        if not found:
            return None
        key = found[0]
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            update_by_pk(ApiKey, key.id, {"last_used_at": now})
        return Principal(name=f"key:{key.name}", scopes=set(key.scopes), key=key)


class SessionAuth(APIKeyCookie):
    """The pages' own calls: a logged-in user, with the scopes of their role (CSRF checked)."""

    param_name = "sessionid"

    def _get_key(self, request):
        # Only a request that relies on the session is CSRF-checked. One that presents a key
        # (refused, or this would not be asked) or carries no session is not a browser's: it
        # gets 401, and a session never stands in for a refused key.
        if "HTTP_AUTHORIZATION" in request.META or self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)

    def authenticate(self, request, key):
        if key is None:
            return None
        role = user_role(request.user)
        if role is None:
            return None
        return Principal(
            name=f"user:{request.user.get_username()}",
            scopes=set(ROLE_SCOPES[role]),
            user=request.user,
        )


api_auth = [ApiKeyAuth(), SessionAuth()]


def principal(request) -> Principal:
    auth = getattr(request, "auth", None)
    if not isinstance(auth, Principal):
        raise AuthenticationError()
    return auth


def require_scope(request, scope: str) -> Principal:
    """The request's principal, if it holds `scope` (admin holds every scope); else 403."""
    who = principal(request)
    if scope not in who.scopes and not who.is_admin:
        raise Forbidden(f"this operation needs the {scope!r} scope", code="insufficient_scope")
    return who
