"""Helpers for tests of runs (not tests themselves): runs and steps written straight through the
ORM and the one write path for steps (`events_record`), shaped like what the runner writes, and
waiting for a run executed by a real worker to finish."""

import time
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from runs.engine.caps import Caps
from runs.engine.ids import uuid7
from runs.models import TERMINAL_STATUSES, Event, Run
from runs.services.events import events_record


def make_run(**fields) -> Run:
    """A finished, successful demo-support run unless `fields` say otherwise."""
    now = timezone.now()
    values = {
        "agent": "demo-support",
        "status": "succeeded",
        "input": {"question": "Where is my order A-1001?"},
        "output": {"answer": "Order A-1001 is shipped."},
        "caps": Caps().to_dict(),
        "created_at": now - timedelta(seconds=5),
        "started_at": now - timedelta(seconds=4),
        "finished_at": now - timedelta(seconds=1),
        "wall_ms": 3000,
        "tool_calls": 2,
        "model_calls": 2,
        "input_tokens": 300,
        "output_tokens": 60,
        "cost_usd": Decimal("0.000081"),
    }
    values.update(fields)
    return Run.objects.create(**values)


def make_steps(run: Run, n: int, *, start_seq: int = 0, **fields) -> list[dict]:
    """`n` finished steps on `run`: model calls and tool calls alternating, 10 ms apart."""
    base = run.started_at or run.created_at
    rows = []
    for i in range(start_seq, start_seq + n):
        kind = "model_call" if i % 2 == 0 else "tool_call"
        row = {
            "id": uuid7(),
            "run_id": run.id,
            "seq": i,
            "kind": kind,
            "name": "scripted-mini" if kind == "model_call" else "lookup_order",
            "status": "ok",
            "started_at": base + timedelta(milliseconds=10 * i),
            "ended_at": base + timedelta(milliseconds=10 * i + 8),
            "input": (
                {"messages": [{"role": "user", "content": f"prompt number {i}"}]}
                if kind == "model_call"
                else {"order_id": f"A-{1000 + i}"}
            ),
            "output": {"content": f"answer {i}"} if kind == "model_call" else {"found": True},
        }
        if kind == "model_call":
            row.update(model="scripted-mini", input_tokens=100, output_tokens=20,
                       cost_usd=Decimal("0.000027"))  # fmt: skip
        row.update(fields)
        rows.append(row)
    events_record(events=rows)
    return rows


GLOBAL = {
    "max_tool_calls": 20,
    "max_cost_usd": "0.50",
    "max_wall_seconds": 300,
    "tool_timeout_seconds": 10,
}


def finished_run(
    agent="demo-loop", steps=(), *, status="succeeded", ago=0.0, source="internal", step_seconds=1.0
):
    """A finished run whose steps are written as the runner writes them, `step_seconds` apart:
    "tool", ("model", cost), "refused" (a tool call refused by a cap) or ("lifecycle", cap)."""
    start = timezone.now() - timedelta(seconds=ago)
    run = Run.objects.create(
        agent=agent, status=status, source=source, created_at=start, started_at=start, caps={}
    )
    rows, total = [], Decimal(0)
    for seq, spec in enumerate(steps):
        kind, arg = (spec, None) if isinstance(spec, str) else spec
        at = start + timedelta(seconds=seq * step_seconds)
        row = Event(run=run, seq=seq, started_at=at, ended_at=at + timedelta(milliseconds=100))
        if kind == "tool":
            row.kind, row.name = "tool_call", "check_inventory"
        elif kind == "refused":
            row.kind, row.status = "tool_call", "cancelled"
            row.attributes = {"refused": True, "cap": "max_tool_calls"}
        elif kind == "model":
            row.kind, row.cost_usd = "model_call", Decimal(arg)
            row.input_tokens, row.output_tokens = 100, 20
            total += Decimal(arg)
        else:
            row.kind, row.name, row.status = "lifecycle", arg, "error"
        rows.append(row)
    Event.objects.bulk_create(rows)
    Run.objects.filter(id=run.id).update(
        finished_at=start + timedelta(seconds=len(rows) * step_seconds),
        cost_usd=total,
        tool_calls=sum(1 for r in rows if r.kind == "tool_call" and not r.attributes),
    )
    return run


def loop_steps(tool_calls: int, cost="0.001", stopped_at=None):
    """demo-loop's shape: a model call before each tool call; stopped by a cap of `stopped_at`."""
    steps = []
    for _ in range(tool_calls):
        steps += [("model", cost), "tool"]
    if stopped_at is not None:
        steps += [("model", cost), "refused", ("lifecycle", "max_tool_calls")]
    return steps


TERMINAL = set(TERMINAL_STATUSES)


def wait_for(run_id, statuses=TERMINAL, timeout: float = 30.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {Run.objects.get(id=run_id).status}")
