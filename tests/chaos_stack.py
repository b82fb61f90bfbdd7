"""The chaos test's stack and load (tests/test_chaos.py): the real processes on a PostgreSQL and
a Redis of their own, with the harness as their supervisor; a careful API client that starts runs
with an Idempotency-Key and retries with the same key; background run and ingest load."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from ingest.client import Client
from tests.throwaway import Postgres, Redis, Service, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
QUESTION = {"question": "Where is my order A-1001?"}
OUTAGE_SECONDS = 4
SETTLE_SECONDS = 90
RETRY_SECONDS = 60  # a client retries one request this long before giving up
STALE_SECONDS = 10  # a killed worker's run is reaped this long after its last heartbeat


def say(*parts, sep: str = " ") -> None:
    print(f"chaos {time.strftime('%H:%M:%S')}:", *parts, sep=sep, flush=True)


class Stack:
    """The processes and the parts they depend on, with the harness as their supervisor: a
    process that exits when the harness did not stop it is noted and started again."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pg = Postgres(folder / "pg")
        self.redis = Redis(folder / "redis")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.services: dict[str, Service] = {}
        self.expected_down: set[str] = set()
        self.unexpected_exits: list[str] = []
        self.faults: list[str] = []
        self.phase = "start"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._supervise, daemon=True)

    def env(self) -> dict:
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "CELERY_", "CACHE_URL", "AGENTOPS_"))
        }
        env.update(
            DATABASE_URL=self.pg.url("agentops_chaos"),
            CELERY_BROKER_URL=self.redis.url(),
            AGENTOPS_DATA_DIR=str(data),
            AGENTOPS_QUEUE=f"agentops-chaos-{uuid.uuid4().hex[:8]}",
            AGENTOPS_AGENT_MODULES="tests.agents",
            AGENTOPS_HEARTBEAT_STALE_SECONDS=str(STALE_SECONDS),
            AGENTOPS_REAP_EVERY_SECONDS="2",
            DEBUG="0",
            SECRET_KEY="chaos-" + uuid.uuid4().hex * 2,
            SECURE_SSL_REDIRECT="0",
            ALLOWED_HOSTS="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, env: dict, *args: str) -> str:
        done = subprocess_run([sys.executable, "manage.py", *args], env)
        return done.stdout

    def start(self) -> str:
        """Start everything; returns an API key with the ingest and runs scopes."""
        self.pg.init().start()
        self.pg.create_database("agentops_chaos")
        self.redis.start()
        env = self.env()
        self.manage(env, "migrate", "--no-input")
        self.manage(env, "collectstatic", "--no-input")
        key = self.manage(env, "create_api_key", "chaos").strip().splitlines()[-1]
        py = sys.executable
        queue = env["AGENTOPS_QUEUE"]
        schedule = str(Path(env["AGENTOPS_DATA_DIR"]) / "celerybeat-schedule")
        # The commands `manage.py up` runs for each part.
        commands = {
            "web": [
                py, "-m", "gunicorn", "agentops.wsgi:application", "--bind",
                f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4",
                "--no-control-socket", "--graceful-timeout", "8",
            ],
            "worker": [
                py, "-m", "celery", "-A", "agentops", "worker", "--pool", "threads",
                "--concurrency", "8", "--queues", queue, "--loglevel", "INFO",
                "--hostname", "chaos@%h",
            ],
            "beat": [
                py, "-m", "celery", "-A", "agentops", "beat", "--loglevel", "INFO",
                "--schedule", schedule,
            ],
        }  # fmt: skip
        for name, argv in commands.items():
            log = self.folder / f"{name}.log"
            self.services[name] = Service(name, argv, cwd=ROOT, env=env, log=log).start()
        self.wait_web()
        self.wait_worker()
        self._watcher.start()
        return key

    def wait_web(self, timeout: float = 60) -> None:
        if not wait_for_port(self.port, timeout):
            raise RuntimeError("web did not start:\n" + self.services["web"].log_tail())

    def wait_worker(self, timeout: float = 60) -> None:
        worker = self.services["worker"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = worker.log_tail(20000)
            if " ready." in tail[tail.rfind(f"===== start {worker.starts} ") :]:
                return
            time.sleep(0.2)
        raise RuntimeError("worker did not get ready:\n" + worker.log_tail())

    def _supervise(self) -> None:
        while not self._stop.wait(0.3):
            with self._lock:
                for name, service in self.services.items():
                    if name in self.expected_down or service.alive():
                        continue
                    self.unexpected_exits.append(
                        f"{name} exited with code {service.exit_code()} during {self.phase}"
                    )
                    say(f"{name} exited on its own during {self.phase}; starting it again")
                    say("its log ends:", *service.log_tail(4000).splitlines()[-4:], sep="\n  ")
                    service.start()

    def restart(self, name: str, *, kill: bool) -> None:
        with self._lock:
            self.expected_down.add(name)
        service = self.services[name]
        service.kill() if kill else service.stop()
        service.start()
        with self._lock:
            self.expected_down.discard(name)

    def close(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=10)  # so it starts nothing again while all stops
        for service in self.services.values():
            service.stop(timeout=10)
        self.redis.stop()
        self.pg.cleanup()

    def db(self, sql: str, params=()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pg.url("agentops_chaos"), connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()


def subprocess_run(argv: list[str], env: dict):
    return subprocess.run(
        argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120
    )


class Api:
    """POST /api/v1/runs as a careful client: an Idempotency-Key per run, and the same request
    again with the same key after a connection error, a timeout, a 429 or a 5xx."""

    def __init__(self, stack: Stack, key: str):
        self.stack, self.key = stack, key
        self.sent: dict[str, dict] = {}  # Idempotency-Key → what the client knows
        self.statuses: Counter = Counter()
        self.bad_answers: list[str] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 10):
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            all_headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
            if payload is not None:
                all_headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def _note_answer(self, path: str, status: int, headers: dict, data: bytes) -> None:
        with self._lock:
            self.statuses[f"{path} {status}"] += 1
        if status < 400:
            return
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            shaped = "message" in json.loads(data)["error"]
        except (ValueError, KeyError, TypeError):
            shaped = False
        if not shaped:
            self.bad_answers.append(f"{path} {status} not the JSON error shape during "
                                    f"{self.stack.phase}: {data[:120]!r}")  # fmt: skip
        elif status == 503 and "retry-after" not in lowered:
            self.bad_answers.append(f"{path} 503 without Retry-After during {self.stack.phase}")

    def start_run(self, agent: str, input: dict, *, label: str, resend: bool = False) -> dict:
        key = uuid.uuid4().hex
        body = {"agent": agent, "input": input, "tags": ["chaos"],
                "metadata": {"chaos_key": key, "chaos_label": label}}  # fmt: skip
        record = {"key": key, "label": label, "agent": agent, "ids": [], "tries": 0}
        with self._lock:
            self.sent[key] = record
        for _ in range(2 if resend else 1):  # resend: as if the first answer had been lost
            run_id = self._post_until_answered(body, key, record)
            if run_id:
                record["ids"].append(run_id)
        return record

    def _post_until_answered(self, body: dict, key: str, record: dict) -> str | None:
        delay, deadline = 0.2, time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            record["tries"] += 1
            try:
                status, headers, data = self.request(
                    "POST", "/api/v1/runs", body, {"Idempotency-Key": key}
                )
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.statuses["/api/v1/runs no answer"] += 1
                status = None
            if status is not None:
                self._note_answer("/api/v1/runs", status, headers, data)
                if 200 <= status < 300:  # 202, or the first answer again for a known key
                    return json.loads(data)["id"]
                if status not in (409, 429) and status < 500:  # 409: the key's first try runs
                    self.bad_answers.append(f"POST /api/v1/runs {status}: {data[:200]!r}")
                    return None
                wait = {k.lower(): v for k, v in headers.items()}.get("retry-after", "")
                if wait.isdigit():
                    delay = max(delay, min(int(wait), 5))
            time.sleep(delay)
            delay = min(delay * 2, 2)
        record["gave_up"] = True
        return None


def wait_status(stack: Stack, run_id: str | None, wanted: set, timeout: float = 30) -> str:
    """Wait until the run's status is one of `wanted`; returns the last status seen (the
    reconciliation, not this wait, judges it)."""
    deadline = time.monotonic() + timeout
    status = ""
    while run_id and time.monotonic() < deadline:
        rows = stack.db("SELECT status FROM runs_run WHERE id = %s", (run_id,))
        status = rows[0][0] if rows else ""
        if status in wanted:
            break
        time.sleep(0.2)
    return status


class Load:
    """Runs (a quick demo agent) and ingest batches (through the client) in the background."""

    def __init__(self, stack: Stack, api: Api, key: str):
        self.stack, self.api = stack, api
        self.client = Client(stack.url, key, batch_size=50, flush_interval=0.2, timeout=5,
                             retry_initial=0.2, retry_max=2.0)  # fmt: skip
        self.event_ids: list[str] = []
        self.ingest_run_ids: list[str] = []
        self.direct: list[str] = []  # events sent by hand and answered as stored
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._runs, daemon=True),
            threading.Thread(target=self._ingest, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = RETRY_SECONDS + 10) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _runs(self) -> None:
        n = 0
        while not self._stop.wait(0.4):
            n += 1
            self.api.start_run("demo-support", QUESTION, label="load", resend=n % 5 == 0)

    def _ingest(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            with self.client.run("chaos-ingest", input={"n": n}, tags=["chaos"]) as run:
                self.ingest_run_ids.append(run.id)
                for i in range(10):
                    event_id = run.event("tool_call", name=f"t{i}", input={"i": i}, output=i)
                    self.event_ids.append(event_id)
                    self._stop.wait(0.02)
                run.output = {"n": n}

    def ingest_by_hand(self) -> tuple[int | None, str]:
        """One batch straight to /ingest (while a part is down); returns its first answer."""
        run_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
        body = {"runs": [{"id": run_id, "agent": "chaos-probe", "status": "succeeded"}],
                "events": [{"id": event_id, "run_id": run_id, "kind": "tool_call",
                            "name": "probe"}]}  # fmt: skip
        first = None
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            try:
                status, headers, data = self.api.request("POST", "/api/v1/ingest", body)
                self.api._note_answer("/api/v1/ingest", status, headers, data)
            except (OSError, http.client.HTTPException):
                status = None
            first = first or status
            if status == 200:
                self.direct.append(event_id)
                self.ingest_run_ids.append(run_id)
                return first, event_id
            time.sleep(0.5)
        return first, event_id


FINISHED = {"succeeded", "failed", "cancelled", "budget_exceeded", "lost"}


def first_id(record: dict) -> str | None:
    return record["ids"][0] if record["ids"] else None


def in_background(fn, *args, **kwargs) -> dict:
    """Run fn(*args, **kwargs) in a thread; the returned dict gets its result under "value"."""
    box: dict = {}
    box["thread"] = threading.Thread(
        target=lambda: box.update(value=fn(*args, **kwargs)), daemon=True
    )
    box["thread"].start()
    return box
