#!/usr/bin/env python
"""Runner benchmark: prints figures, asserts nothing.

1. Recording overhead per step: one run of `steps` instant tool calls executed in this process
   with the database recorder, against the same run with the in-memory recorder, `repeats`
   times each (interleaved); wall and CPU (process time) per step, median and range, and the
   queries the database run sent.
2. Enqueue → running latency: runs created one by one, picked up by a real worker over the broker;
   started_at − created_at per run.
3. Concurrent I/O-bound runs on one worker host: N runs whose tool calls each await 1 s, all
   queued at once to one worker process (threads pool); the most runs executing at the same time.
4. Spend windows: N runs executed at once in this process (a thread each), every model call
   holding its worst case against the same window and settling it; the time the hold and the
   settle take per model call (p50, p99), and the same runs without a window for comparison.

Usage (PostgreSQL + Redis by default; a database of its own, created if missing):
    .venv/bin/python bench/bench_runner.py [--steps 500] [--repeats 5] [--latency-runs 100]
        [--concurrent 250] [--window-runs 50] [--only overhead|latency|concurrency|windows]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from bench_ingest import postgres_cpu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/agentops_bench_runner")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
os.environ["AGENTOPS_AGENT_MODULES"] = "bench.agents"
os.environ["AGENTOPS_QUEUE"] = f"agentops-bench-{uuid.uuid4().hex[:8]}"
os.environ.setdefault("AGENTOPS_DATA_DIR", tempfile.mkdtemp(prefix="agentops-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def ensure_database(url: str) -> None:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return
    import psycopg

    name = parts.path.lstrip("/")
    admin = url.replace(parts.path, "/postgres", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_worker(concurrency: int) -> subprocess.Popen:
    from django.conf import settings

    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "agentops", "worker", "--pool", "threads",
         "--concurrency", str(concurrency), "--queues", settings.AGENTOPS_QUEUE,
         "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
         "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT,
        # As in production: DEBUG=0 (DEBUG keeps every query's SQL: ~20 % more CPU per run).
        env=dict(os.environ, DEBUG="0", SECRET_KEY="bench-" + uuid.uuid4().hex),
        start_new_session=True,
    )  # fmt: skip


def process_cpu_s(pid: int, *, split: bool = False):
    """User + system CPU seconds a process has used so far (Linux); with `split`, the two."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = (int(fields[i]) / os.sysconf("SC_CLK_TCK") for i in (11, 12))
    return (user, system) if split else user + system


