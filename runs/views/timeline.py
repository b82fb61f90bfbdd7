"""The run page's timeline as a waterfall: each step's text prepared once (nesting, where its bar
sits on the run's time axis, duration, tokens, cost) so rendering a page of rows stays cheap."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from ..models import Event, Run
from .formatting import duration_text, usd_text


@dataclass(frozen=True)
class StepRow:
    """One step as the timeline shows it, its text prepared here so that rendering a page of
    rows stays cheap: nesting depth, where its bar sits on the run's time axis (percentages of
    the run's span), duration, tokens and cost as text. `event` has no bodies loaded."""

    event: Event
    seq: str
    kind: str
    name: str
    model: str  # shown beside the name when it says something more
    status: str
    depth: int
    offset: str
    width: str
    duration: str
    tokens: str
    cost: str


def step_row(event: Event, depth: int, span) -> StepRow:
    offset, width = bar(span, event.started_at, event.ended_at)
    tokens = ""
    if event.input_tokens is not None:
        out = "—" if event.output_tokens is None else event.output_tokens
        tokens = f"{event.input_tokens} / {out}"
    return StepRow(
        event=event,
        seq=str(event.seq),
        kind=event.kind,
        name=event.name or "(unnamed)",
        model=event.model if event.model and event.model != event.name else "",
        status=event.status,
        depth=depth,
        offset=f"{offset:.2f}",
        width=f"{width:.2f}",
        duration=duration_text(event.duration_ms),
        tokens=tokens,
        cost="" if event.cost_usd is None else usd_text(event.cost_usd),
    )


def run_span(run: Run, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The run's time axis: from its start (or creation) to its end (or now)."""
    start = run.started_at or run.created_at
    end = run.finished_at or now or timezone.now()
    return start, max(end, start + timedelta(milliseconds=1))


def bar(span: tuple[datetime, datetime], started: datetime, ended: datetime | None):
    """(offset %, width %) of a step's bar on `span`; a running step reaches the span's end.
    Always at least a sliver wide, never past 100%."""
    start, end = span
    total = (end - start).total_seconds()
    left = min(max((started - start).total_seconds() / total, 0.0), 1.0)
    right = min(max(((ended or end) - start).total_seconds() / total, left), 1.0)
    offset = round(left * 100, 2)
    width = round(max((right - left) * 100, 0.4), 2)
    return min(offset, 99.6), min(width, 100 - min(offset, 99.6))


def step_rows(run: Run, events: list[Event], now: datetime | None = None) -> list[StepRow]:
    """Rows for steps read by `selectors.timeline` (each carries its `depth`)."""
    span = run_span(run, now)
    return [step_row(e, getattr(e, "depth", 0), span) for e in events]
