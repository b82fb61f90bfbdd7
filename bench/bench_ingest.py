"""Ingest throughput: concurrent clients posting 100-event batches to gunicorn on PostgreSQL.

    .venv/bin/python bench/bench_ingest.py [--clients 4] [--batches 250] [--events 100]

Creates its own database (dropped first), migrates it, starts gunicorn on a free localhost port,
creates one API key per client, then each client posts its batches back to back (the runs of a
client span several batches, as a real agent's steps do). Prints events/s and p50/p99 batch
latency, then re-sends a tenth of the batches and reconciles the rows: every step stored once,
nothing lost, no duplicate, gapless seq per run, run counters equal to their steps.

First it runs `bench_ingest_floor.py --bare` with the same load (PostgreSQL's floor on this
machine, this minute) and then prints the door's events/s as a share of it. Targets on a 2-core
machine: the door >= 50 % of that floor, p99 <= 60 ms per 100-event batch, nothing lost or
duplicated. It also prints the server's CPU (gunicorn + PostgreSQL) per event, the steadier
figure on a shared machine, and the load average.
Not a test: it prints figures and exits non-zero only when the reconciliation fails.
"""

import argparse
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ingest.client import uuid7  # noqa: E402  (stdlib only: no Django set up here)

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd, env, **kwargs):
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True, **kwargs)


def prepare_database(url: str, env: dict) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    pg = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    pg += ["-U", parts.username or "postgres"]
    run(["dropdb", "--if-exists", *pg, name], env)
    run(["createdb", *pg, name], env)
    run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], env)


def create_keys(count: int, env: dict) -> list[str]:
    keys = []
    for n in range(count):
        out = run(
            [PYTHON, "manage.py", "create_api_key", f"bench-{n}", "--scopes", "ingest"],
            env,
            capture_output=True,
        ).stdout
        keys.append(out.strip().splitlines()[-1])
    return keys


def start_gunicorn(port: int, env: dict, workers: int, threads: int, log: Path, kind="gthread"):
    cmd = [
        PYTHON,
        "-m",
        "gunicorn",
        "agentops.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        kind,
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited at start; see {log}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not answer /api/v1/health within 60 s")


def make_batches(
    client: int, count: int, per_batch: int, event_bytes: int, run_batches: int, ids=uuid.uuid4
):
    """Bodies (bytes) and the ids they hold. A run spans `run_batches` batches: its first batch
    carries the run, its last the run's end."""
    rng = random.Random(client)
    filler = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(event_bytes))
    t0 = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=client)
    batches = []
    run_id = None
    for b in range(count):
        position = b % run_batches
        if position == 0:
            run_id = str(ids())
        runs = []
        if position == 0:
            runs.append(
                {
                    "id": run_id,
                    "agent": f"bench-agent-{client}",
                    "started_at": t0.isoformat(),
                    "user_ref": f"user-{b}",
                }
            )
        elif position == run_batches - 1 or b == count - 1:
            runs.append(
                {
                    "id": run_id,
                    "agent": f"bench-agent-{client}",
                    "status": "succeeded",
                    "finished_at": (t0 + timedelta(minutes=5)).isoformat(),
                }
            )
        events = []
        for i in range(per_batch):
            kind = ("model_call", "tool_call", "log", "decision")[i % 4]
            start = t0 + timedelta(milliseconds=b * per_batch + i)
            event = {
                "id": str(ids()),
                "run_id": run_id,
                "kind": kind,
                "name": f"step-{i}",
                "status": "ok",
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(milliseconds=3)).isoformat(),
                "input": {"messages": [{"role": "user", "content": ""}]},
                "output": {"text": ""},
                "attributes": {"i": i},
            }
            if kind == "model_call":
                event.update(model="gpt-4o-mini", input_tokens=300, output_tokens=50)
            # Fill to about `event_bytes` of JSON with text.
            room = max(0, event_bytes - len(json.dumps(event)))
            offset = rng.randrange(event_bytes)
            text = (filler[offset:] + filler[:offset])[:room]
            event["input"]["messages"][0]["content"] = text[: room // 2]
            event["output"]["text"] = text[room // 2 :]
            events.append(event)
        body = json.dumps({"runs": runs, "events": events}).encode()
        batches.append((body, run_id, [e["id"] for e in events], [e["kind"] for e in events]))
    return batches


class Sender:
    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.conn = None

    def post(self, body: bytes) -> tuple[int, dict, float]:
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            try:
                self.conn.request(
                    "POST",
                    "/api/v1/ingest",
                    body=body,
                    headers={
                        "Authorization": f"Bearer {self.key}",
                        "Content-Type": "application/json",
                    },
                )
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            if response.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return response.status, json.loads(data), elapsed
        raise RuntimeError("unreachable")


def load(port: int, keys: list[str], batches_by_client: list[list]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(keys) + 1)

    def client(n: int):
        sender = Sender(port, keys[n])
        mine = []
        barrier.wait()
        for body, *_ in batches_by_client[n]:
            status, answer, elapsed = sender.post(body)
            if status != 200:
                with lock:
                    failures.append(f"{status}: {str(answer)[:300]}")
            mine.append(elapsed)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(keys))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} batches failed, e.g. {failures[:3]}")
    return wall, latencies


