"""Celery tasks: thin doors that take ids, re-fetch, and call one service."""

import os
import socket

from celery import shared_task

from . import execution, services


@shared_task(name="runs.ping")
def ping(token: str) -> str:
    """Round-trip check used by health tooling and tests: answers `pong:<token>`."""
    return f"pong:{token}"


@shared_task(name="runs.execute", ignore_result=True, acks_late=True)
def execute_run(run_id: str) -> None:
    """Execute one run. A no-op when the run is gone, finished or held by a live attempt."""
    execution.run_execute(run_id=run_id, worker=f"{socket.gethostname()}/{os.getpid()}")


@shared_task(name="runs.reap", ignore_result=True)
def reap_lost_runs() -> int:
    """End runs whose heartbeat stopped (their worker died)."""
    return services.runs_reap()
