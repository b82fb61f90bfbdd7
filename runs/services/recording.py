"""How a worker process records its runs: `DbRecorder`, the runner's Recorder for one run, and
`StepWriter`, which writes the steps and counters of every run the process executes in batches
through `events_record` (the one write path for steps, shared with ingest).

One batch is one transaction: a thousand runs waiting on their tools write their steps in a few
round trips and commits a second instead of thousands, and one run's 500 quick steps in a handful.
What a page shows while a run runs is kept: a finished step waits about `FLUSH_S` at most, a
step still running `RUNNING_AFTER_S` after it started is written as running then, and a run is
finished only after all its steps are written. The process's writer thread (`StepWriter.tick`,
every `TICK_S` while anything runs or waits) does both, so the runs' own threads need not wake
to have their steps written: a thousand runs waiting on their tools sleep until the tools answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from ..engine.budget import Usage
from ..engine.ids import uuid7
from ..models import Event, Run
from .events import events_record
from .runs import runs_usage_update

log = logging.getLogger(__name__)

FLUSH_S = 0.2  # about the longest a finished step (or a run's counters) waits for its batch
FLUSH_ROWS = 100  # steps waiting in the process that make a batch without waiting longer
RUNNING_AFTER_S = 0.2  # a step still running this long after it started is written as running
TICK_S = 0.05  # how often the writer's thread looks, while steps run or wait


def release_connection() -> None:
    """Give a pooled PostgreSQL connection back between writes, so hundreds of runs waiting on
    their tools share a few connections. SQLite keeps its (cheap, per-thread) connection."""
    if connection.vendor == "postgresql" and "pool" in connection.settings_dict["OPTIONS"]:
        if not connection.in_atomic_block:
            connection.close()


class StepWriter:
    """The waiting steps (by id: a later version of a step replaces an earlier one) and run
    counters (by run) of one worker process, and the batches that write them.

    Whatever is queued joins the batch being collected; `write(batch)` returns once that batch
    is in the table (so runs calling in together share one transaction). Steps that started are
    `begun` here too: `tick` queues those still running after RUNNING_AFTER_S. With `tick_s`, a
    thread of its own ticks every `tick_s` while steps run or wait. Thread-safe.
    """

    def __init__(self, *, clock=time.monotonic, tick_s: float | None = None):
        self._clock = clock
        self._lock = threading.Lock()  # guards what waits
        self._stirred = threading.Condition(self._lock)  # something began or waits: tick
        self._tick_s = tick_s
        self._ticker: threading.Thread | None = None
        self._running: OrderedDict = OrderedDict()  # step id -> (its running row, when begun)
        self._busy = False  # a thread is writing batches
        self._done: dict = {}  # batch number -> set once written (for the threads waiting)
        self._more = False  # a write was asked for while one was under way
        self._rows: dict = {}
        self._usage: dict = {}
        self._since: float | None = None  # when the oldest waiting item was queued
        self._collecting = 1  # the number of the batch being collected
        self._written = 0  # the last batch number written
        self._errors: dict = {}  # run id -> why its rows wait again
        self._beats: dict = {}  # run id (str) -> when a batch last wrote its counters

    def queue(self, rows=(), *, run_id=None, usage: Usage | None = None) -> int:
        """Queue step rows and/or a run's counters; the number of the batch they joined. A row
        replaces the running one of its step, written or not."""
        with self._lock:
            if (rows or usage is not None) and self._since is None:
                self._since = self._clock()
                self._stir()
            for row in rows:
                self._rows[row["id"]] = row
                self._running.pop(row["id"], None)
            if usage is not None:
                self._usage[run_id] = usage
            return self._collecting

    def begun(self, row: dict) -> None:
        """A step started (`row`, status running, never changed afterwards): `tick` queues it if
        it still runs RUNNING_AFTER_S later."""
        with self._lock:
            self._running[row["id"]] = (row, self._clock())
            self._stir()

    def running_now(self, step_ids) -> int | None:
        """Queue these steps' running rows now (those not yet queued or ended); the number of the
        batch they joined, or None when there were none."""
        with self._lock:
            found = [self._running.pop(step_id, None) for step_id in step_ids]
            rows = [entry[0] for entry in found if entry is not None]
        return self.queue(rows) if rows else None

    def tick(self) -> None:
        """Queue the steps still running RUNNING_AFTER_S after they began, and write them with
        whatever waits; or write what waited FLUSH_S."""
        now = self._clock()
        with self._lock:
            due = []
            while self._running:
                row, begun = next(iter(self._running.values()))
                if now - begun < RUNNING_AFTER_S:
                    break  # begun in order: the rest began later
                self._running.popitem(last=False)
                due.append(row)
        if due:
            self.queue(due)
        if due or self.waited(FLUSH_S):
            self.write(wait=False)

    def _stir(self) -> None:
        """(Lock held.) Wake the ticking thread, starting it if there is none (or it did not
        survive a fork)."""
        if self._tick_s is None:
            return
        if self._ticker is None or not self._ticker.is_alive():
            self._ticker = threading.Thread(
                target=self._tick_forever, name="agentops-step-writer", daemon=True
            )
            self._ticker.start()
        self._stirred.notify()

    def _tick_forever(self) -> None:
        while True:
            with self._lock:
                while not self._running and self._since is None:
                    self._stirred.wait()
            # While some run's rows are refused (or the database is down), once a second.
            time.sleep(1.0 if self._errors else self._tick_s)
            try:
                self.tick()
            except Exception:  # a database hiccup must not end the thread; what waits waits on
                log.exception("writing steps failed; retrying")
                connection.close()

    def waiting(self) -> int:
        return len(self._rows)

    def written_within(self, run_id, seconds: float) -> bool:
        """Whether a batch wrote `run_id`'s counters, and so its heartbeat, within `seconds`."""
        written = self._beats.get(str(run_id))
        return written is not None and self._clock() - written < seconds

    def forget(self, run_id) -> None:
        """Drop what this writer remembers of a run that ended (`written_within`)."""
        self._beats.pop(str(run_id), None)

    def drop_counters(self, run_id) -> None:
        """Forget `run_id`'s waiting counters: what writes the run's end writes them."""
        with self._lock:
            self._usage.pop(run_id, None)

    def waited(self, seconds: float) -> bool:
        since = self._since
        return since is not None and self._clock() - since >= seconds

    def write(self, batch: int | None = None, *, run_id=None, wait: bool = True) -> None:
        """Write what waits. With `wait`, return once `batch` (by default: everything queued so
        far) is written; without, only ask for it when another thread is writing (that thread
        then writes one more batch). The first thread to ask writes, batch after batch while
        there is more; the others go on, or wait for their own batch (woken once, by it).
        Raises when rows of `run_id` could not be written (they wait again, for that run's next
        write)."""
        # A pooled connection held while waiting for another thread's write could be the one
        # that write needs.
        release_connection()
        done = None
        with self._lock:
            batch = self._collecting if batch is None else batch
            if self._busy:
                self._more = True
                lead = False
                if wait and self._written < batch:
                    done = self._done.setdefault(batch, threading.Event())
            else:
                lead = self._busy = self._written < batch or not wait
        if lead:
            self._lead()
        elif done is not None:
            done.wait()
        error = self._errors.get(run_id)
        if error is not None:
            raise error

    def _lead(self) -> None:
        try:
            while True:
                with self._lock:
                    rows, usage = self._rows, self._usage
                    self._rows, self._usage, self._since = {}, {}, None
                    taken = self._collecting
                    self._collecting += 1
                    self._more = False
                    for run in {r["run_id"] for r in rows.values()} | set(usage):
                        self._errors.pop(run, None)
                written_at = self._clock()
                try:
                    failed = self._write_all(rows, usage)
                finally:
                    release_connection()
                with self._lock:
                    for run in usage:
                        if run not in failed:
                            self._beats[str(run)] = written_at
                    for run, (run_rows, run_usage, exc) in failed.items():
                        # Back to wait, behind anything newer queued meanwhile.
                        for row in run_rows:
                            self._rows.setdefault(row["id"], row)
                        if run_usage is not None:
                            self._usage.setdefault(run, run_usage)
                        self._errors[run] = exc
                        if self._since is None:
                            self._since = self._clock()
                    self._written = taken
                    for number in [n for n in self._done if n <= taken]:
                        self._done.pop(number).set()
                    if not self._done and not self._more:  # nobody asked for a later batch
                        self._busy = False
                        return
        except BaseException:
            with self._lock:
                self._busy = False
                for event in self._done.values():
                    event.set()  # the waiters look again (and one of them leads)
                self._done.clear()
            raise

    def discard(self, run_id) -> None:
        """Forget what waits for `run_id` (a run whose writes keep failing)."""
        with self._lock:
            self._rows = {k: r for k, r in self._rows.items() if r["run_id"] != run_id}
            for step_id in [k for k, (r, _) in self._running.items() if r["run_id"] == run_id]:
                del self._running[step_id]
            self._usage.pop(run_id, None)
            self._errors.pop(run_id, None)

    def _write_all(self, rows: dict, usage: dict) -> dict:
        if not rows and not usage:
            return {}
        try:
            self._write(list(rows.values()), usage)
        except Exception:  # one run's bad row must not hold back the others
            return self._write_each(rows, usage)
        return {}

    def _write_each(self, rows: dict, usage: dict) -> dict:
        """Each run's rows and counters in a transaction of its own; the runs that failed."""
        by_run: dict = {run: ([], usage.get(run)) for run in usage}
        for row in rows.values():
            by_run.setdefault(row["run_id"], ([], usage.get(row["run_id"])))[0].append(row)
        failed = {}
        for run, (run_rows, run_usage) in by_run.items():
            try:
                self._write(run_rows, {run: run_usage} if run_usage is not None else {})
            except Exception as exc:
                log.warning("steps of run %s could not be written: %s", run, exc)
                failed[run] = (run_rows, run_usage, exc)
        return failed

    @staticmethod
    def _write(rows: list[dict], usage: dict) -> None:
        with transaction.atomic():
            if rows:
                events_record(events=rows)
            if usage:
                # A run's counters written by its worker say it is alive as well as a heartbeat
                # does: the heartbeat then leaves the run alone for an interval (worker.Heartbeat).
                runs_usage_update(usage, heartbeat_at=timezone.now(), live=True)


