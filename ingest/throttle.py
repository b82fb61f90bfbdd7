"""Per-key request throttling on the shared cache (Redis in production), so every web process
counts against the same budget."""

import time

from django.conf import settings
from django.core.cache import cache
from ninja.errors import Throttled

_clock = time.time  # the window's clock (tests hold it still)


def throttle(request, who) -> None:
    """Allow AGENTOPS_INGEST_RATE_PER_SECOND requests per principal per second; else 429."""
    rate = settings.AGENTOPS_INGEST_RATE_PER_SECOND
    if rate <= 0:
        return
    window = int(_clock())
    # Per key, not per key name: two keys may share a name.
    ident = f"key{who.key.id}-{who.key.prefix}" if who.key is not None else who.name
    key = f"throttle:{ident}:{window}"
    # add() is atomic: only the first request of a window creates the counter.
    if cache.add(key, 1, timeout=5):
        return
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request starts the window
        cache.add(key, 1, timeout=5)
        return
    if count > rate:
        raise Throttled(wait=1)  # the window ends within a second: Retry-After: 1
