"""Per-key request throttling on the shared cache (Redis in production), so every web process
counts against the same budget. While the cache is down the throttle lets requests through
(logged, and counted on /health): ingest must not depend on the cache."""

import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from ninja.errors import Throttled

from agentops import health

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
    try:
        count = _count(key)
    except Exception as exc:  # the cache is down: fail open
        health.note_cache_failure(exc)
        return
    if count is not None and count > rate:
        raise Throttled(wait=1)  # the window ends within a second: Retry-After: 1


# One Redis client per connection pool: Django's get_client() builds a new one on every call
# (~60 µs of Python), the pool (and its connections) being the same.
_clients: dict = {}


def _client(backend, name: str):
    pool = backend._cache._get_connection_pool(True)
    client = _clients.get(pool)
    if client is None:
        client = _clients[pool] = backend._cache.get_client(name, write=True)
    return client


def _count(key: str) -> int | None:
    """This window's count including this request (None: the window's first request, on a
    cache other than Redis)."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # One round trip: INCR creates the counter at 1 if it is missing (atomic, whoever comes
        # first) and EXPIRE lets it go with its window. Django's own incr() would make two (it
        # asks whether the key exists first), and a third for add() at each window's start.
        name = backend.make_and_validate_key(key)
        pipe = _client(backend, name).pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, 5)
        return pipe.execute()[0]
    # Other caches: most requests find their window's counter (one incr); the first of a window
    # creates it with add(), which is atomic: of two first requests at once, the second counts
    # with incr.
    try:
        return cache.incr(key)
    except ValueError:
        if cache.add(key, 1, timeout=5):
            return None
        return cache.incr(key)
