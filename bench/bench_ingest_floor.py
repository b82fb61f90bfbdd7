"""The write path alone: what ingest costs below HTTP, on PostgreSQL.

    .venv/bin/python bench/bench_ingest_floor.py [--clients 4] [--batches 250]

The same batches as bench/bench_ingest.py, but each client is a process that calls
`runs.ingestion.ingest_batch` itself (the function POST /api/v1/ingest ends in), with the items
decoded and validated before the clock starts. No gunicorn, no HTTP, no key lookup, no throttle,
no JSON parsing or validation: what is left is the database work of a batch (lock, reads, COPY,
upsert, counters, commit) and the Python that feeds it (masking, encoding for COPY, the ORM).

With --bare the clients do not use the application at all: each batch's rows are encoded before
the clock starts, and a plain psycopg connection sends the statements the write path sends for a
batch of new steps (advisory lock, stored ids and last seq, COPY into the load table, the upsert,
the run's counters, commit). That is PostgreSQL's ceiling on this machine with the thinnest
client Python allows.

Prints events/s and, per batch, the CPU of PostgreSQL and of the clients. PostgreSQL's CPU per
batch times the batches per second a target needs is the share of the cores the database alone
takes; the rest is what HTTP, validation and everything else must fit in.
Not a test: it prints figures and exits non-zero only when the reconciliation fails.
"""

import argparse
import json
import multiprocessing
import os
import queue
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import machine, make_batches, percentile, prepare_database, reconcile  # noqa: E402


def postgres_cpu() -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith("postgres"):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def client(batches, ready, start, results, finish) -> None:
    """One client process: validate its batches, then store them back to back on the signal."""
    import django

    django.setup()
    from ingest.items import EventItem, RunItem, validate_items
    from runs.ingestion import ingest_batch

    prepared = []
    for body, *_ in batches:
        data = json.loads(body)
        runs = validate_items("run", RunItem, data["runs"], 0, [])
        events = validate_items("event", EventItem, data["events"], 0, [])
        prepared.append((runs, events))
    ready.release()
    start.wait()
    cpu = time.process_time()
    latencies = []
    for runs, events in prepared:
        started = time.perf_counter()
        counts, rejected = ingest_batch(runs=runs, events=events)
        latencies.append(time.perf_counter() - started)
        assert not rejected, rejected
    results.put((latencies, time.process_time() - cpu))
    finish.wait()  # keep the database session (and its CPU figures) until they are read