def cpu_seconds(server, database: str | None = None) -> dict:
    """CPU seconds used so far by gunicorn (master and workers), PostgreSQL and this script."""
    try:
        import psutil
    except ImportError:
        return {}
    result = {"gunicorn": 0.0, "postgres": 0.0, "clients": 0.0}
    master = psutil.Process(server.pid)
    for proc in [master, *master.children(recursive=True)]:
        times = proc.cpu_times()
        result["gunicorn"] += times.user + times.system
    result["postgres"] = postgres_cpu(database)
    me = psutil.Process().cpu_times()
    result["clients"] = me.user + me.system
    return result


def postgres_cpu(database: str | None = None) -> float:
    """CPU seconds used so far by the PostgreSQL server's processes on this machine; with
    `database`, only by the sessions connected to it (on a shared machine the others' sessions
    are someone else's load; the server's shared background processes are then left out)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        if not (proc.info["name"] and proc.info["name"].startswith("postgres")):
            continue
        if database and database not in " ".join(proc.info["cmdline"] or ()).split():
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def reconcile(env: dict, expected: dict) -> dict:
    """Counts read back from the database by a Django shell in the bench's environment."""
    script = f"""
import json
from django.db.models import Count, Max, Sum
from runs.models import Event, Run
expected = json.loads({json.dumps(json.dumps(expected))})
events = Event.objects.count()
distinct = Event.objects.values("id").distinct().count()
bad_seq = 0
for row in Event.objects.values("run_id").annotate(n=Count("id"), m=Max("seq")):
    bad_seq += row["m"] != row["n"] - 1
runs = Run.objects.filter(source="external")
tools = runs.aggregate(t=Sum("tool_calls"), m=Sum("model_calls"))
print(json.dumps({{"events": events, "distinct_ids": distinct, "runs": runs.count(),
                  "runs_with_seq_gaps": bad_seq, "tool_calls": tools["t"],
                  "model_calls": tools["m"]}}))
"""
    out = run([PYTHON, "manage.py", "shell", "-c", script], env, capture_output=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def default_cache() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/15"
    except OSError:
        pass
    return ""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu})"


def run_floor(args) -> dict:
    """Run `bench_ingest_floor.py --bare` with the same load shape; its events/s and
    PostgreSQL CPU per batch, so the door is judged against the floor of the same minute."""
    cmd = [PYTHON, str(ROOT / "bench" / "bench_ingest_floor.py"), "--bare"]
    cmd += ["--database-url", args.floor_database_url, "--clients", str(args.clients)]
    cmd += ["--batches", str(args.batches), "--events", str(args.events)]
    cmd += ["--event-bytes", str(args.event_bytes), "--run-batches", str(args.run_batches)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=True).stdout
    rate = float(re.search(r"events/s:\s+([\d,]+)", out).group(1).replace(",", ""))
    postgres = float(re.search(r"cpu per batch:\s+postgres ([\d.]+) ms", out).group(1))
    print(f"floor (--bare):  {rate:,.0f} events/s, postgres {postgres:.2f} ms per batch")
    return {"events_per_s": rate, "postgres_ms": postgres}


def add_load_arguments(parser) -> None:
    """The shape of the load, shared with bench_ingest_floor.py."""
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=250, help="batches per client")
    parser.add_argument("--events", type=int, default=100, help="events per batch")
    parser.add_argument("--event-bytes", type=int, default=1024)
    parser.add_argument("--run-batches", type=int, default=10, help="batches per run")


