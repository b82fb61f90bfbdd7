"""`manage.py generate_data`: many synthetic runs, fast, for benchmarks and for trying the pages
on a realistic volume.

    python manage.py generate_data --runs 1000000 --big-run-steps 10000

Runs are spread over the last `--days` days across the demo agents and an external one, with a
realistic mix of endings (successes, failures, each cap hit, cancels), user and session refs,
tags, and question/answer text that the full-text search can find. One extra run (user_ref
`bench-big-run`) gets `--big-run-steps` steps with real-looking prompts and tool calls.

PostgreSQL: rows go in with COPY, and the tables' secondary indexes are dropped for the load and
built again afterwards (far faster than maintaining them row by row), then ANALYZE. SQLite:
bulk_create in batches. Deterministic for a given --seed.
"""

import json
import random
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from runs.engine.caps import SPEND, TOOL_CALLS, WALL, Caps
from runs.models import Event, Run

BIG_RUN_USER = "bench-big-run"
RUN_COLUMNS = [
    "id", "agent", "status", "input", "output", "error", "error_code", "cap_hit", "caps",
    "tool_calls", "model_calls", "input_tokens", "output_tokens", "cost_usd", "wall_ms",
    "created_at", "started_at", "finished_at", "heartbeat_at", "user_ref", "session_ref", "tags",
    "metadata", "source", "replay_mode", "worker", "attempt",
]  # fmt: skip
EVENT_COLUMNS = [
    "id", "run_id", "seq", "kind", "name", "status", "started_at", "ended_at", "input", "output",
    "model", "input_tokens", "output_tokens", "cost_usd", "error", "attributes",
]  # fmt: skip
JSON_RUN = {"input", "output", "error", "caps", "tags", "metadata"}
JSON_EVENT = {"input", "output", "error", "attributes"}

AGENTS = [("demo-support", 50), ("demo-loop", 10), ("demo-spender", 8), ("demo-slow", 5),
          ("demo-hang", 7), ("demo-broken", 8), ("crm-assistant", 12)]  # fmt: skip
# (status, error code, cap, weight)
ENDINGS = [
    ("succeeded", "", "", 78), ("failed", "agent_error", "", 6),
    ("failed", "provider_error", "", 2),
    ("budget_exceeded", "budget_exceeded", TOOL_CALLS.name, 4),
    ("budget_exceeded", "budget_exceeded", SPEND.name, 3),
    ("budget_exceeded", "budget_exceeded", WALL.name, 2),
    ("cancelled", "cancelled", "", 3), ("lost", "worker_lost", "", 1), ("running", "", "", 1),
]  # fmt: skip
WORDS = (
    "order refund shipping delivery late parcel invoice charge twice payment card address "
    "return label damaged missing item warranty exchange discount coupon subscription cancel "
    "upgrade account password login email phone tracking carrier warehouse stock backorder "
    "price tax receipt gift voucher courier customs express standard weekend holiday support "
    "manager complaint feedback review rating size colour color replacement broken battery "
    "screen charger cable laptop phone headphones shoes jacket sofa table chair lamp kettle"
).split()
TAGS = ["vip", "eu", "us", "beta", "mobile", "web", "enterprise"]


def uuid7_at(ms: int, rng: random.Random) -> uuid.UUID:
    """A version-7 UUID for a given Unix millisecond (ids sort like their created_at)."""
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    return uuid.UUID(int=value)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


