"""One heartbeat thread per worker process for every run it executes.

Every interval it stamps `heartbeat_at` on all of them in one UPDATE and reads which of them were
asked to cancel in one SELECT, then sets those runs' cancel events. A run's liveness therefore
does not depend on what its agent code is doing, and a cancel reaches the runner within about an
interval without the runner touching the database.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .db import release_connection
from .models import Run, RunStatus

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, interval: float):
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None

    def watch(self, run_id) -> threading.Event:
        """Start beating for `run_id`; the returned event is set when a cancel is requested."""
        cancelled = threading.Event()
        with self._lock:
            self._watched[str(run_id)] = cancelled
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="agentops-heartbeat", daemon=True
                )
                self._thread.start()
        return cancelled

    def unwatch(self, run_id) -> None:
        with self._lock:
            self._watched.pop(str(run_id), None)

    def beat_once(self) -> None:
        with self._lock:
            watched = dict(self._watched)
        if not watched:
            return
        ids = list(watched)
        Run.objects.filter(id__in=ids, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())
        asked = Run.objects.filter(id__in=ids, cancel_requested_at__isnull=False).values_list(
            "id", flat=True
        )
        for run_id in asked:
            event = watched.get(str(run_id))
            if event is not None:
                event.set()

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            try:
                close_old_connections()
                self.beat_once()
                release_connection()
            except Exception:  # a database hiccup must not end the heartbeat thread
                log.exception("heartbeat failed; retrying")
                connection.close()


heartbeat = Heartbeat(interval=settings.AGENTOPS_HEARTBEAT_INTERVAL)