def bench_env(database_url: str, data_dir: Path, **extra) -> dict:
    """The environment of a production-like instance on `database_url`."""
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        AGENTOPS_DATA_DIR=str(data_dir),
        DEBUG="0",
        SECRET_KEY="bench-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        LOG_LEVEL="WARNING",
        CELERY_BROKER_URL="filesystem://",
        **extra,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument(
        "--worker-class",
        choices=["gthread", "sync"],
        default="sync",
        help="sync (the default): one request per connection, so each goes to whichever worker "
        "is free; gthread keeps a client on the worker that accepted its connection",
    )
    parser.add_argument("--resend", type=float, default=0.1, help="share of batches re-sent")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/agentops_bench_ingest"
    )
    parser.add_argument(
        "--cache-url",
        default=os.environ.get("CACHE_URL", default_cache()),
        help="the shared cache for throttling (default: Redis on localhost if it answers, "
        "else the file cache)",
    )
    parser.add_argument(
        "--floor-database-url",
        default="postgres://postgres@127.0.0.1:5432/agentops_bench_floor",
        help="where the same-run `--bare` floor runs first (bench_ingest_floor.py)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the `--bare` floor run (no door/floor ratio is printed)",
    )
    parser.add_argument(
        "--ids",
        choices=["uuid4", "uuid7"],
        default="uuid4",
        help="step and run ids: random (any client) or time-ordered (ingest/client.py)",
    )
    args = parser.parse_args()
    ids = uuid.uuid4 if args.ids == "uuid4" else lambda: uuid.UUID(uuid7())

    data_dir = Path(tempfile.mkdtemp(prefix="agentops-bench-ingest-"))
    env = bench_env(
        args.database_url,
        data_dir,
        CACHE_URL=args.cache_url,
        DATABASE_POOL_MAX=str(args.threads + 1),
    )
    print(f"machine: {machine()}")
    print(
        f"database: {args.database_url}; gunicorn {args.worker_class} "
        f"{args.workers}x{args.threads}; "
        f"cache (throttling): {args.cache_url or 'file'}; ids: {args.ids}"
    )
    floor = None if args.no_floor else run_floor(args)
    prepare_database(args.database_url, env)
    keys = create_keys(args.clients, env)
    port = free_port()
    server = start_gunicorn(
        port, env, args.workers, args.threads, data_dir / "gunicorn.log", args.worker_class
    )
    try:
        print("building bodies …", flush=True)
        batches = [
            make_batches(n, args.batches, args.events, args.event_bytes, args.run_batches, ids)
            for n in range(args.clients)
        ]
        size = sum(len(b[0]) for client in batches for b in client) / (args.clients * args.batches)
        warm = [
            make_batches(100 + n, 5, args.events, args.event_bytes, 5) for n in range(args.clients)
        ]
        load(port, keys, warm)

        database = urlsplit(args.database_url).path.lstrip("/")
        before = cpu_seconds(server, database)
        wall, latencies = load(port, keys, batches)
        after = cpu_seconds(server, database)
        total = args.clients * args.batches * args.events
        print(
            f"\n{args.clients} clients x {args.batches} batches x {args.events} events "
            f"(~{size / 1024:.0f} KiB per batch, ~{size / args.events:.0f} B per event)"
        )
        print(f"events/s:        {total / wall:,.0f}  ({total:,} events in {wall:.2f} s)")
        print(
            f"batch latency:   p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )

        if before:
            used = {name: after[name] - before[name] for name in before}
            print(
                "cpu during load:  "
                + ", ".join(
                    f"{name} {seconds:.1f} s ({seconds / wall:.0%})"
                    for name, seconds in used.items()
                )
            )
            batches_sent = args.clients * args.batches
            server_cpu = used["gunicorn"] + used["postgres"]
            print(
                f"cpu per batch:   gunicorn {used['gunicorn'] / batches_sent * 1000:.2f} ms, "
                f"postgres {used['postgres'] / batches_sent * 1000:.2f} ms; "
                f"server cpu per event {server_cpu / total * 1e6:.0f} us"
            )
        if floor:
            print(
                f"door / floor:    {total / wall / floor['events_per_s']:.0%} of the --bare floor "
                f"({floor['events_per_s']:,.0f} events/s, postgres "
                f"{floor['postgres_ms']:.2f} ms per batch, measured just before)"
            )
        print(f"load average:    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
        rng = random.Random(7)
        resend = [[b for b in client if rng.random() < args.resend] for client in batches]
        resent = sum(len(c) for c in resend)
        load(port, keys, resend)
        print(f"re-sent:         {resent} batches ({resent * args.events:,} events)")

        warm_events = sum(len(b[2]) for client in warm for b in client)
        kinds = [k for client in batches + warm for b in client for k in b[3]]
        expected = {"events": total + warm_events}
        counts = reconcile(env, expected)
        runs = len({b[1] for client in batches + warm for b in client})
        problems = []
        if counts["events"] != expected["events"]:
            problems.append(f"{counts['events']} rows for {expected['events']} events sent")
        if counts["distinct_ids"] != counts["events"]:
            problems.append("duplicate ids")
        if counts["runs"] != runs:
            problems.append(f"{counts['runs']} runs for {runs} sent")
        if counts["runs_with_seq_gaps"]:
            problems.append(f"{counts['runs_with_seq_gaps']} runs with seq gaps")
        if counts["tool_calls"] != kinds.count("tool_call"):
            problems.append("run tool_calls differ from their steps")
        if counts["model_calls"] != kinds.count("model_call"):
            problems.append("run model_calls differ from their steps")
        lost = expected["events"] - counts["events"]
        print(
            f"reconciled:      {counts['events']:,} rows for {expected['events']:,} events "
            f"sent; lost {max(lost, 0)}, duplicates {max(-lost, 0)}; "
            f"{counts['runs']} runs, seq gapless: {not counts['runs_with_seq_gaps']}"
        )
        if problems:
            print("RECONCILIATION FAILED: " + "; ".join(problems))
            return 1
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