class RunRows:
    """Generates run rows (dicts of RUN_COLUMNS) in created_at order."""

    def __init__(self, *, count: int, days: int, users: int, rng: random.Random):
        self.count, self.rng, self.users = count, rng, users
        self.end = timezone.now()
        self.start = self.end - timedelta(days=days)
        self.caps = Caps().to_dict()
        self.agents = [a for a, _ in AGENTS]
        self.agent_weights = [w for _, w in AGENTS]
        self.endings = ENDINGS
        self.ending_weights = [e[-1] for e in ENDINGS]

    def __iter__(self):
        rng, span = self.rng, (self.end - self.start).total_seconds()
        step = span / max(self.count, 1)
        for i in range(self.count):
            created = self.start + timedelta(seconds=i * step + rng.random() * step)
            yield self._row(created)

    def _row(self, created):
        rng = self.rng
        agent = rng.choices(self.agents, self.agent_weights)[0]
        status, code, cap, _ = rng.choices(self.endings, self.ending_weights)[0]
        tool_calls = 20 if cap == TOOL_CALLS.name else rng.randint(0, 6)
        model_calls = rng.randint(1, 5)
        in_tok, out_tok = model_calls * rng.randint(150, 900), model_calls * rng.randint(20, 300)
        cost = Decimal(in_tok * 15 + out_tok * 60) / Decimal(100_000_000)
        if cap == SPEND.name:
            cost = Decimal("0.5") + Decimal(rng.randint(0, 900)) / 100000
        wall = 300_000 + rng.randint(0, 900) if cap == WALL.name else rng.randint(40, 25_000)
        order = f"A-{rng.randint(1000, 99999)}"
        question = f"{_sentence(rng, rng.randint(3, 9))} {order}?"
        user = rng.randint(1, self.users)
        error = None
        if code == "budget_exceeded":
            error = {"code": code, "message": f"the {cap} cap was reached", "cap": cap}
        elif code:
            error = {"code": code, "message": f"{code.replace('_', ' ')}: {_sentence(rng, 4)}"}
        finished = status != "running"
        started = created + timedelta(milliseconds=rng.randint(5, 400))
        ended = started + timedelta(milliseconds=wall) if finished else None
        tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))
        return {
            "id": uuid7_at(int(created.timestamp() * 1000), rng),
            "agent": agent,
            "status": status,
            "input": {"question": question},
            "output": {"answer": f"{_sentence(rng, 12)} {order}."}
            if status == "succeeded"
            else None,
            "error": error,
            "error_code": code,
            "cap_hit": cap,
            "caps": self.caps,
            "tool_calls": tool_calls,
            "model_calls": model_calls,
            "input_tokens": in_tok,
            "output_tokens": out_tok,
            "cost_usd": cost,
            "wall_ms": wall if finished else None,
            "created_at": created,
            "started_at": started,
            "finished_at": ended,
            "heartbeat_at": ended or started,
            "user_ref": f"cust-{user}",
            "session_ref": f"chat-{user}-{rng.randint(1, 20)}",
            "tags": tags,
            "metadata": {},
            "source": "external" if agent == "crm-assistant" else "internal",
            "replay_mode": "",
            "worker": "" if agent == "crm-assistant" else f"worker-{rng.randint(1, 4)}@bench",
            "attempt": 1,
        }


def big_run_rows(steps: int, rng: random.Random):
    """(the run row, its step rows): a long conversation of model and tool calls."""
    created = timezone.now() - timedelta(hours=1)
    run_id = uuid7_at(int(created.timestamp() * 1000), rng)
    rows, at = [], created + timedelta(milliseconds=50)
    history = [{"role": "system", "content": "You are a careful support agent. " * 8}]
    for seq in range(steps):
        kind = "model_call" if seq % 2 == 0 else "tool_call"
        took = timedelta(
            milliseconds=rng.randint(30, 1200) if kind == "model_call" else rng.randint(5, 300)
        )
        row = {
            "id": uuid7_at(int(at.timestamp() * 1000), rng), "run_id": run_id, "seq": seq,
            "kind": kind, "status": "ok", "started_at": at, "ended_at": at + took, "error": None,
            "attributes": {}, "model": "", "input_tokens": None, "output_tokens": None,
            "cost_usd": None,
        }  # fmt: skip
        if kind == "model_call":
            history = history[-6:] + [{"role": "user", "content": _sentence(rng, 40)}]
            row.update(name="scripted-mini", model="scripted-mini",
                       input={"messages": history, "max_tokens": 512},
                       output={"content": _sentence(rng, 30), "tool_calls": [
                           {"name": "lookup_order", "arguments": {"order_id": f"A-{seq}"}}]},
                       input_tokens=rng.randint(300, 2000), output_tokens=rng.randint(20, 200),
                       cost_usd=Decimal("0.000150"))  # fmt: skip
        else:
            note = _sentence(rng, 10)
            row.update(name="lookup_order", input={"order_id": f"A-{seq}"},
                       output={"found": True, "status": "shipped", "note": note})  # fmt: skip
        rows.append(row)
        at = at + took + timedelta(milliseconds=rng.randint(1, 20))
    run = RunRows(count=1, days=1, users=1, rng=rng)._row(created)
    run.update(id=run_id, agent="demo-support", status="succeeded", error=None, error_code="",
               cap_hit="", user_ref=BIG_RUN_USER, session_ref=BIG_RUN_USER, tool_calls=steps // 2,
               model_calls=(steps + 1) // 2, started_at=created, finished_at=at, heartbeat_at=at,
               wall_ms=int((at - created).total_seconds() * 1000), tags=["bench"],
               output={"answer": "All orders looked up."})  # fmt: skip
    return run, rows


