"""Reads behind the run page's timeline: pages of steps without their bodies, laid out as a
waterfall, and one step's full body on demand.

A 10,000-step run never loads 10,000 bodies: a page of steps reads only the small columns
(STEP_COLUMNS), and a step's input, output and error are read when someone opens that step.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .errors import NotFound
from .formatting import duration_text, usd_text
from .models import Event, Run

STEP_COLUMNS = (
    "id", "run", "seq", "parent", "kind", "name", "status", "started_at", "ended_at", "model",
    "input_tokens", "output_tokens", "cost_usd",
)  # fmt: skip
STEPS_PER_PAGE = 100
MAX_DEPTH = 12


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


def _depths(run: Run, events: list[Event]) -> dict:
    """Nesting depth of each step in `events`: one extra query, only when some step has a
    parent (steps written by this service's runner never do; ingested ones may)."""
    if not any(e.parent_id for e in events):
        return {}
    parents = dict(
        Event.objects.filter(run=run, parent__isnull=False).values_list("id", "parent_id")
    )
    depths = {}
    for e in events:
        depth, node = 0, e.parent_id
        # A parent may be missing (sent later) or, from a buggy client, a cycle: stop either way.
        while node is not None and depth < MAX_DEPTH:
            depth += 1
            node = parents.get(node)
        depths[e.id] = depth
    return depths


def _page(run: Run, after_seq: int, limit: int) -> tuple[list[Event], int | None]:
    limit = max(1, min(limit, 1000))
    events = list(
        Event.objects.filter(run=run, seq__gt=after_seq)
        .only(*STEP_COLUMNS)
        .order_by("seq")[: limit + 1]
    )
    more = len(events) > limit
    events = events[:limit]
    return events, (events[-1].seq if more and events else None)


def _rows(run: Run, events: list[Event], now=None) -> list[StepRow]:
    depths = _depths(run, events)
    span = run_span(run, now)
    return [step_row(e, depths.get(e.id, 0), span) for e in events]


def steps_page(*, run: Run, after_seq: int = -1, limit: int = STEPS_PER_PAGE, now=None):
    """Steps of `run` after `after_seq`, in order, without bodies. Returns (rows, next_after_seq
    or None when this is the last page). Two queries at most."""
    events, next_after = _page(run, after_seq, limit)
    return _rows(run, events, now), next_after


def live_steps(*, run: Run, open_seqs: list[int], last: int | None):
    """What a live page needs: the steps it still shows as running (`open_seqs`), and when it
    holds the whole timeline up to `last`, the page of steps after it. Returns (changed,
    appended, next_after_seq or None). Three queries at most."""
    changed = []
    if open_seqs:
        changed = list(
            Event.objects.filter(run=run, seq__in=open_seqs[:200])
            .only(*STEP_COLUMNS)
            .order_by("seq")
        )
    appended, next_after = _page(run, last, STEPS_PER_PAGE) if last is not None else ([], None)
    rows = _rows(run, changed + appended)
    return rows[: len(changed)], rows[len(changed) :], next_after


def step_get(*, run: Run, seq: int) -> Event:
    """Step `seq` of `run` with its full input, output, error and attributes."""
    event = Event.objects.filter(run=run, seq=seq).first()
    if event is None:
        raise NotFound(f"run {run.id} has no step {seq}")
    return event
