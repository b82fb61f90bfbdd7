"""How fast the pages answer on a big database (a benchmark script, not a test).

    createdb -h 127.0.0.1 -U postgres agentops_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py generate_data --runs 1000000 --big-run-steps 10000
    .venv/bin/python bench/bench_pages.py [--requests 500] [--web-workers 2]

Starts gunicorn (DEBUG=0, as in production) on that database, logs in as a support user, and
times requests over HTTP on localhost with a kept-alive connection, one at a time:

- run-ID lookup: the search box given a full id (answered with a redirect to the run), given an
  8-character prefix, and the run page itself, for random runs;
- the first view of the long run's page (10,000 steps: its header, budget and first page of steps);
- the runs list filtered several ways (status + agent, cap hit in a time window, a tag, a user
  ref, full-text words, a quoted phrase newest first and by cost, sorted by cost, and a deep page);
- the overview for 24 h, 7 d and 30 d, and the agents page, after one refresh of the hourly sums
  (as beat does every minute; its time is printed too).

Then, in this process and so without HTTP, the same reads the old way beside the new one in the
same run (a busy machine slows both alike): a common word matched against the document computed
per run against the stored words, and the overview and agents numbers as one query over the
runs against the sums (and a quoted phrase through the stored pairs).

Prints p50/p99/max in milliseconds; a list case's first request is printed apart (`first=`),
as it reads that case's rows into PostgreSQL's buffers (the default 128 MB holds little of a
million runs). Times are measured by the client, so they include the
(loopback) network and are an upper bound on server time. Then the same cases again in this
process through the WSGI application (middleware, view, queries and templates, no HTTP and no
gunicorn): server time, with the CPU time this process spent (`cpu p50`), which a machine busy
with other work inflates less than the wall clock. `--in-process-only` skips the HTTP part.
"""

import argparse
import http.client
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIG_RUN_USER = "bench-big-run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: str) -> dict:
    return dict(
        os.environ,
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        AGENTOPS_DATA_DIR=data_dir,
        LOG_LEVEL="WARNING",
    )


