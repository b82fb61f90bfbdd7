"""Report runs and steps of an agent that runs elsewhere to agentops. Standard library only:
copy this file into any Python 3.11+ project.

    from ingest.client import Client

    client = Client("http://127.0.0.1:8000", api_key="ao_…")
    with client.run(agent="support-bot", input={"question": q}, user_ref="cust-42") as run:
        with run.step("model_call", name="gpt-4o", model="gpt-4o", input=messages) as step:
            reply = call_model(messages)
            step.end(output=reply, input_tokens=812, output_tokens=64)
        run.event("tool_call", name="lookup_order", input={"order": 7}, output=order)
        run.output = {"answer": reply}

What the agent may rely on: calls return at once and never raise. Items go into a bounded queue
that one background thread sends in batches (POST /api/v1/ingest). Connection errors, 429 and
5xx answers are retried with exponential backoff (Retry-After honoured) until the server takes
the batch, so nothing is lost while the server or its database is down. What cannot be kept is
counted in `client.stats` and logged (logger "agentops.client"): items dropped because the queue
was full, items the server rejected, items still unsent when `close()` gave up. The queue is
flushed at interpreter exit (`atexit`), or explicitly with `flush()` / `close()`.
"""

import atexit
import contextvars
import http.client
import json
import logging
import os
import queue
import random
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

log = logging.getLogger("agentops.client")

_RETRY_STATUSES = {429} | set(range(500, 600))
_current_step: contextvars.ContextVar = contextvars.ContextVar("agentops_step", default=None)


