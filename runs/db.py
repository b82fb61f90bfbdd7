"""Connection handling for code that runs outside a request (worker threads)."""

from django.db import connection


def release_connection() -> None:
    """Give a pooled PostgreSQL connection back between steps, so hundreds of runs waiting on
    their tools share a few connections. SQLite keeps its (cheap, per-thread) connection."""
    if connection.vendor == "postgresql" and "pool" in connection.settings_dict["OPTIONS"]:
        if not connection.in_atomic_block:
            connection.close()