# The one writer of this worker process.
step_writer = StepWriter(tick_s=TICK_S)


class DbRecorder:
    """The runner's Recorder for one run, writing through a `StepWriter`.

    A step that ends quickly is written once, complete, with the next batch. A step still running
    RUNNING_AFTER_S after it started (or when the runner checks in: an approval's wait is
    visible at once) is written then with status `running` (and whatever waits), and rewritten
    whole when it ends: a hanging call is visible while it hangs, and a fast one costs a share of
    a batch. The run's counters go with the batches too. Cancel requests arrive through the
    heartbeat thread (`cancelled`).
    """

    def __init__(self, run: Run, cancelled: threading.Event, *, writer: StepWriter | None = None):
        self.run_id = run.id
        self.writer = writer or step_writer
        self._cancelled = cancelled
        if getattr(run, "fresh", False):  # claimed from queued: no steps yet
            self._next_seq = 0
        else:
            last = Event.objects.filter(run_id=run.id).aggregate(m=Max("seq"))["m"]
            self._next_seq = 0 if last is None else last + 1
        self._open: dict = {}  # step id -> its row
        self._unwritten: set = set()  # started steps this recorder has not had queued

    def step_started(self, kind, name, *, input=None, model="", parent=None, attributes=None):
        row = {
            "id": uuid7(),
            "run_id": self.run_id,
            "seq": self._next_seq,
            "parent_id": parent,
            "kind": kind,
            "name": (name or "")[:200],
            "status": "running",
            "started_at": timezone.now(),
            "input": input,
            "model": (model or "")[:200],
            "attributes": dict(attributes or {}),
        }
        self._next_seq += 1
        self._open[row["id"]] = row
        self._unwritten.add(row["id"])
        self.writer.begun(row)
        return row["id"]

    def step_ended(
        self,
        ref,
        status,
        *,
        output=None,
        error=None,
        input_tokens=None,
        output_tokens=None,
        cost_usd=None,
        attributes=None,
    ):
        self._unwritten.discard(ref)
        row = dict(
            self._open.pop(ref),  # a new row: the writer's thread may be reading the running one
            status=status,
            ended_at=timezone.now(),
            output=output,
            error=error,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=Decimal(cost_usd) if cost_usd is not None else None,
        )
        if attributes:
            row["attributes"] = {**row["attributes"], **attributes}
        self.writer.queue([row])
        if self.writer.waiting() >= FLUSH_ROWS or self.writer.waited(FLUSH_S):
            self.writer.write(run_id=self.run_id, wait=False)

    def usage_changed(self, usage: Usage) -> None:
        # Counters on the run row are for people watching (the budget is enforced in memory):
        # they go with the next batch.
        self.writer.queue(run_id=self.run_id, usage=usage)

    def cancel_requested(self) -> bool:
        # Called before every step and between the slices of a wait: this run's steps still
        # running are written now if the writer's thread has not yet (an approval's wait, which
        # checks in as it begins, is visible at once).
        batch = self.writer.running_now(self._unwritten) if self._unwritten else None
        self._unwritten.clear()
        if batch is not None:
            self.writer.write(batch, run_id=self.run_id, wait=False)
        elif self.writer.waited(FLUSH_S):
            self.writer.write(run_id=self.run_id, wait=False)
        return self._cancelled.is_set()

    def flush(self, *, counters: bool = True) -> None:
        """Return once every step and counter of this run queued so far is written; without
        `counters`, its waiting counters are dropped instead (the run's finish writes them)."""
        if not counters:
            self.writer.drop_counters(self.run_id)
        self.writer.write(self.writer.queue(), run_id=self.run_id)

    def discard(self) -> None:
        self.writer.discard(self.run_id)
