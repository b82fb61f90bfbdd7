"""What beat does itself, in its own process, every AGENTOPS_REAP_EVERY_SECONDS: end runs whose
worker stopped beating (`lost`), send queued runs whose message was lost or not taken (the
outbox), and hourly forget idempotency keys older than a day. Doing it in beat rather than in a
task for a worker means a run of a dead worker is reaped even when that worker was the only one.
Every worker also reaps and dispatches once as it starts (runs.tasks)."""

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from .idempotency import idempotency_keys_prune
from .runs import runs_reap, runs_redispatch

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600


def housekeeping_once(*, prune: bool = False) -> dict:
    """One pass; returns what it did: {"reaped", "dispatched", "pruned"}."""
    done = {"reaped": runs_reap(), "dispatched": runs_redispatch(), "pruned": 0}
    if prune:
        done["pruned"] = idempotency_keys_prune()
    return done


def housekeeping_loop(stop: threading.Event, every: float | None = None) -> None:
    """Run passes until `stop` is set; a pass that fails (the database is down) is logged and
    the next one tries again."""
    every = every or settings.AGENTOPS_REAP_EVERY_SECONDS
    last_prune = 0.0
    while not stop.is_set():
        try:
            close_old_connections()
            prune = time.monotonic() - last_prune >= PRUNE_EVERY_SECONDS
            done = housekeeping_once(prune=prune)
            if prune:
                last_prune = time.monotonic()
            if any(done.values()):
                log.info("housekeeping: %s", done)
        except Exception:
            log.exception("housekeeping pass failed; trying again in %s s", every)
        finally:
            connection.close()
        stop.wait(every)


def housekeeping_start(every: float | None = None) -> threading.Event:
    """Start the loop on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    threading.Thread(
        target=housekeeping_loop, args=(stop, every), name="agentops-housekeeping", daemon=True
    ).start()
    return stop