def uuid7() -> str:
    """A time-ordered UUID (version 7): steps of one run sort near each other in the index."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


def now() -> str:
    return datetime.now(UTC).isoformat()


class Client:
    """Sends runs and steps in the background. See the module docstring."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        max_batch_bytes: int = 4_000_000,
        timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        close_timeout: float = 10.0,
    ):
        parts = urlsplit(url.rstrip("/"))
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = (parts.path or "") + "/api/v1/ingest"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.max_batch_bytes, self.timeout = max_batch_bytes, timeout
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.close_timeout = close_timeout
        self.stats = {"sent": 0, "rejected": 0, "dropped": 0, "retries": 0, "batches": 0}
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._lock = threading.Condition()
        self._queued = self._settled = 0  # items put / items sent or given up
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by close(): cut a long backoff short
        self._deadline: float | None = None  # set by close(): give up retrying after it
        self._thread: threading.Thread | None = None
        self._pid = None
        self._conn = None
        self._last_drop_log = 0.0
        atexit.register(self._at_exit)

    # -- what agents call ---------------------------------------------------------------------

    def run(
        self,
        agent: str,
        *,
        input=None,
        user_ref: str = "",
        session_ref: str = "",
        tags=(),
        metadata: dict | None = None,
        id: str | None = None,
    ) -> "RunContext":
        """A context for one run: sent as `running` on entry, `succeeded` on exit (with
        `run.output`), or `failed` with the error when the block raises (which still raises)."""
        item = {
            "id": id or uuid7(),
            "agent": agent,
            "status": "running",
            "started_at": now(),
            "input": input,
            "user_ref": user_ref,
            "session_ref": session_ref,
            "tags": list(tags),
            "metadata": metadata or {},
        }
        return RunContext(self, item)

    def event(self, run_id: str, kind: str, **fields) -> str:
        """Record one step of run `run_id` (fields as in POST /ingest: name, status, input,
        output, model, input_tokens, output_tokens, cost_usd, error, attributes, started_at,
        ended_at, parent_id, id). Re-sending an id updates that step. Returns the step's id."""
        try:
            step = {"id": fields.pop("id", None) or uuid7(), "run_id": run_id, "kind": kind}
            parent = _current_step.get()
            if parent is not None and "parent_id" not in fields:
                step["parent_id"] = parent
            # A step sent with its end only started then (never after it ended).
            fields.setdefault("started_at", fields.get("ended_at") or now())
            step.update(fields)
            self._put("events", step)
            return step["id"]
        except Exception:  # never into the agent
            log.exception("agentops client: could not record a step")
            return ""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call was sent (or given up). True if so."""
        with self._lock:
            target = self._queued
            return self._lock.wait_for(lambda: self._settled >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, retrying for at most `timeout` seconds (default close_timeout),
        then stop. What is still unsent then is counted as dropped and logged."""
        timeout = self.close_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        self._wake.set()
        done = self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, self._deadline - time.monotonic()) + 1)
        atexit.unregister(self._at_exit)
        return done

    # -- queue ---------------------------------------------------------------------------------

    def _put(self, kind: str, item: dict) -> None:
        if self._stop.is_set():
            self._drop(1, "the client is closed")
            return
        self._ensure_thread()
        try:
            with self._lock:
                self._queue.put_nowait((kind, item))
                self._queued += 1
        except queue.Full:
            self._drop(1, "the queue is full (the server is slow or unreachable)")

    def _drop(self, count: int, why: str) -> None:
        with self._lock:
            self.stats["dropped"] += count
        moment = time.monotonic()
        if moment - self._last_drop_log > 5:  # at most one line per 5 s
            self._last_drop_log = moment
            log.warning(
                "agentops client dropped %d item(s): %s (%d dropped so far)",
                count,
                why,
                self.stats["dropped"],
            )

    def _settle(self, count: int) -> None:
        with self._lock:
            self._settled += count
            self._lock.notify_all()

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            if self._stop.is_set():
                return
            self._pid, self._conn = os.getpid(), None  # a forked child starts its own thread
            self._thread = threading.Thread(target=self._loop, name="agentops-client", daemon=True)
            self._thread.start()

    def _at_exit(self) -> None:
        if self._queued > self._settled:
            self.close()

    # -- the sending thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._collect()
            if batch:
                self._send(batch)
                self._settle(len(batch))
        self._close_connection()

    def _collect(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        until = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                wait = until - time.monotonic()
                if wait <= 0 or self._deadline is not None:  # closing: send what is there
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(self._queue.get(timeout=min(wait, 0.1)))
            except queue.Empty:
                if time.monotonic() >= until or self._deadline is not None:
                    break
        return batch

    def _send(self, batch: list) -> None:
        encoded = {"runs": [], "events": []}
        for kind, item in batch:
            try:
                encoded[kind].append(json.dumps(item, default=str, allow_nan=False))
            except (TypeError, ValueError) as exc:
                self._drop(1, f"a {kind[:-1]} could not be encoded as JSON ({exc})")
        size = sum(len(text) for texts in encoded.values() for text in texts)
        if size > self.max_batch_bytes and len(batch) > 1:
            half = len(batch) // 2
            self._send(batch[:half])
            self._send(batch[half:])
            return
        body = (
            '{"runs":['
            + ",".join(encoded["runs"])
            + '],"events":['
            + ",".join(encoded["events"])
            + "]}"
        ).encode()
        count = len(encoded["runs"]) + len(encoded["events"])
        if count:
            self._deliver(body, batch, count)

    def _deliver(self, body: bytes, batch: list, count: int) -> None:
        attempt = 0
        while True:
            status, answer, retry_after = self._post(body)
            if status in (200, 207):
                rejected = answer.get("rejected", []) if isinstance(answer, dict) else []
                with self._lock:
                    self.stats["batches"] += 1
                    self.stats["sent"] += count - len(rejected)
                    self.stats["rejected"] += len(rejected)
                for item in rejected[:5]:
                    log.warning(
                        "agentops rejected %s %s: %s",
                        item.get("type"),
                        item.get("id"),
                        item.get("reason"),
                    )
                return
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                self._send(batch[:half])
                self._send(batch[half:])
                return
            if status is not None and status not in _RETRY_STATUSES:
                self._drop(count, f"the server answered {status}: {str(answer)[:300]}")
                return
            delay = min(self.retry_max, self.retry_initial * 2**attempt) * random.uniform(0.5, 1)
            delay = max(delay, retry_after or 0)
            if self._deadline is not None:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    self._drop(count, f"still unsent when the client closed ({answer})")
                    return
                delay = min(delay, remaining)
            with self._lock:
                self.stats["retries"] += 1
            log.info("agentops client: %s; retrying in %.1f s", answer, delay)
            attempt += 1
            if self._wake.wait(delay):
                self._wake.clear()

    def _post(self, body: bytes):
        """(status or None, parsed answer or error text, Retry-After seconds or None)."""
        try:
            if self._conn is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = kind(self._host, self._port, timeout=self.timeout)
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            response = self._conn.getresponse()
            data = response.read()
            retry_after = response.getheader("Retry-After")
            if response.getheader("Connection", "").lower() == "close":
                self._close_connection()
        except (OSError, http.client.HTTPException) as exc:
            self._close_connection()
            return None, f"{type(exc).__name__}: {exc}", None
        try:
            answer = json.loads(data)
        except ValueError:
            answer = data[:300].decode(errors="replace")
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return response.status, answer, wait

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class RunContext:
    """A run being reported (from `Client.run`). Set `output` before the block ends."""

    def __init__(self, client: Client, item: dict):
        self.client, self.item = client, item
        self.id = item["id"]
        self.output = None

    def __enter__(self) -> "RunContext":
        try:
            self.client._put("runs", dict(self.item))
        except Exception:
            log.exception("agentops client: could not record a run")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            end = {
                "id": self.id,
                "agent": self.item["agent"],
                "finished_at": now(),
                "status": "failed" if exc else "succeeded",
                "output": self.output,
            }
            if exc is not None:
                end["error"] = {
                    "code": "agent_error",
                    "message": str(exc)[:2000],
                    "type": exc_type.__name__,
                }
            self.client._put("runs", end)
        except Exception:
            log.exception("agentops client: could not record the end of a run")
        return False  # the agent's own exception goes on

    def event(self, kind: str, **fields) -> str:
        """Record a finished step of this run (see `Client.event`): it starts and ends now
        unless `started_at` / `ended_at` say otherwise."""
        at = now()
        fields.setdefault("started_at", at)
        fields.setdefault("ended_at", at)
        return self.client.event(self.id, kind, **fields)

    def step(self, kind: str, **fields) -> "StepContext":
        """A step written `running` when the block starts and completed when it ends (`error`
        if it raises). Steps opened inside it are its children."""
        return StepContext(self, kind, fields)


class StepContext:
    def __init__(self, run: RunContext, kind: str, fields: dict):
        self.run, self.kind, self.fields = run, kind, fields
        self.id = fields.pop("id", None) or uuid7()
        self._end: dict = {}
        self._token = None

    def end(self, **fields) -> None:
        """Fields to record when the step ends: output, input_tokens, output_tokens, …"""
        self._end.update(fields)

    def __enter__(self) -> "StepContext":
        self.fields.setdefault("started_at", now())
        self.run.client.event(self.run.id, self.kind, id=self.id, status="running", **self.fields)
        self._token = _current_step.set(self.id)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            _current_step.reset(self._token)
        except (ValueError, RuntimeError):
            pass  # exited in another context: nothing to restore
        fields = {**self.fields, "status": "error" if exc else "ok", "ended_at": now()}
        if exc is not None:
            fields["error"] = {
                "code": "step_error",
                "message": str(exc)[:2000],
                "type": exc_type.__name__,
            }
        fields.update(self._end)
        self.run.client.event(self.run.id, self.kind, id=self.id, **fields)
        return False
