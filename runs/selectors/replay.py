"""Reads for replay: one step of a finished run with what the agent knew there and the budget
spent up to it (playback), two runs with their steps (compare), and the model answers a
`recorded_model` re-execution serves (recording)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum

from ..engine.compare import Comparison, compare_runs
from ..models import Event, EventKind, Run

# A comparison reads at most this many steps of each run; the page says when it stopped short.
COMPARE_MAX_STEPS = 2000
STEP_FIELDS = ("seq", "kind", "name", "status", "input", "output", "error", "started_at",
               "ended_at", "model", "input_tokens", "output_tokens", "cost_usd")  # fmt: skip
RUN_FIELDS = ("status", "output", "error", "tool_calls", "model_calls", "input_tokens",
              "output_tokens", "cost_usd", "wall_ms")  # fmt: skip


@dataclass
class Frame:
    step: Event
    index: int  # 0-based position among the run's steps
    total: int
    prev_seq: int | None
    next_seq: int | None
    spent: dict  # tool_calls, model_calls, tokens, cost_usd, elapsed_s up to and with this step


def playback_frame(*, run: Run, seq: int | None) -> Frame | None:
    """The step at `seq` (the first when None) with its neighbours and the spend so far;
    None when the run has no such step."""
    steps = Event.objects.filter(run=run)
    step = (steps.filter(seq=seq) if seq is not None else steps.order_by("seq")).first()
    if step is None:
        return None
    upto = steps.filter(seq__lte=step.seq).aggregate(
        index=Count("id"),
        tool_calls=Count(
            "id", filter=Q(kind="tool_call") & ~Q(status="cancelled", attributes__refused=True)
        ),
        model_calls=Count("id", filter=Q(kind="model_call", status="ok")),
        tokens_in=Sum("input_tokens"),
        tokens_out=Sum("output_tokens"),
        cost=Sum("cost_usd"),
    )
    total = steps.count()
    prev_seq = steps.filter(seq__lt=step.seq).order_by("-seq").values_list("seq", flat=True)[:1]
    next_seq = steps.filter(seq__gt=step.seq).order_by("seq").values_list("seq", flat=True)[:1]
    start = run.started_at or run.created_at
    spent = {
        "tool_calls": upto["tool_calls"],
        "model_calls": upto["model_calls"],
        "tokens": (upto["tokens_in"] or 0) + (upto["tokens_out"] or 0),
        "cost_usd": upto["cost"] or Decimal("0"),
        "elapsed_s": max(0.0, ((step.ended_at or step.started_at) - start).total_seconds()),
    }
    return Frame(
        step=step,
        index=upto["index"] - 1,
        total=total,
        prev_seq=next(iter(prev_seq), None),
        next_seq=next(iter(next_seq), None),
        spent=spent,
    )


def compare_load(*, left: Run, right: Run) -> tuple[Comparison, bool]:
    """The comparison of two runs, and whether either had more steps than were compared."""

    def steps_of(run):
        rows = list(
            Event.objects.filter(run=run)
            .order_by("seq")
            .values(*STEP_FIELDS)[: COMPARE_MAX_STEPS + 1]
        )
        return rows[:COMPARE_MAX_STEPS], len(rows) > COMPARE_MAX_STEPS

    left_steps, left_cut = steps_of(left)
    right_steps, right_cut = steps_of(right)
    comparison = compare_runs(
        {f: getattr(left, f) for f in RUN_FIELDS},
        left_steps,
        {f: getattr(right, f) for f in RUN_FIELDS},
        right_steps,
    )
    return comparison, left_cut or right_cut


def recording_of(*, run_id) -> list[tuple[dict, dict]]:
    """The (request, response) of each completed model call of run `run_id`, in order."""
    steps = Event.objects.filter(run_id=run_id, kind=EventKind.MODEL_CALL, status="ok")
    return [(s.input or {}, s.output or {}) for s in steps.order_by("seq").only("input", "output")]
