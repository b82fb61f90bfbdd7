"""Celery tasks: thin doors that take ids, re-fetch, and call one service. Beat's own periodic
work (reap, re-dispatch, prune) runs in the beat process itself (services.housekeeping)."""

import os
import socket

from celery import shared_task
from celery.signals import beat_init, worker_ready

from . import worker
from .services import runs
from .services.housekeeping import housekeeping_start


@shared_task(name="runs.ping")
def ping(token: str) -> str:
    """Round-trip check used by health tooling and tests: answers `pong:<token>`."""
    return f"pong:{token}"


@shared_task(name="runs.execute", ignore_result=True, acks_late=True)
def execute_run(run_id: str) -> None:
    """Execute one run. A no-op when the run is gone, finished or held by a live attempt."""
    worker.run_execute(run_id=run_id, worker=f"{socket.gethostname()}/{os.getpid()}")


@shared_task(name="runs.reap", ignore_result=True)
def reap_lost_runs() -> int:
    """End runs whose heartbeat stopped (their worker died)."""
    return runs.runs_reap()


@shared_task(name="runs.dispatch", ignore_result=True)
def redispatch_runs() -> int:
    """Send queued runs whose message was lost or not taken (the outbox, services.runs)."""
    return runs.runs_redispatch()


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    # A worker that starts (the only one, come back) catches up at once instead of waiting for
    # beat: runs whose worker died are ended, runs whose message was lost are sent.
    sender.app.send_task("runs.reap", queue=sender.app.conf.task_default_queue)
    sender.app.send_task("runs.dispatch", queue=sender.app.conf.task_default_queue)


@beat_init.connect
def _on_beat_init(sender=None, **kwargs) -> None:
    # Beat reaps and re-dispatches in its own process (not through a worker, which may be the
    # one that died): see services.housekeeping.
    housekeeping_start()
