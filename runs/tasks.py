"""Celery tasks: thin doors that take ids, re-fetch, and call one service. Beat's housekeeping
(reap, re-dispatch, expired idempotency keys) runs in the beat process itself
(services.housekeeping); the webhook sweep and retention are in settings.CELERY_BEAT_SCHEDULE."""

import logging
import os
import socket
from datetime import timedelta

from celery import shared_task
from celery.signals import beat_init, worker_init, worker_process_init, worker_ready
from django.conf import settings

from agentops.heap import freeze_startup_objects

from . import worker
from .services import retention, rollups, runs, webhooks
from .services.housekeeping import housekeeping_start

log = logging.getLogger(__name__)


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


@shared_task(name="runs.rollups", ignore_result=True)
def refresh_rollups() -> int:
    """Sum the hours of runs that are over or changed (services.rollups)."""
    return rollups.rollups_refresh()


@shared_task(name="runs.dispatch", ignore_result=True)
def redispatch_runs() -> int:
    """Send queued runs whose message was lost or not taken (the outbox, services.runs)."""
    return runs.runs_redispatch()


@shared_task(name="runs.webhook_deliver", ignore_result=True)
def webhook_deliver(delivery_id: str) -> None:
    """One attempt at a webhook delivery (the next one scheduled if it fails). A no-op when the
    delivery is gone, delivered, given up on, not yet due or held by another attempt."""
    webhooks.webhook_deliver(delivery_id=delivery_id)


@shared_task(name="runs.webhooks_sweep", ignore_result=True)
def webhooks_sweep() -> int:
    """Send the webhook deliveries that are due and were not sent; give up on old ones."""
    return webhooks.deliveries_sweep()


@shared_task(name="runs.prune", ignore_result=True)
def prune_old_runs() -> dict | None:
    """Delete finished runs older than AGENTOPS_RETENTION_DAYS (a no-op when it is 0)."""
    days = settings.AGENTOPS_RETENTION_DAYS
    if not days:
        return None
    report = retention.runs_prune(older_than=timedelta(days=days))
    log.info("prune: %s", report.summary())
    return dict(report.removed)


@worker_init.connect
def _on_worker_init(sender=None, **kwargs) -> None:
    worker.wait_for_connections(settings.AGENTOPS_WORKER_DB_WAIT)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    # A worker that starts (the only one, come back) catches up at once instead of waiting for
    # beat: runs whose worker died are ended, runs whose message was lost are sent.
    sender.app.send_task("runs.reap", queue=sender.app.conf.task_default_queue)
    sender.app.send_task("runs.dispatch", queue=sender.app.conf.task_default_queue)
    # Loaded: the threads pool runs the runs in this process (see agentops.heap).
    freeze_startup_objects()


@worker_process_init.connect
def _on_worker_process_init(sender=None, **kwargs) -> None:
    freeze_startup_objects()  # a prefork pool's child, loaded


@beat_init.connect
def _on_beat_init(sender=None, **kwargs) -> None:
    # Beat reaps and re-dispatches in its own process (not through a worker, which may be the
    # one that died): see services.housekeeping.
    housekeeping_start()
