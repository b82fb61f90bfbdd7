"""The write path alone: what ingest costs below HTTP, on PostgreSQL.

    .venv/bin/python bench/bench_ingest_floor.py [--clients 4] [--batches 250]

The same batches as bench/bench_ingest.py, but each client is a process that calls
`runs.ingestion.ingest_batch` itself (the function POST /api/v1/ingest ends in), with the items
decoded and validated before the clock starts. No gunicorn, no HTTP, no key lookup, no throttle,
no JSON parsing or validation: what is left is the database work of a batch (lock, reads, COPY,
upsert, counters, commit) and the Python that feeds it (masking, encoding for COPY, the ORM).

Prints events/s and, per batch, the CPU of PostgreSQL and of the clients. PostgreSQL's CPU per
batch times the batches per second a target needs is the share of the cores the database alone
takes; the rest is what HTTP, validation and everything else must fit in.
Not a test: it prints figures and exits non-zero only when the reconciliation fails.
"""

import argparse
import json
import multiprocessing
import os
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


def client(batches, ready, start, results) -> None:
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
    print(f"database: {args.database_url}; {args.clients} client processes")
    prepare_database(args.database_url, env)
    batches = [
        make_batches(n, args.batches, args.events, args.event_bytes, args.run_batches)
        for n in range(args.clients)
    ]

    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Semaphore(0), context.Event(), context.Queue()
    procs = [context.Process(target=client, args=(mine, ready, start, results)) for mine in batches]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    before = postgres_cpu()
    started = time.perf_counter()
    start.set()
    outcomes = [results.get() for _ in procs]
    wall = time.perf_counter() - started
    database_cpu = postgres_cpu() - before
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
        f"clients {client_cpu / count * 1000:.2f} ms (the write path's Python)"
    )
    print(f"cpu during load: postgres {database_cpu / wall:.0%}, clients {client_cpu / wall:.0%}")

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
