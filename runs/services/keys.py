"""API keys: create one (its secret is shown once and stored hashed), revoke one."""

import hashlib
import secrets

from django.utils import timezone

from ..errors import InvalidInput, NotFound
from ..models import ApiKey, ApiScope

KEY_PREFIX = "ao_"


def api_key_hash(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is as safe as a slow one and keeps auth cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str], created_by=None) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is not stored and cannot be shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a key needs a name of 1 to 100 characters")
    unknown = sorted(set(scopes) - set(ApiScope.values))
    if unknown or not scopes:
        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(ApiScope.values)}",
            details={"unknown": unknown},
        )
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=api_key_hash(secret),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    return key, secret


def api_key_revoke(*, key_id: int) -> ApiKey:
    """Revoke a key; it stops authenticating at once. Revoking twice keeps the first time."""
    key = ApiKey.objects.filter(id=key_id).first()
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
