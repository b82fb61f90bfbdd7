"""Ingest while a prune runs: batch latency with and without `manage.py prune` deleting 1M steps.

    .venv/bin/python bench/bench_prune.py [--steps 1000000] [--steps-per-run 20] [--clients 4]

Creates its own database (dropped first), fills it with `--steps` old steps (finished runs
created years ago, ~`--event-bytes` each, written with COPY through the tables' real indexes),
starts gunicorn as bench_ingest.py does, then measures the same ingest load three times: before
the prune, while `manage.py prune` deletes every seeded run, and after it. Prints p50/p99 batch
latency of each phase, the prune's own rate, and the ratio judged: p99 during the prune over
p99 without it (target: at most 2). The ingest load's runs are recent, so the prune never takes
one of them; it is checked that every seeded run and step is gone and every ingested one stays.

Not a test: it prints figures, and exits non-zero only when the prune removed the wrong rows.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import (  # noqa: E402
    PYTHON,
    Sender,
    add_load_arguments,
    bench_env,
    create_keys,
    default_cache,
    free_port,
    load,
    machine,
    make_batches,
    percentile,
    prepare_database,
    run,
    start_gunicorn,
)

# Seeded runs are created from here on, one a minute; the ingest load's runs start in 2025.
SEED_START = datetime(2020, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2024, 1, 1, tzinfo=UTC)

SEED = """
import json, random, time, uuid
from datetime import datetime, timedelta
from django.db import connection
steps, per_run, size = {steps}, {per_run}, {size}
start = datetime.fromisoformat({start!r})
rng = random.Random(1)
filler = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(4096))
runs = (steps + per_run - 1) // per_run
t = time.monotonic()
with connection.cursor() as cursor:
    raw = cursor.cursor
    with raw.copy("COPY runs_run (id, agent, status, input, output, caps, tool_calls, "
                  "model_calls, input_tokens, output_tokens, cost_usd, created_at, started_at, "
                  "finished_at, user_ref, session_ref, tags, metadata, source, replay_mode, "
                  "worker, attempt, error_code, cap_hit, dispatches) FROM STDIN") as copy:
        run_ids = []
        for r in range(runs):
            run_id = uuid.uuid4()
            run_ids.append(run_id)
            at = start + timedelta(minutes=r)
            copy.write_row([run_id, "seeded", "succeeded", json.dumps({{"question": filler[:80]}}),
                            json.dumps({{"answer": filler[80:200]}}), "{{}}", per_run // 2,
                            per_run // 2, 1000, 200, "0.01", at, at, at + timedelta(seconds=30),
                            f"user-{{r}}", "", "[]", "{{}}", "external", "", "", 1, "", "", 0])
    with raw.copy("COPY runs_event (id, run_id, seq, kind, name, status, started_at, ended_at, "
                  "input, output, model, attributes) FROM STDIN") as copy:
        written = 0
        for r, run_id in enumerate(run_ids):
            at = start + timedelta(minutes=r)
            for seq in range(min(per_run, steps - written)):
                kind = "model_call" if seq % 2 == 0 else "tool_call"
                o = rng.randrange(2048)
                text = filler[o:o + size // 2]
                copy.write_row([uuid.uuid4(), run_id, seq, kind, f"step-{{seq}}", "ok", at, at,
                                json.dumps({{"messages": [{{"role": "user", "content": text}}]}}),
                                json.dumps({{"text": text}}), "", "{{}}"])
                written += 1
print(json.dumps({{"runs": runs, "steps": written, "seconds": time.monotonic() - t}}))
"""

COUNT = """
import json
from runs.models import Event, Run
print(json.dumps({"seeded_runs": Run.objects.filter(agent="seeded").count(),
                  "seeded_steps": Event.objects.filter(run__agent="seeded").count(),
                  "other_runs": Run.objects.exclude(agent="seeded").count(),
                  "other_steps": Event.objects.exclude(run__agent="seeded").count()}))
"""


def shell(env: dict, script: str) -> dict:
    out = run([PYTHON, "manage.py", "shell", "-c", script], env, capture_output=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def psql(url: str, sql: str, env: dict) -> None:
    run(["psql", url, "-q", "-c", sql], env, capture_output=True)


class Loader:
    """The ingest load of bench_ingest.py, always with fresh batches (new runs), so it can go
    on for as long as a prune takes."""

    def __init__(self, port, keys, args):
        self.port, self.keys, self.args = port, keys, args
        self.round = 0
        self.sent = 0  # events posted by once()

    def batches(self):
        self.round += 1
        a, n = self.args, len(self.keys)
        return [
            make_batches(self.round * 1000 + c, a.batches, a.events, a.event_bytes, a.run_batches)
            for c in range(n)
        ]

    def prepare(self, rounds: int) -> None:
        """Build the batches the clients post while the prune runs, before it starts."""
        self.ready = [[] for _ in self.keys]
        self.late = [0 for _ in self.keys]
        for _ in range(rounds):
            for n, batches in enumerate(self.batches()):
                self.ready[n].append(batches)

    def once(self) -> tuple[float, list[float]]:
        self.sent += len(self.keys) * self.args.batches * self.args.events
        return load(self.port, self.keys, self.batches())

    def until(self, done: threading.Event) -> tuple[int, float, list[float]]:
        """Each client posts fresh batches back to back until `done` is set; only the requests
        begun before it count. Returns (events sent, seconds, latencies)."""
        latencies: list[float] = []
        sent = [0]
        lock = threading.Lock()

        def client(n: int):
            sender, mine = Sender(self.port, self.keys[n]), []
            while not done.is_set():
                if self.ready[n]:
                    batches = self.ready[n].pop()
                else:  # built here, on the clock: --ready-rounds was too few for this prune
                    a = self.args
                    batches = make_batches(
                        (1000 + len(mine)) * 1000 + n, a.batches, a.events, a.event_bytes,
                        a.run_batches,
                    )  # fmt: skip
                    self.late[n] += 1
                for body, *_ in batches:
                    if done.is_set():
                        break
                    status, answer, elapsed = sender.post(body)
                    if status != 200:
                        raise SystemExit(f"{status}: {str(answer)[:300]}")
                    mine.append(elapsed)
            with lock:
                latencies.extend(mine)
                sent[0] += len(mine) * self.args.events

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(len(self.keys))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sent[0], time.perf_counter() - started, latencies


def describe(name: str, wall: float, latencies: list[float], events: int) -> str:
    return (
        f"{name:<16} p50 {percentile(latencies, 50) * 1000:6.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:6.1f} ms, max {max(latencies) * 1000:6.1f} ms; "
        f"{len(latencies)} batches, {events / wall:,.0f} events/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--steps", type=int, default=1_000_000, help="old steps to prune")
    parser.add_argument("--steps-per-run", type=int, default=20)
    parser.add_argument("--batch-steps", type=int, default=5000, help="prune's batch size")
    parser.add_argument(
        "--ready-rounds", type=int, default=4, help="rounds of batches built for the prune phase"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/agentops_bench_prune"
    )
    parser.add_argument("--cache-url", default=os.environ.get("CACHE_URL", default_cache()))
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="agentops-bench-prune-"))
    env = bench_env(args.database_url, data_dir, CACHE_URL=args.cache_url, DATABASE_POOL_MAX="2")
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"database: {args.database_url}; gunicorn sync x{args.workers}; {args.clients} clients")
    prepare_database(args.database_url, env)
    seed = SEED.format(
        steps=args.steps, per_run=args.steps_per_run, size=args.event_bytes,
        start=SEED_START.isoformat(),
    )  # fmt: skip
    print(f"seeding {args.steps:,} old steps …", flush=True)
    seeded = shell(env, seed)
    psql(args.database_url, "VACUUM ANALYZE", env)
    print(f"seeded {seeded['runs']:,} runs, {seeded['steps']:,} steps in {seeded['seconds']:.0f} s")

    keys = create_keys(args.clients, env)
    port = free_port()
    server = start_gunicorn(port, env, args.workers, 1, data_dir / "gunicorn.log", "sync")
    per_round = args.clients * args.batches * args.events
    try:
        loader = Loader(port, keys, args)
        loader.once()  # warm-up
        wall, before = loader.once()
        print(describe("without prune:", wall, before, per_round), flush=True)

        days = (datetime.now(UTC) - CUTOFF).days
        command = [PYTHON, "manage.py", "prune", "--older-than", f"{days}d"]
        command += ["--batch-steps", str(args.batch_steps)]
        loader.prepare(args.ready_rounds)
        done = threading.Event()
        result = {}

        def prune():
            started = time.perf_counter()
            out = run(command, env, capture_output=True).stdout
            result.update(seconds=time.perf_counter() - started, out=out.strip())
            done.set()

        thread = threading.Thread(target=prune)
        thread.start()
        events, wall, during = loader.until(done)
        thread.join()
        print(describe("during prune:", wall, during, events))
        if any(loader.late):
            print(f"                 ({sum(loader.late)} rounds built during the load)")
        wall, after = loader.once()
        print(describe("after prune:", wall, after, per_round))
        print(f"prune:           {result['out']}")
        steps_per_s = seeded["steps"] / result["seconds"]
        print(f"prune took:      {result['seconds']:.1f} s ({steps_per_s:,.0f} steps/s under load)")
        p99 = percentile(during, 99)
        base = [percentile(before, 99), percentile(after, 99)]
        print(
            f"p99 ratio:       {p99 / base[0]:.2f}x the p99 before the prune, "
            f"{p99 / base[1]:.2f}x the p99 after it (target <= 2)"
        )
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        counts = shell(env, COUNT)
        ingested = loader.sent + events
        problems = []
        if counts["seeded_runs"] or counts["seeded_steps"]:
            problems.append(f"left {counts['seeded_runs']} seeded runs, {counts['seeded_steps']}")
        if counts["other_steps"] != ingested:
            problems.append(f"{counts['other_steps']} ingested steps for {ingested} sent")
        if problems:
            print("WRONG ROWS: " + "; ".join(problems))
            return 1
        print(f"checked:         every seeded row gone, all {ingested:,} ingested steps kept")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
