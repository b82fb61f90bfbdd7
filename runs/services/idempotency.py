"""Idempotent run starts: a request carrying a key the same caller already used within 24 h gets
the run the first request created, instead of a second run (as Stripe's `Idempotency-Key`).

A key is taken by inserting a `pending` row before the run is created; the run and the row's
`done` are committed together. So of two requests with one key at once, one creates the run and
the other is told to retry (409, Retry-After: 1); a request that is refused (bad input, a spend
window) leaves no key behind; a `pending` row older than ABANDONED_AFTER was abandoned (its
process died, or the database went away under it) and is taken over. A request whose row was
taken over meanwhile does not finish: its run is rolled back and it is told to retry, so a slow
request and the one that took over its key never both create a run. The same key with another
body is an error (422 `idempotency_key_reused`), not a silent answer about a different request.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, InvalidInput
from ..models import IdempotencyKey, Run

KEEP = timedelta(hours=24)
# A run is created in milliseconds; a client retrying a request that died with its key pending
# (a web process killed, a database restart) gets its answer this soon, not after a minute.
ABANDONED_AFTER = timedelta(seconds=10)
MAX_KEY_LENGTH = 255
PENDING, DONE = "pending", "done"


class KeyInUse(Conflict):
    code = "idempotency_key_in_use"
    headers = {"Retry-After": "1"}


def fingerprint_of(operation: str, body) -> str:
    """A digest of what a request asks: its operation and its body as canonical JSON."""
    text = json.dumps([operation, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def key_check(key: str) -> str:
    """The key as sent, if usable: 1 to 255 printable ASCII characters. Else InvalidInput."""
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


def run_create_once(
    *, owner: str, key: str, fingerprint: str, create: Callable[[], Run], now=None
) -> tuple[Run, bool]:
    """(run, replayed): the run `create()` makes, or the one an earlier request with this
    owner's `key` made (replayed True). Raises InvalidInput (`invalid_idempotency_key`,
    `idempotency_key_reused`) or KeyInUse; whatever `create` raises leaves the key unused."""
    key_check(key)
    now = now or timezone.now()
    row = _take(owner, key, fingerprint, now)
    if row.state == DONE:
        return Run.objects.get(id=row.run_id), True
    ours = IdempotencyKey.objects.filter(pk=row.pk, state=PENDING, created_at=row.created_at)
    try:
        with transaction.atomic():
            run = create()
            if not ours.update(state=DONE, run=run):  # taken over: this request was too slow
                raise KeyInUse("a request with this Idempotency-Key is under way; retry shortly")
    except BaseException:
        ours.delete()
        raise
    return run, False


def _take(owner: str, key: str, fingerprint: str, now) -> IdempotencyKey:
    """This request's pending row, or the earlier request's row for the same key."""
    IdempotencyKey.objects.filter(owner=owner, key=key, created_at__lt=now - KEEP).delete()
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    owner=owner, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            pass
        found = IdempotencyKey.objects.filter(owner=owner, key=key).first()
        if found is None:
            continue  # the other request was refused meanwhile: its key is free again
        if found.fingerprint != fingerprint:
            raise InvalidInput(
                "this Idempotency-Key was used for a different request",
                code="idempotency_key_reused",
            )
        if found.state == DONE:
            return found
        if found.created_at >= now - ABANDONED_AFTER:
            raise KeyInUse("a request with this Idempotency-Key is under way; retry shortly")
        if IdempotencyKey.objects.filter(
            pk=found.pk, state=PENDING, created_at=found.created_at
        ).update(created_at=now):
            found.created_at = now
            return found
    raise KeyInUse("a request with this Idempotency-Key is under way; retry shortly")


def idempotency_keys_prune(*, now=None) -> int:
    """Delete keys older than 24 h; returns how many."""
    now = now or timezone.now()
    return IdempotencyKey.objects.filter(created_at__lt=now - KEEP).delete()[0]