def stop_worker(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_all(ids, timeout: float):
    from runs.models import TERMINAL_STATUSES, Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Run.objects.filter(id__in=ids).exclude(status__in=TERMINAL_STATUSES).exists():
            return list(Run.objects.filter(id__in=ids))
        time.sleep(0.2)
    raise SystemExit(f"runs did not finish within {timeout}s")


def bench_overhead(steps: int, repeats: int) -> None:
    from django.db import connection

    from runs.agents import get_agent
    from runs.engine.caps import Caps
    from runs.engine.recorder import MemoryRecorder
    from runs.engine.runner import execute
    from runs.models import Run
    from runs.worker import run_execute

    caps = Caps(max_tool_calls=steps + 1)
    spec = get_agent("bench-steps")

    def in_memory():
        execute(spec, {"steps": steps}, caps, MemoryRecorder(), price_for=lambda m: None)

    def in_database():
        run = Run.objects.create(agent="bench-steps", input={"steps": steps}, caps=caps.to_dict())
        queries = []
        with connection.execute_wrapper(
            lambda ex, sql, *args: queries.append(sql) or ex(sql, *args)
        ):
            run_execute(run_id=run.id, worker="bench")
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        in_database.recorded, in_database.queries = run.events.count(), len(queries)

    def timed(fn):
        cpu0, t0 = time.process_time(), time.perf_counter()
        fn()
        return time.perf_counter() - t0, time.process_time() - cpu0

    in_memory(), in_database()  # warm both paths (imports, prices, the pool)
    wall, cpu = [], []
    for _ in range(repeats):  # interleaved, so both see the same load
        (mw, mc), (dw, dc) = timed(in_memory), timed(in_database)
        wall.append((dw - mw) * 1000 / in_database.recorded)
        cpu.append((dc - mc) * 1000 / in_database.recorded)
    print(
        f"[overhead] {steps} tool calls, {in_database.recorded} steps recorded, "
        f"{in_database.queries} queries per run; {repeats} runs each, load {os.getloadavg()[0]:.2f}"
    )
    print(f"  in-memory recorder: {mw * 1000 / steps:.3f} ms per tool call (last run)")
    print(f"  database recorder:  {dw * 1000 / steps:.3f} ms per tool call (last run)")
    print(
        f"  recording overhead: {statistics.median(wall):.3f} ms per recorded step "
        f"(median; {min(wall):.3f}–{max(wall):.3f})"
    )
    print(f"  recording CPU:      {statistics.median(cpu):.3f} ms per recorded step "
          f"(median; {min(cpu):.3f}–{max(cpu):.3f}, this process)")  # fmt: skip


def bench_latency(runs: int) -> None:
    from runs.services.runs import run_create

    proc = start_worker(concurrency=8)
    try:
        time.sleep(3)  # let it connect
        warm = run_create(agent="bench-steps", input={"steps": 1})
        wait_all([warm.id], 60)
        ids = []
        for _ in range(runs):
            ids.append(run_create(agent="bench-steps", input={"steps": 1}).id)
            time.sleep(0.02)
        done = wait_all(ids, 120)
    finally:
        stop_worker(proc)
    lat = [(r.started_at - r.created_at).total_seconds() * 1000 for r in done]
    print(f"[latency] enqueue → running over {len(lat)} runs ({os.environ['CELERY_BROKER_URL']})")
    print(f"  p50 {percentile(lat, 50):.1f} ms  p95 {percentile(lat, 95):.1f} ms  "
          f"max {max(lat):.1f} ms")  # fmt: skip


def bench_concurrency(n: int, calls: int, seconds: float, processes: int) -> None:
    from runs.services.runs import run_create

    # Queued (and sent to the broker) before the worker starts, so they reach it all at once.
    ids = [
        run_create(agent="bench-io", input={"calls": calls, "seconds": seconds}).id
        for _ in range(n)
    ]
    database = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/")
    postgres_before = postgres_cpu(database)
    workers = [start_worker(concurrency=-(-n // processes)) for _ in range(processes)]
    try:
        done = wait_all(ids, 600)
        postgres_s = postgres_cpu(database) - postgres_before
        split = [process_cpu_s(proc.pid, split=True) for proc in workers]
        user_s, system_s = sum(u for u, _ in split), sum(s for _, s in split)
        cpu_s = user_s + system_s
    finally:
        for proc in workers:
            stop_worker(proc)
    ok = sum(r.status == "succeeded" for r in done)
    edges = sorted(
        [(r.started_at, 1) for r in done if r.started_at]
        + [(r.finished_at, -1) for r in done if r.finished_at]
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    each = statistics.median((r.finished_at - r.started_at).total_seconds() for r in done)
    first = min(r.started_at for r in done)
    span = (max(r.finished_at for r in done) - first).total_seconds()
    print(
        f"[concurrency] {n} runs x {calls} tool calls awaiting {seconds} s, {processes} worker "
        f"process(es) on the threads pool; load {os.getloadavg()[0]:.2f}"
    )
    print(f"  succeeded {ok}/{n}; at most {peak} running at once; median run {each:.2f} s "
          f"(ideal {calls * seconds:.2f} s, {each / (calls * seconds) - 1:+.1%}); "
          f"first start to last end {span:.1f} s")  # fmt: skip
    print(f"  worker CPU: {cpu_s:.1f} s in all ({system_s:.1f} s in the kernel), "
          f"{cpu_s * 1000 / n:.1f} ms per run (start-up included)")  # fmt: skip
    print(f"  PostgreSQL CPU (this database's sessions): {postgres_s:.1f} s, "
          f"{postgres_s * 1000 / n:.1f} ms per run")  # fmt: skip


def bench_windows(runs: int, calls: int) -> None:
    import threading
    from decimal import Decimal

    from django.db import connection

    from bench.agents import BENCH_MODEL
    from runs.models import ModelPrice, Run, SpendWindow
    from runs.services import windows as window_service
    from runs.services.windows import window_create
    from runs.worker import run_execute

    ModelPrice.objects.get_or_create(
        model=BENCH_MODEL, defaults={"input_per_mtok": 1, "output_per_mtok": 2}
    )
    timings: list[float] = []
    lock = threading.Lock()
    original = window_service.DbSpendGuard

    class TimedGuard(original):
        def reserve(self, amount):
            t0 = time.perf_counter()
            try:
                return super().reserve(amount)
            finally:
                with lock:
                    timings.append(time.perf_counter() - t0)

        def settle(self, ref, cost):
            t0 = time.perf_counter()
            super().settle(ref, cost)
            with lock:
                timings.append(time.perf_counter() - t0)

    def execute_all(label: str) -> float:
        ids = [
            Run.objects.create(agent="bench-model", input={"calls": calls}, caps={}).id
            for _ in range(runs)
        ]
        threads = [
            threading.Thread(target=lambda i=i: (run_execute(run_id=i, worker="bench"),
                                                 connection.close()))
            for i in ids
        ]  # fmt: skip
        cpu0, t0 = time.process_time(), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        done = Run.objects.filter(id__in=ids, status="succeeded").count()
        per_call = cpu * 1000 / (runs * calls)
        print(f"  {label}: {done}/{runs} succeeded in {wall:.2f} s, "
              f"{per_call:.3f} ms CPU per model call (this process)")  # fmt: skip
        return wall

    def ids_alone():
        return Run.objects.create(agent="bench-model", input={}, caps={}).id

    print(f"[windows] {runs} runs at once x {calls} model calls, one window covering all")
    SpendWindow.objects.all().delete()
    execute_all("no window")
    window = window_create(scope="global", period="day", limit_usd="99999")
    window_service.DbSpendGuard = TimedGuard
    import runs.worker as worker_module

    worker_module.DbSpendGuard = TimedGuard
    try:
        execute_all("one window")
    finally:
        worker_module.DbSpendGuard = window_service.DbSpendGuard = original
    per_call = [a + b for a, b in zip(timings[0::2], timings[1::2], strict=False)]
    ms = [t * 1000 for t in per_call]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(f"  hold + settle per model call: p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
          f"max {max(ms):.3f} ms over {len(ms)} calls")  # fmt: skip
    alone = window_service.DbSpendGuard(run_id=ids_alone(), scopes=["global"])
    single = []
    for _ in range(200):
        t0 = time.perf_counter()
        alone.settle(alone.reserve(Decimal("0.001")), Decimal("0.0005"))
        single.append((time.perf_counter() - t0) * 1000)
    print(f"  one run alone: hold + settle p50 {percentile(single, 50):.3f} ms  "
          f"p99 {percentile(single, 99):.3f} ms over {len(single)} calls")  # fmt: skip
    state = window.periods.get()
    print(f"  window spent ${Decimal(state.spent_micros) / 1_000_000}, "
          f"held ${Decimal(state.reserved_micros) / 1_000_000} after")  # fmt: skip
    window.delete()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=250)
    parser.add_argument("--window-runs", type=int, default=50)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--only", choices=["overhead", "latency", "concurrency", "windows"])
    args = parser.parse_args()

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}; "
          f"cores: {os.cpu_count()}")  # fmt: skip
    if args.only in (None, "overhead"):
        bench_overhead(args.steps, args.repeats)
    if args.only in (None, "latency"):
        bench_latency(args.latency_runs)
    if args.only in (None, "concurrency"):
        bench_concurrency(args.concurrent, calls=3, seconds=1.0, processes=args.processes)
    if args.only in (None, "windows"):
        bench_windows(args.window_runs, calls=20)


if __name__ == "__main__":
    main()
