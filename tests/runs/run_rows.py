"""Rows for page tests: runs and steps written straight through the ORM (and the one write path
for steps, services.events_record), shaped like what the runner writes."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from runs.ids import uuid7
from runs.limits import Caps
from runs.models import Run
from runs.services import events_record


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
