"""Writes to runs and their steps. Keyword-only, typed; views, API operations and tasks call these.

`events_record` is the one write path for steps: the runner and the ingest API both use it.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import event_rows, selectors
from .agents import get_agent
from .errors import Conflict, Forbidden, InvalidInput
from .limits import CapError, CapRaiseNotAllowed, resolve_caps
from .masking import compile_patterns, mask
from .models import TERMINAL_STATUSES, Event, Run, RunSource, RunStatus


def masked(value):
    """`value` with secrets masked by the default and the configured patterns."""
    return mask(value, compile_patterns(settings.AGENTOPS_SECRET_PATTERNS))


# Columns a re-sent step may change (`parent` first). `run` and `seq` are fixed by the first
# write.
EVENT_UPDATE_FIELDS = [
    "parent",
    "kind",
    "name",
    "status",
    "started_at",
    "ended_at",
    "input",
    "output",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "attributes",
]


def run_create(
    *,
    agent: str,
    input,
    caps: dict | None = None,
    may_raise_caps: bool = False,
    user_ref: str = "",
    session_ref: str = "",
    tags: Iterable[str] = (),
    metadata: dict | None = None,
    created_by=None,
    replay_of: Run | None = None,
    replay_mode: str = "",
) -> Run:
    """Create a queued run of a registered agent and enqueue it once the transaction commits.

    The caps are resolved (global ← agent ← request) and frozen on the run. Raises InvalidInput
    with code `unknown_agent` or `invalid_caps`; nothing is written then.
    """
    spec = get_agent(agent)
    if spec is None:
        raise InvalidInput(f"no agent named {agent!r} is registered here", code="unknown_agent")
    global_policy, agent_policy = selectors.cap_policies_for(agent)
    try:
        frozen = resolve_caps(global_policy, agent_policy, caps or {}, may_raise=may_raise_caps)
    except CapRaiseNotAllowed as exc:
        raise Forbidden(
            str(exc), code="cap_above_policy", details={"cap": exc.field, "reason": exc.message}
        ) from None
    except CapError as exc:
        raise InvalidInput(
            str(exc), code="invalid_caps", details={"cap": exc.field, "reason": str(exc)}
        ) from None

    with transaction.atomic():
        run = Run.objects.create(
            agent=agent,
            status=RunStatus.QUEUED,
            input=masked(input),
            caps=frozen.to_dict(),
            user_ref=user_ref,
            session_ref=session_ref,
            tags=list(tags),
            metadata=masked(metadata or {}),
            source=RunSource.INTERNAL,
            created_by=created_by,
            replay_of=replay_of,
            replay_mode=replay_mode,
        )
        transaction.on_commit(lambda: _enqueue(run.id))
    return run


def _enqueue(run_id) -> None:
    from .tasks import execute_run  # tasks import services; import here to keep one direction

    execute_run.apply_async(args=[str(run_id)], queue=settings.AGENTOPS_QUEUE)


def run_cancel(*, run: Run) -> Run:
    """Cancel a run: a queued one ends `cancelled` at once; a running one is asked to stop and
    its runner ends it at its next step or sooner. A finished run cannot be cancelled (Conflict)."""
    now = timezone.now()
    error = {"code": "cancelled", "message": "Cancelled before it started."}
    if Run.objects.filter(id=run.id, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED,
        error=error,
        error_code="cancelled",
        cancel_requested_at=now,
        finished_at=now,
    ):
        run.refresh_from_db()
        return run
    if Run.objects.filter(id=run.id, status=RunStatus.RUNNING).update(cancel_requested_at=now):
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise Conflict(f"run {run.id} is already {run.status}", code="run_finished")


def run_claim(*, run_id, worker: str, safe_to_retry: bool) -> Run | None:
    """Take a queued run for this worker. Returns the run to execute, or None when there is
    nothing to do: the run is gone, finished, or is being executed by a live attempt.

    A run found `running` with a stale heartbeat was started by an attempt whose worker died; it
    ends `lost` (worker_lost) unless its agent is safe to retry, so a run never runs twice.
    """
    now = timezone.now()
    claimed = Run.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker, attempt=1
    )
    if claimed:
        return Run.objects.get(id=run_id)
    run = Run.objects.filter(id=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return None
    stale_before = now - timedelta(seconds=settings.AGENTOPS_HEARTBEAT_STALE_SECONDS)
    if run.heartbeat_at and run.heartbeat_at >= stale_before:
        return None  # a live attempt holds it: this delivery is a duplicate
    if safe_to_retry:
        retaken = Run.objects.filter(
            id=run_id, status=RunStatus.RUNNING, attempt=run.attempt
        ).update(heartbeat_at=now, worker=worker, attempt=run.attempt + 1)
        return Run.objects.get(id=run_id) if retaken else None
    run_mark_lost(run_id=run.id, reason="its worker stopped and the task was delivered again")
    return None


def run_mark_lost(*, run_id, reason: str) -> bool:
    """End a running run as `lost` (worker_lost). Steps already written are kept; a step left
    `running` is closed as `cancelled`. Returns False when the run was not running."""
    now = timezone.now()
    error = {"code": "worker_lost", "message": f"The run was lost: {reason}."}
    with transaction.atomic():
        ended = Run.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.LOST, error=error, error_code="worker_lost", finished_at=now
        )
        if ended:
            Event.objects.filter(run_id=run_id, status="running").update(
                status="cancelled", ended_at=now
            )
    return bool(ended)


def runs_reap(*, stale_after_seconds: int | None = None) -> int:
    """End every running run whose heartbeat stopped more than `stale_after_seconds` ago."""
    seconds = stale_after_seconds or settings.AGENTOPS_HEARTBEAT_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = Run.objects.filter(
        status=RunStatus.RUNNING, source=RunSource.INTERNAL, heartbeat_at__lt=cutoff
    ).values_list("id", flat=True)
    return sum(
        run_mark_lost(run_id=run_id, reason=f"no heartbeat for over {seconds} s")
        for run_id in list(stale)
    )


def run_finish(*, run_id, status: str, output=None, error: dict | None = None, usage=None) -> bool:
    """Record a run's outcome. Only a running run can finish; returns False otherwise (it was
    reaped or cancelled meanwhile and keeps that state)."""
    assert status in TERMINAL_STATUSES, status
    now = timezone.now()
    fields = {
        "status": status,
        "output": masked(output) if output is not None else None,
        "error": masked(error) if error else None,
        "error_code": (error or {}).get("code", "")[:40],
        "cap_hit": (error or {}).get("cap", "")[:40] if status == "budget_exceeded" else "",
        "finished_at": now,
    }
    if usage is not None:
        fields.update(usage_fields(usage))
    return bool(Run.objects.filter(id=run_id, status=RunStatus.RUNNING).update(**fields))


def usage_fields(usage) -> dict:
    return {
        "tool_calls": usage.tool_calls,
        "model_calls": usage.model_calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
        "wall_ms": usage.wall_ms,
    }


def run_usage_update(*, run_id, usage) -> None:
    Run.objects.filter(id=run_id).update(**usage_fields(usage))


def events_record(*, events: list[dict]) -> int:
    """Insert steps, or complete/replace them when their id is already stored (idempotent).

    Each dict has Event field names (`run_id`, `seq`, `parent_id`, …). Agent-written fields are
    masked here, so nothing that reaches the table skipped masking; NUL characters and NaN or
    infinite numbers, which PostgreSQL cannot store, are replaced (see `event_rows`). A step given
    twice in one call is written once: run and seq from its first dict, the rest from its last.
    Returns the number of steps written.
    """
    rows = []
    for data in events:
        row = event_rows.normalized(dict(data))
        written = {k: row[k] for k in ("input", "output", "error", "attributes") if row.get(k)}
        if written:
            row.update(masked(written))  # one walk per step
        rows.append(row)
    rows = event_rows.merge_same_ids(rows)
    if not rows:
        return 0
    if event_rows.use_copy(len(rows)):
        # Large writes (ingest batches) stream through COPY; see event_rows.copy_upsert.
        event_rows.copy_upsert(rows, update_fields=EVENT_UPDATE_FIELDS)
        return len(rows)
    Event.objects.bulk_create(
        [Event(**event_rows.safe_row(row)) for row in rows],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=EVENT_UPDATE_FIELDS,
    )
    return len(rows)