def bare_client(database_url, batches, ready, start, results, finish) -> None:
    """One client process without the application: the write path's statements, rows encoded
    before the clock starts."""
    import psycopg

    columns = list(EVENT_COLUMNS)
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("id", "run_id", "seq"))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TEMPORARY TABLE load (LIKE runs_event INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        prepared = []
        for body, run_id, *_ in batches:
            data = json.loads(body)
            rows = [[step.get(c, DEFAULTS.get(c)) for c in columns] for step in data["events"]]
            for seq, row in enumerate(rows):
                row[1] = seq  # numbered per batch below
                for index in JSON_INDEXES:
                    row[index] = json.dumps(row[index]) if row[index] is not None else None
                row[columns.index("attributes")] = row[columns.index("attributes")] or "{}"
            prepared.append((run_id, rows))
            conn.execute(
                "INSERT INTO runs_run (id, agent, status, input, caps, user_ref, session_ref, "
                "tags, metadata, source, created_at, tool_calls, model_calls, input_tokens, "
                "output_tokens, cost_usd, error_code, cap_hit, worker, attempt, replay_mode) "
                "VALUES (%s, 'bench', 'running', '{}', '{}', '', '', '[]', '{}', 'external', "
                "now(), 0, 0, 0, 0, 0, '', '', '', 0, '') ON CONFLICT DO NOTHING",
                [run_id],
            )
        conn.commit()
        ready.release()
        start.wait()
        cpu = time.process_time()
        latencies = []
        for run_id, rows in prepared:
            started = time.perf_counter()
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [run_id])
                ids = "{" + ",".join(row[0] for row in rows) + "}"
                cursor.execute(
                    "SELECT 0, id, NULL FROM runs_event WHERE id = ANY(%s::uuid[]) UNION ALL "
                    "SELECT 1, r, (SELECT MAX(seq) FROM runs_event WHERE run_id = r) "
                    "FROM unnest(%s::uuid[]) AS r",
                    [ids, "{" + run_id + "}"],
                )
                last = max((seq for which, _, seq in cursor.fetchall() if which), default=None)
                base = -1 if last is None else last
                with cursor.copy(f"COPY load ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[0], base + 1 + row[1], *row[2:]])
                cursor.execute(
                    f"WITH loaded AS (DELETE FROM load RETURNING {names}) "
                    f"INSERT INTO runs_event ({names}) SELECT {names} FROM loaded "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}"
                )
                cursor.execute(
                    "UPDATE runs_run SET tool_calls = tool_calls + %s, "
                    "model_calls = model_calls + %s WHERE id = %s",
                    [len(rows) // 4, len(rows) // 4, run_id],
                )
            conn.commit()
            latencies.append(time.perf_counter() - started)
        results.put((latencies, time.process_time() - cpu))
        finish.wait()


# The step columns in the order the bare client sends them, and which of them are JSON.
EVENT_COLUMNS = (
    "id",
    "seq",
    "run_id",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "input",
    "output",
    "model",
    "input_tokens",
    "output_tokens",
    "attributes",
)
DEFAULTS = {"model": "", "name": "", "status": "ok"}
JSON_INDEXES = [EVENT_COLUMNS.index(c) for c in ("input", "output", "attributes")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=250, help="batches per client")
    parser.add_argument("--events", type=int, default=100, help="events per batch")
    parser.add_argument("--event-bytes", type=int, default=1024)
    parser.add_argument("--run-batches", type=int, default=10, help="batches per run")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/agentops_bench_floor"
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="plain psycopg clients sending the write path's statements (no application code)",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="agentops-bench-floor-"))
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="agentops.settings",
        DATABASE_URL=args.database_url,
        AGENTOPS_DATA_DIR=str(data_dir),
        DEBUG="0",
        SECRET_KEY="bench-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        LOG_LEVEL="WARNING",
        CELERY_BROKER_URL="filesystem://",
    )
    os.environ.update(env)
    print(f"machine: {machine()}")
    mode = "bare psycopg clients" if args.bare else "clients calling ingest_batch"
    print(f"database: {args.database_url}; {args.clients} {mode}")
    prepare_database(args.database_url, env)
    batches = [
        make_batches(n, args.batches, args.events, args.event_bytes, args.run_batches)
        for n in range(args.clients)
    ]

    context = multiprocessing.get_context("spawn")
    ready, start, finish = context.Semaphore(0), context.Event(), context.Event()
    results = context.Queue()
    if args.bare:
        target, first = bare_client, (args.database_url,)
    else:
        target, first = client, ()
    procs = [
        context.Process(target=target, args=(*first, mine, ready, start, results, finish))
        for mine in batches
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        while not ready.acquire(timeout=1):
            if any(proc.exitcode for proc in procs):
                raise SystemExit("a client process failed (its traceback is above)")
    before = postgres_cpu()
    started = time.perf_counter()
    start.set()
    outcomes = []
    while len(outcomes) < len(procs):
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:
            if any(proc.exitcode for proc in procs):
                raise SystemExit("a client process failed (its traceback is above)") from None
    wall = time.perf_counter() - started
    database_cpu = postgres_cpu() - before
    finish.set()
    for proc in procs:
        proc.join()

    count = args.clients * args.batches
    latencies = [latency for mine, _ in outcomes for latency in mine]
    client_cpu = sum(cpu for _, cpu in outcomes)
    print(f"\n{args.clients} clients x {args.batches} batches x {args.events} events")
    print(f"events/s:        {count * args.events / wall:,.0f}  ({wall:.2f} s)")
    print(
        f"batch latency:   p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms"
    )
    print(
        f"cpu per batch:   postgres {database_cpu / count * 1000:.2f} ms, "
        f"clients {client_cpu / count * 1000:.2f} ms"
    )
    print(f"cpu during load: postgres {database_cpu / wall:.0%}, clients {client_cpu / wall:.0%}")

    if args.bare:
        return 0  # rows only: the bare clients keep no counters worth reconciling
    counts = reconcile(env, {})
    runs = len({b[1] for mine in batches for b in mine})
    gapless = not counts["runs_with_seq_gaps"]
    print(f"reconciled:      {counts['events']:,} rows, {counts['runs']} runs, gapless: {gapless}")
    expected = count * args.events
    if counts["events"] != expected or counts["distinct_ids"] != expected or counts["runs"] != runs:
        print(f"RECONCILIATION FAILED: expected {expected:,} rows in {runs} runs")
        return 1
    return 0 if gapless else 1


if __name__ == "__main__":
    sys.exit(main())
