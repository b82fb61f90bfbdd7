"""Reads behind the run page's timeline: pages of steps without their bodies, each with its
nesting depth, and one step's full body on demand (`views.timeline` lays them out).

A 10,000-step run never loads 10,000 bodies: a page of steps reads only the small columns
(STEP_COLUMNS), and a step's input, output and error are read when someone opens that step.
"""

from ..errors import NotFound
from ..models import Event, Run

STEP_COLUMNS = (
    "id", "run", "seq", "parent", "kind", "name", "status", "started_at", "ended_at", "model",
    "input_tokens", "output_tokens", "cost_usd",
)  # fmt: skip
STEPS_PER_PAGE = 100
MAX_DEPTH = 12


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


def _with_depths(run: Run, events: list[Event]) -> list[Event]:
    depths = _depths(run, events)
    for event in events:
        event.depth = depths.get(event.id, 0)
    return events


def steps_page(*, run: Run, after_seq: int = -1, limit: int = STEPS_PER_PAGE):
    """Steps of `run` after `after_seq`, in order, without bodies, each with its `depth`.
    Returns (steps, next_after_seq or None when this is the last page). Two queries at most."""
    events, next_after = _page(run, after_seq, limit)
    return _with_depths(run, events), next_after


def live_steps(*, run: Run, open_seqs: list[int], last: int | None):
    """What a live page needs: the steps it still shows as running (`open_seqs`), and when it
    holds the whole timeline up to `last`, the page of steps after it (each with its `depth`).
    Returns (changed,
    appended, next_after_seq or None). Three queries at most."""
    changed = []
    if open_seqs:
        changed = list(
            Event.objects.filter(run=run, seq__in=open_seqs[:200])
            .only(*STEP_COLUMNS)
            .order_by("seq")
        )
    appended, next_after = _page(run, last, STEPS_PER_PAGE) if last is not None else ([], None)
    steps = _with_depths(run, changed + appended)
    return steps[: len(changed)], steps[len(changed) :], next_after


def step_get(*, run: Run, seq: int) -> Event:
    """Step `seq` of `run` with its full input, output, error and attributes."""
    event = Event.objects.filter(run=run, seq=seq).first()
    if event is None:
        raise NotFound(f"run {run.id} has no step {seq}")
    return event


TRANSCRIPT_STEPS = 50  # steps per page of the transcript, bodies included


def transcript_page(*, run: Run, after_seq: int = -1, limit: int = TRANSCRIPT_STEPS):
    """Steps of `run` after `after_seq`, in order, with their bodies (the transcript reads
    them), and the input of the last model call before them, so a later page carries the
    conversation on. Returns (steps, previous input or None, next_after_seq or None)."""
    limit = max(1, min(limit, 500))
    events = list(Event.objects.filter(run=run, seq__gt=after_seq).order_by("seq")[: limit + 1])
    more = len(events) > limit
    events = events[:limit]
    previous = None
    if after_seq >= 0:
        previous = (
            Event.objects.filter(run=run, kind="model_call", seq__lte=after_seq)
            .order_by("-seq")
            .values_list("input", flat=True)
            .first()
        )
    return events, previous, (events[-1].seq if more and events else None)


def conversation_ends(*, run: Run) -> tuple:
    """The input of the run's first model call and the output of its last one that answered
    (None when there is none): where its question and its last answer are when its own input
    and output do not say. Two queries."""
    calls = Event.objects.filter(run=run, kind="model_call")
    first = calls.order_by("seq").values_list("input", flat=True).first()
    answered = calls.filter(output__isnull=False)
    last = answered.order_by("-seq").values_list("output", flat=True).first()
    return first, last
