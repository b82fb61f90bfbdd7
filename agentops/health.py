"""Reachability of the database, the broker and the cache, for /api/v1/health, answered within
HEALTH_TIMEOUT whatever is down: each part is checked on its own thread, and a part that has not
answered by then counts as down."""

import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 2.0

# Requests let through without the cache (the throttle fails open while it is down), counted
# per process since it started: /health shows them.
_cache_failures = {"count": 0, "last": 0.0, "error": ""}
_cache_lock = threading.Lock()


def note_cache_failure(exc: Exception) -> None:
    """Record that a request went on without the cache; logged at most once a minute."""
    now = time.time()
    with _cache_lock:
        _cache_failures["count"] += 1
        quiet = now - _cache_failures["last"] < 60
        _cache_failures["last"] = now
        _cache_failures["error"] = f"{type(exc).__name__}: {exc}"
    if not quiet:
        log.warning("cache unavailable, requests go on without it: %s", exc)


def cache_failures() -> dict:
    with _cache_lock:
        return dict(_cache_failures)


def database_status() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the message says which
        return False, f"{type(exc).__name__}: {exc}".strip()
    return True, connection.vendor


def broker_status(timeout: float = HEALTH_TIMEOUT) -> tuple[bool, str]:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if folder.is_dir() and os.access(folder, os.W_OK):
            return True, "filesystem"
        return False, f"broker folder {folder} is missing or not writable"
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}".strip()
    return True, str(transport)


def cache_status() -> tuple[bool, str]:
    failures = cache_failures()
    went_on = (
        f"; {failures['count']} requests went on without it since start"
        if failures["count"]
        else ""
    )
    try:
        cache.get("agentops-health")
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}".strip() + went_on
    return True, type(cache).__name__ + went_on


def _on_thread(check, results: dict, name: str) -> None:
    try:
        results[name] = check()
    finally:
        connection.close()  # this thread's own connection (back to the pool)


def statuses(timeout: float = HEALTH_TIMEOUT) -> dict[str, tuple[bool, str]]:
    """{"database", "broker", "cache": (ok, detail)}, within about `timeout` seconds."""
    checks = {"database": database_status, "broker": broker_status, "cache": cache_status}
    results: dict = {}
    threads = [
        threading.Thread(target=_on_thread, args=(check, results, name), daemon=True)
        for name, check in checks.items()
    ]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, (False, f"no answer within {timeout:g} s")) for name in checks}
