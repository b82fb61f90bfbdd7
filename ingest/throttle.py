"""Per-key request throttling on the shared cache (Redis in production), so every web process
counts against the same budget."""

import time

from django.conf import settings
from django.core.cache import cache
from ninja.errors import Throttled


def throttle(request, who) -> None:
    """Allow AGENTOPS_INGEST_RATE_PER_SECOND requests per principal per second; else 429."""
    rate = settings.AGENTOPS_INGEST_RATE_PER_SECOND
    if rate <= 0:
        return
    window = int(time.time())
    key = f"throttle:{who.name}:{window}"
    # add() is atomic: only the first request of a window creates the counter.
    if cache.add(key, 1, timeout=5):
        return
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request starts the window
        cache.add(key, 1, timeout=5)
        return
    if count > rate:
        raise Throttled(wait=1)
