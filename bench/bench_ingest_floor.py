"""The write path alone: what ingest costs below HTTP, on PostgreSQL.

    .venv/bin/python bench/bench_ingest_floor.py [--clients 4] [--batches 250]

The same batches as bench/bench_ingest.py, but each client is a process that calls
`runs.services.ingest.ingest_batch` itself (the function POST /api/v1/ingest ends in), with the
items decoded and validated before the clock starts. No gunicorn, no HTTP, no key lookup, no
throttle, no JSON parsing or validation: what is left is the database work of a batch (lock,
reads, COPY, upsert, counters, commit) and the Python that feeds it (masking, encoding for COPY,
the ORM).

With --bare the clients do not use the application at all: each batch's rows are encoded before
the clock starts, and a plain psycopg connection sends the statements the write path sends for a
batch of new steps (advisory lock, stored ids and last seq, COPY straight into the steps' table,
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
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import (  # noqa: E402
    add_load_arguments,
    bench_env,
    machine,
    make_batches,
    percentile,
    postgres_cpu,
    prepare_database,
    reconcile,
)


def client(batches, *signals) -> None:
    """One client process: validate its batches, then store them back to back on the signal."""
    import django

    django.setup()
    from ingest.items import EventItem, RunItem, validate_items
    from runs.services.ingest import ingest_batch

    def store(batch):
        runs, events = batch
        rejected = ingest_batch(runs=runs, events=events)[1]
        assert not rejected, rejected

    prepared = []
    for body, *_ in batches:
        data = json.loads(body)
        runs = validate_items("run", RunItem, data["runs"], 0, [])
        events = validate_items("event", EventItem, data["events"], 0, [])
        prepared.append((runs, events))
    timed(store, prepared, *signals)


def bare_client(database_url, batches, *signals) -> None:
    """One client process without the application: the write path's statements, rows encoded
    before the clock starts."""
    import psycopg

    # The columns the batches carry, `seq` second (the server numbers steps).
    sent = sorted({key for body, *_ in batches for key in json.loads(body)["events"][0]})
    columns = ["id", "seq", *(c for c in sent if c != "id")]
    names = ", ".join(columns)
    with psycopg.connect(database_url) as conn:
        prepared = []
        for body, run_id, *_ in batches:
            rows = []
            for position, step in enumerate(json.loads(body)["events"]):
                step["seq"] = position  # the place in the batch; the run's last seq is added
                rows.append([_text(step.get(c, "" if c == "model" else None)) for c in columns])
            prepared.append((run_id, rows))
            conn.execute(
                "INSERT INTO runs_run (id, agent, status, input, caps, user_ref, session_ref, "
                "tags, metadata, source, created_at, tool_calls, model_calls, input_tokens, "
                "output_tokens, cost_usd, error_code, cap_hit, worker, attempt, replay_mode, "
                "dispatches, approval_policy) "
                "VALUES (%s, 'bench', 'running', '{}', '{}', '', '', '[]', '{}', 'external', "
                "now(), 0, 0, 0, 0, 0, '', '', '', 0, '', 0, '{}') ON CONFLICT DO NOTHING",
                [run_id],
            )
        conn.commit()

        def store(batch):
            run_id, rows = batch
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [run_id])
                cursor.execute(
                    "SELECT 0, id, NULL FROM runs_event WHERE id = ANY(%s::uuid[]) UNION ALL "
                    "SELECT 1, r, (SELECT MAX(seq) FROM runs_event WHERE run_id = r) "
                    "FROM unnest(%s::uuid[]) AS r",
                    ["{" + ",".join(row[0] for row in rows) + "}", "{" + run_id + "}"],
                )
                last = max((seq for which, _, seq in cursor.fetchall() if which), default=None)
                first = 0 if last is None else last + 1
                with cursor.copy(f"COPY runs_event ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[0], first + row[1], *row[2:]])
                cursor.execute(
                    "UPDATE runs_run SET tool_calls = tool_calls + %s, "
                    "model_calls = model_calls + %s WHERE id = %s",
                    [len(rows) // 4, len(rows) // 4, run_id],
                )
            conn.commit()

        timed(store, prepared, *signals)


def _text(value):
    """A value as COPY takes it: JSON objects and lists as their text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def timed(store, prepared: list, ready, start, results, finish) -> None:
    """Say ready, wait for the start, store each prepared batch, report (latencies, CPU
    seconds), then keep the database session (and its CPU figures) until they are read."""
    ready.release()
    start.wait()
    cpu = time.process_time()
    latencies = []
    for batch in prepared:
        started = time.perf_counter()
        store(batch)
        latencies.append(time.perf_counter() - started)
    results.put((latencies, time.process_time() - cpu))
    finish.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
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
    env = bench_env(args.database_url, data_dir, DJANGO_SETTINGS_MODULE="agentops.settings")
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
    database = urlsplit(args.database_url).path.lstrip("/")
    before = postgres_cpu(database)
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
    database_cpu = postgres_cpu(database) - before
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