class Command(BaseCommand):
    help = "Generate many synthetic runs (and one very long run) for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=100_000)
        parser.add_argument("--big-run-steps", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--users", type=int, default=50_000, help="distinct user refs")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--batch", type=int, default=5_000, help="rows per bulk_create (SQLite)"
        )

    def handle(self, *args, runs, big_run_steps, days, users, seed, batch, **options):
        if runs < 0 or big_run_steps < 0:
            raise CommandError("--runs and --big-run-steps must not be negative")
        rng = random.Random(seed)
        started = time.monotonic()
        run_rows = RunRows(count=runs, days=days, users=users, rng=rng)
        big_run, big_steps = big_run_rows(big_run_steps, rng) if big_run_steps else (None, [])
        extra = [big_run] if big_run else []
        if connection.vendor == "postgresql":
            self._load_postgres(run_rows, extra, big_steps)
        else:
            self._load_bulk(run_rows, extra, big_steps, batch)
        took = time.monotonic() - started
        self.stdout.write(f"Generated {runs + len(extra)} runs and {len(big_steps)} steps "
                          f"in {took:.1f} s ({connection.vendor}).")  # fmt: skip
        if big_run:
            self.stdout.write(f"Long run ({len(big_steps)} steps): {big_run['id']}")

    # PostgreSQL: COPY with the secondary indexes dropped, then rebuilt.

    def _load_postgres(self, run_rows, extra, big_steps):
        with connection.cursor() as cursor:
            raw = cursor.cursor
            saved = self._drop_secondary_indexes(raw, ["runs_run", "runs_event"])
            try:
                self._copy(raw, Run, RUN_COLUMNS, JSON_RUN, [*run_rows, *extra])
                self._copy(raw, Event, EVENT_COLUMNS, JSON_EVENT, big_steps)
            finally:
                raw.execute("SET maintenance_work_mem = '512MB'")
                for name, definition in saved:
                    self.stdout.write(f"  rebuilding index {name}")
                    raw.execute(definition)
            raw.execute("ANALYZE runs_run")
            raw.execute("ANALYZE runs_event")

    def _drop_secondary_indexes(self, raw, tables):
        raw.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) "
            "AND i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
            "WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))"
            "::regclass)",
            [tables],
        )
        saved = raw.fetchall()
        for name, _ in saved:
            raw.execute(f'DROP INDEX "{name}"')
        return saved

    def _copy(self, raw, model, columns, json_columns, rows):
        # Columns this generator does not know get their model default, so a new NOT NULL column
        # with a default never breaks the load.
        fixed = {
            f.column: f.get_default()
            for f in model._meta.concrete_fields
            if f.column not in columns and not f.null and f.has_default()
        }
        fixed = {c: json.dumps(v) if isinstance(v, dict | list) else v for c, v in fixed.items()}
        table = model._meta.db_table
        sql = f"COPY {table} ({', '.join([*columns, *fixed])}) FROM STDIN"
        tail = list(fixed.values())
        count, started = 0, time.monotonic()
        with raw.copy(sql) as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[c]) if c in json_columns and row[c] is not None else row[c]
                        for c in columns
                    ]  # fmt: skip
                    + tail
                )
                count += 1
                if count % 200_000 == 0:
                    self.stdout.write(
                        f"  {table}: {count} rows ({time.monotonic() - started:.0f} s)"
                    )

    # SQLite (and anything else): bulk_create in batches.

    def _load_bulk(self, run_rows, extra, big_steps, batch):
        def chunks(rows):
            chunk = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        for chunk in chunks([*run_rows, *extra]):
            with transaction.atomic():
                Run.objects.bulk_create([Run(**row) for row in chunk])
        for chunk in chunks(big_steps):
            with transaction.atomic():
                Event.objects.bulk_create([Event(**row) for row in chunk])
