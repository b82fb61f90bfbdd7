"""Keeping Python's full garbage collections short in long-lived processes.

A full collection walks every object the process holds, and stops every thread while it does.
After start-up a web or worker process holds ~130k objects (modules, functions, classes) that
live as long as it does: walking them took 50–110 ms on a 2-core machine, a pause that landed on
whichever request or run was under way (a page's p99). `freeze_startup_objects` moves them out
of the collector's sight once the process is loaded; a full collection then walks only what was
made since (~10 ms). Frozen objects are never freed, which is what they would have been anyway.

A web process's first pages load more that lives as long as it does (modules imported on first
use, compiled templates and patterns, caches): ~25k objects, whose walk still took ~20 ms once
every hundred or so requests. `WarmFreezer` freezes again after the process's 100th, 1,000th and
10,000th request, once that has loaded.
"""

import gc
import threading

from django.core.signals import request_finished

FREEZE_AGAIN_AFTER = (100, 1_000, 10_000)  # requests a web process has served


def freeze_startup_objects() -> None:
    """Collect the start-up garbage, then exempt everything left from later collections."""
    gc.collect()
    gc.freeze()


class WarmFreezer:
    """Freezes the process's objects again once it has done each of `after` units of work."""

    def __init__(self, after=FREEZE_AGAIN_AFTER):
        self._after = list(after)
        self._done = 0
        self._lock = threading.Lock()

    def one_done(self, sender=None, **kwargs) -> None:
        with self._lock:
            self._done += 1
            due = bool(self._after) and self._done >= self._after[0]
            if due:
                self._after.pop(0)
        if due:
            freeze_startup_objects()


def freeze_as_pages_warm() -> WarmFreezer:
    """Freeze again after this web process's 100th, 1,000th and 10,000th request (each one
    finished: the collection does not delay its answer)."""
    freezer = WarmFreezer()
    request_finished.connect(freezer.one_done, weak=False, dispatch_uid="agentops.heap")
    return freezer