def prepare(env: dict) -> None:
    """Migrate and collect static files (DEBUG=0 serves hashed names)."""
    for command in (["migrate", "--no-input", "-v0"], ["collectstatic", "--no-input", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "agentops.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def login_cookie() -> str:
    """A session cookie for a support user, made through Django's own session store."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from runs.services.users import user_set_role

    user = user_set_role(username="bench-support", role="support", password="bench-password")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def sample_data(n: int) -> dict:
    from django.db import connection

    from runs.models import Run

    with connection.cursor() as cursor:
        # A random sample without sorting the whole table.
        cursor.execute(
            "SELECT id, user_ref FROM runs_run TABLESAMPLE SYSTEM (1) LIMIT %s"
            if connection.vendor == "postgresql"
            else "SELECT id, user_ref FROM runs_run ORDER BY random() LIMIT %s",
            [n],
        )
        rows = cursor.fetchall()
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'runs_run'")
            total = cursor.fetchone()[0]
        else:
            total = Run.objects.count()
    big = Run.objects.filter(user_ref=BIG_RUN_USER).order_by("-created_at").first()
    if big is None:
        raise SystemExit("no long run: run `manage.py generate_data` first")
    steps = big.events.count()
    ids = [str(r[0]) for r in rows]
    random.Random(7).shuffle(ids)
    return {"ids": ids, "users": [r[1] for r in rows if r[1]], "big": big, "steps": steps,
            "total": total}  # fmt: skip


class Client:
    def __init__(self, port: int, cookie: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Cookie": cookie, "Connection": "keep-alive"}

    def get(self, path: str, expect=(200,), htmx=False) -> float:
        headers = {**self.headers, "HX-Request": "true"} if htmx else self.headers
        started = time.perf_counter()
        self.conn.request("GET", path, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        took = (time.perf_counter() - started) * 1000
        if response.status not in expect:
            raise SystemExit(f"GET {path} answered {response.status}: {body[:300]!r}")
        return took

    def html(self, path: str) -> str:
        self.conn.request("GET", path, headers=self.headers)
        return self.conn.getresponse().read().decode()


class InProcessClient:
    """The same requests handed to the WSGI application in this process, as gunicorn hands them
    (Django's test client would add its own signal handlers to every request, and keep them):
    server time only. Also records the CPU time this thread spent on each (`cpu`)."""

    def __init__(self, cookie: str):
        from agentops.wsgi import application

        self.application = application
        self.cookie = cookie
        self.cpu: list[float] = []

    def _request(self, path: str, htmx: bool) -> tuple[int, bytes]:
        from urllib.parse import unquote

        route, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": unquote(route), "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": self.cookie, "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }  # fmt: skip
        if htmx:
            environ["HTTP_HX_REQUEST"] = "true"
        status = []
        response = self.application(environ, lambda line, headers: status.append(line))
        try:
            body = b"".join(response)
        finally:
            response.close()
        return int(status[0].split()[0]), body

    def get(self, path: str, expect=(200,), htmx=False) -> float:
        started, cpu = time.perf_counter(), time.thread_time()
        status, _ = self._request(path, htmx)
        took = (time.perf_counter() - started) * 1000
        self.cpu.append((time.thread_time() - cpu) * 1000)
        if status not in expect:
            raise SystemExit(f"GET {path} answered {status}")
        return took

    def html(self, path: str) -> str:
        return self._request(path, False)[1].decode()


CPU: list[float] | None = None  # set while the in-process cases run: their CPU times


def report(
    label: str, times: list[float], target: float | None = None, first: float | None = None
) -> dict:
    """Print a case's figures. `first` is its first request, made before `times` and not among
    them: it reads the case's pages into PostgreSQL's buffers."""
    times = sorted(times)
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    mark = ""
    if CPU is not None:
        mark = f"  cpu p50={statistics.median(CPU[-len(times) :]):6.2f}"
    if target is not None:
        mark += f"  (target p99 <= {target:g} ms: {'met' if p99 <= target else 'MISSED'})"
    if first is not None:
        mark += f"  first={first:.0f}"
    print(
        f"{label:<58} n={len(times):<4} p50={p50:7.2f}  p99={p99:7.2f}  max={times[-1]:7.2f}{mark}"
    )
    return {"label": label, "n": len(times), "p50": p50, "p99": p99, "max": times[-1]}


PHRASE = '"damaged charger"'


def pages(client: "Client", repeat: int) -> None:
    """The overview's three windows and the agents page, after one refresh of the sums."""
    from runs.services.rollups import rollups_refresh

    started = time.perf_counter()
    hours = rollups_refresh()
    print(f"\nhourly sums refreshed: {hours} hours in {(time.perf_counter() - started):.1f} s")
    print()
    for window in ("24h", "7d", "30d"):
        client.get(f"/?window={window}")
        report(f"overview, {window}", [client.get(f"/?window={window}") for _ in range(repeat)],
               target=100)  # fmt: skip
    report("agents page", [client.get("/agents/") for _ in range(repeat)], target=100)


def timed(call, repeat: int) -> list[float]:
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def compare(repeat: int) -> None:
    """Old and new reads side by side in this process (server time, no HTTP)."""
    from datetime import UTC, timedelta

    from django.db.models import Avg, BooleanField, Count, Max, Q, Sum
    from django.db.models.expressions import RawSQL
    from django.db.models.functions import Trunc
    from django.utils import timezone

    from runs.models import Run
    from runs.selectors import stats
    from runs.selectors.runs import LIST_COLUMNS, RunFilters, runs_page

    def phrase(sort: str):
        runs_page(filters=RunFilters(text=PHRASE), sort=sort)

    # Before migration 0014 a word was matched against the document computed from each run's
    # input, output and error; a common word walks the newest runs, computing one per run.
    values = '\'["string", "numeric"]\'::jsonb'
    document = " || ".join(
        f"jsonb_to_tsvector('simple'::regconfig, COALESCE({column}, 'null'::jsonb), {values})"
        for column in ("input", "output", "error")
    )

    def word(text: str, old: bool):
        if not old:
            return runs_page(filters=RunFilters(text=text))
        computed = RawSQL(f"({document}) @@ websearch_to_tsquery('simple'::regconfig, %s)",
                          [text], output_field=BooleanField())  # fmt: skip
        runs = Run.objects.filter(computed).only(*LIST_COLUMNS)
        return list(runs.order_by("-created_at", "-id")[:51])

    counts = {
        "runs": Count("id"),
        "failures": Count("id", filter=Q(status__in=("failed", "lost"))),
        "cap_hits": Count("id", filter=~Q(cap_hit="")),
        "spend": Sum("cost_usd"),
    }

    def old_over_time(window):
        start = stats.window_bounds(window)[0][0]
        bucket = Trunc("created_at", window.unit, tzinfo=UTC)
        runs = Run.objects.filter(created_at__gte=start).annotate(bucket=bucket)
        list(runs.values("bucket").annotate(**counts))

    def old_agents():
        runs = Run.objects.filter(created_at__gte=timezone.now() - timedelta(days=7))
        succeeded = Count("id", filter=Q(status="succeeded"))
        list(runs.values("agent").annotate(**counts, succeeded=succeeded, avg_ms=Avg("wall_ms"),
                                           last=Max("created_at")))  # fmt: skip

    print(f"\n{'the same read, old way and new, in this process':<58} times in ms")
    report("word 'refund', newest: document computed per run (old)",
           timed(lambda: word("refund", True), repeat))  # fmt: skip
    report("word 'refund', newest: stored words (new)", timed(lambda: word("refund", False),
           repeat))  # fmt: skip
    for sort in ("newest", "cost"):
        report(f"phrase, {sort}: stored pairs", timed(lambda s=sort: phrase(s), repeat))
    for key, window in stats.WINDOWS.items():
        report(f"overview {key}: one query over the runs (old)",
               timed(lambda w=window: old_over_time(w), repeat))  # fmt: skip
        report(f"overview {key}: hourly sums + live hours (new)",
               timed(lambda w=window: stats.runs_over_time(w), repeat))  # fmt: skip
    since = lambda: timezone.now() - timedelta(days=7)  # noqa: E731
    report("agents 7d: one query over the runs (old)", timed(old_agents, repeat))
    report("agents 7d: hourly sums + live hours (new)",
           timed(lambda: stats.agent_run_stats(since=since()), repeat))  # fmt: skip


def cases(client, data: dict, args) -> None:
    """Every case, through `client` (over HTTP, or in this process)."""
    ids = data["ids"][: args.requests]
    for run_id in ids[:50]:  # warm up every worker's connection pool and template cache
        client.get(f"/runs/{run_id}/")
        client.get("/runs/?status=failed")
        client.get(f"/runs/?q={run_id}", expect=(302,))
        client.get(f"/runs/?q={run_id[:8]}", expect=(302, 200))
    print(f"\n{'case':<58} times in ms")
    report("run-ID lookup: search box, full id -> 302",
           [client.get(f"/runs/?q={i}", expect=(302,)) for i in ids], target=20)  # fmt: skip
    # Ids are time-ordered: 8 hex digits name a ~65 s window, which a busy database fills
    # with several runs (the box then lists them); 12 digits name one millisecond.
    report("run-ID lookup: search box, 12-digit prefix -> 302",
           [client.get(f"/runs/?q={i[:13]}", expect=(302, 200)) for i in ids])  # fmt: skip
    report("run-ID lookup: search box, 8-digit prefix -> 302 or list",
           [client.get(f"/runs/?q={i[:8]}", expect=(302, 200)) for i in ids])  # fmt: skip
    report("run page of a typical run (/runs/<id>/, timeline)",
           [client.get(f"/runs/{i}/?view=timeline") for i in ids])  # fmt: skip
    report("run page of a typical run (support's first view: transcript)",
           [client.get(f"/runs/{i}/") for i in ids])  # fmt: skip
    big = data["big"].id
    report(f"long run page, first view ({data['steps']:,} steps, timeline)",
           [client.get(f"/runs/{big}/?view=timeline") for _ in range(args.repeat)],
           target=50)  # fmt: skip
    report(f"long run page, transcript ({data['steps']:,} steps, first 50 with bodies)",
           [client.get(f"/runs/{big}/") for _ in range(args.repeat)], target=50)  # fmt: skip
    report("long run: next page of steps (htmx, on scroll)",
           [client.get(f"/runs/{big}/steps/?after={99 + 100 * (k % 9)}", htmx=True)
            for k in range(args.repeat)])  # fmt: skip

    user = data["users"][0]
    lists = [
        ("status=failed & agent=demo-broken", {"status": "failed", "agent": "demo-broken"}),
        ("cap hit (any) in the last 7 days", {"cap_hit": "any", "period": "7d"}),
        ("status=budget_exceeded & cap=max_cost_usd & tag=vip",
         {"status": "budget_exceeded", "cap_hit": "max_cost_usd", "tag": "vip"}),
        (f"user ref ({user})", {"q": user}),
        ("full text: 'refund'", {"q": "refund"}),
        ("full text, rare: an order id 'A-4242'", {"q": "A-4242"}),
        ("full text: 'damaged charger' + status=succeeded",
         {"q": "damaged charger", "status": "succeeded"}),
        ("quoted phrase '\"damaged charger\"', newest 50", {"q": PHRASE}),
        ("quoted phrase '\"damaged charger\"', most expensive first",
         {"q": PHRASE, "sort": "cost"}),
        ("error_code=worker_lost, 24h", {"error_code": "worker_lost", "period": "24h"}),
        ("sorted by cost, most expensive first", {"sort": "cost"}),
        ("cost between $0.01 and $0.02 & agent=demo-support",
         {"cost_min": "0.01", "cost_max": "0.02", "agent": "demo-support"}),
        ("no filter (newest 50)", {}),
    ]  # fmt: skip
    print()
    for label, params in lists:
        path = "/runs/?" + urlencode(params, doseq=True, quote_via=quote)
        first = client.get(path)
        times = [client.get(path) for _ in range(args.repeat)]
        report(f"list: {label}", times, target=150, first=first)
    # A deep page: follow the cursor 20 pages into the unfiltered list, then time that page.
    import re

    path = "/runs/?status=succeeded"
    for _ in range(20):
        html = client.html(path)
        path = (
            re.search(
                r'href="([^"]+)" hx-get="[^"]+" hx-target="#results" hx-swap='
                r'"outerHTML show:top" rel="next"',
                html,
            )
            .group(1)
            .replace("&amp;", "&")
        )
    report("list: status=succeeded, page 21 (cursor)",
           [client.get(path) for _ in range(args.repeat)], target=150)  # fmt: skip
    pages(client, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the pages over HTTP on a big database.")
    parser.add_argument("--requests", type=int, default=500, help="lookups to time")
    parser.add_argument("--repeat", type=int, default=50, help="requests per list/page case")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--in-process-only", action="store_true",
                        help="skip gunicorn and HTTP: only the in-process cases")  # fmt: skip
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("note: DATABASE_URL is not PostgreSQL; the targets are for PostgreSQL")

    data_dir = tempfile.mkdtemp(prefix="agentops-bench-pages-")
    env = server_env(data_dir)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
    prepare(env)
    cookie = login_cookie()
    data = sample_data(max(args.requests, 200))
    print(
        f"database: ~{data['total']:,} runs; long run {data['big'].id} with {data['steps']:,} steps"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    in_process = InProcessClient(cookie)  # loads the WSGI application as gunicorn does
    if args.in_process_only:
        run_in_process(in_process, data, args)
        compare(args.repeat)
        return
    port = free_port()
    server = start_gunicorn(env, port, args.web_workers)
    # Stop the server on Ctrl-C or a SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print("\nover HTTP (times measured by the client)")
        cases(Client(port, cookie), data, args)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=15)
    run_in_process(in_process, data, args)
    compare(args.repeat)


def run_in_process(client: "InProcessClient", data: dict, args) -> None:
    global CPU
    print(f"\nload average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nin this process, through the WSGI application (server time; cpu: this process's)")
    CPU = client.cpu
    try:
        cases(client, data, args)
    finally:
        CPU = None
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
