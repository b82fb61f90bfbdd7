"""Celery tasks: thin doors that take ids, re-fetch, and call one service."""

from celery import shared_task


@shared_task(name="runs.ping")
def ping(token: str) -> str:
    """Round-trip check used by health tooling and tests: answers `pong:<token>`."""
    return f"pong:{token}"
