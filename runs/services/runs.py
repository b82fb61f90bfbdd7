"""Writes to runs executed here: create (and dispatch to a worker), cancel, claim, finish, end
as lost. Keyword-only; views, API operations and tasks call these.

Dispatch is an outbox: a run is created `queued` and sent to the broker after its transaction
commits; `dispatched_at` says the broker took the message. A send that fails (the broker is down)
leaves the run queued and unsent, and `runs_redispatch` (beat, and every worker as it starts)
sends it later, as it does a message sent but not taken for a while. A run may so be sent twice;
`run_claim` lets exactly one delivery execute it.
"""

import logging
from collections.abc import Iterable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..agents import get_agent
from ..engine.approvals import resolve_approval_policy
from ..engine.budget import COUNTERS, STEP_COUNTERS
from ..engine.caps import CapError, CapRaiseNotAllowed, resolve_caps
from ..engine.webhooks import RUN_LOST, RUN_STATUS_EVENTS
from ..engine.windows import scopes_of
from ..errors import Conflict, Forbidden, InvalidInput
from ..models import ACTIVE_STATUSES, TERMINAL_STATUSES, ApiKey, Event, Run, RunSource, RunStatus
from ..selectors.caps import cap_policies_for
from .approvals import approvals_close_run
from .events import masked
from .sql import instances, quoted, update_by_pk, update_statement
from .webhooks import notify_run
from .windows import windows_check_room, windows_release_run

log = logging.getLogger(__name__)

EXECUTE_TASK = "runs.execute"  # runs.tasks.execute_run, sent by name (tasks import this module)
# A queued run whose message was not sent is sent again after this long (the send after commit
# normally happens within milliseconds); one sent but not taken, after REDISPATCH_AFTER doubled
# for each send already made, up to REDISPATCH_MAX, so a long backlog does not pile up copies.
UNSENT_GRACE = timedelta(seconds=10)
REDISPATCH_AFTER = timedelta(seconds=60)
REDISPATCH_MAX = timedelta(hours=1)
REDISPATCH_BATCH = 500


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
    api_key=None,
    replay_of: Run | None = None,
    replay_mode: str = "",
    now=None,
) -> Run:
    """Create a queued run of a registered agent and enqueue it once the transaction commits.

    The caps are resolved (global ← agent ← request) and frozen on the run, with the approval
    policy (global ← agent: on_cap, the timeout, the ceilings, the tools that need approval).
    Raises InvalidInput with code `unknown_agent` or `invalid_caps`, Forbidden
    (`cap_above_policy`), or SpendWindowExhausted (429) when a spend window covering the run
    has nothing left this period; nothing is written then (but the window's count of refusals).
    """
    spec = get_agent(agent)
    if spec is None:
        raise InvalidInput(f"no agent named {agent!r} is registered here", code="unknown_agent")
    global_policy, agent_policy = cap_policies_for(agent)
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

    windows_check_room(
        agent=agent, user_ref=user_ref, key_prefix=api_key.prefix if api_key else "", now=now
    )
    with transaction.atomic():
        run = Run.objects.create(
            agent=agent,
            status=RunStatus.QUEUED,
            input=masked(input),
            caps=frozen.to_dict(),
            approval_policy=resolve_approval_policy(global_policy, agent_policy).to_dict(),
            user_ref=user_ref,
            session_ref=session_ref,
            tags=list(tags),
            metadata=masked(metadata or {}),
            source=RunSource.INTERNAL,
            created_by=created_by,
            api_key=api_key,
            replay_of=replay_of,
            replay_mode=replay_mode,
        )
        transaction.on_commit(lambda: run_dispatch(run_id=run.id))
    return run


def run_dispatch(*, run_id, now=None) -> bool:
    """Send a queued run to the broker and note that it was sent (at `now`). Never raises: when
    the broker cannot take it, the run stays queued and unsent, and `runs_redispatch` sends it
    later."""
    try:
        _send(run_id)
    except Exception as exc:  # the broker is down or refused: the outbox keeps the run
        log.warning("run %s not sent to the broker (will retry): %s", run_id, exc)
        return False
    Run.objects.filter(id=run_id, status=RunStatus.QUEUED).update(
        dispatched_at=now or timezone.now(), dispatches=F("dispatches") + 1
    )
    return True


def _send(run_id) -> None:
    current_app.send_task(
        EXECUTE_TASK,
        args=[str(run_id)],
        queue=settings.AGENTOPS_QUEUE,
        # One quick retry: a broker that is down is the outbox's to wait for, not the request's.
        retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
    )


def runs_redispatch(*, now=None) -> int:
    """Send again the queued runs whose message was never sent, or was sent but not taken for a
    while (see the module doc). Stops at the first send that fails (the broker is still down).
    Returns how many were sent."""
    now = now or timezone.now()
    due = Q(dispatched_at__isnull=True, created_at__lt=now - UNSENT_GRACE) | Q(
        dispatched_at__lte=now - REDISPATCH_AFTER
    )
    candidates = (
        Run.objects.filter(due, status=RunStatus.QUEUED, source=RunSource.INTERNAL)
        .order_by("created_at")
        .values_list("id", "dispatched_at", "dispatches")[:REDISPATCH_BATCH]
    )
    sent = 0
    for run_id, dispatched_at, dispatches in list(candidates):
        if dispatched_at is not None:
            wait = min(REDISPATCH_AFTER * 2 ** max(dispatches - 1, 0), REDISPATCH_MAX)
            if now - dispatched_at < wait:
                continue
        # Taken by this pass only if no other pass re-sent it meanwhile.
        taken = Run.objects.filter(
            id=run_id, status=RunStatus.QUEUED, dispatches=dispatches, dispatched_at=dispatched_at
        ).update(dispatched_at=now)
        if not taken:
            continue
        if not run_dispatch(run_id=run_id, now=now):
            Run.objects.filter(id=run_id, dispatches=dispatches).update(dispatched_at=dispatched_at)
            break
        sent += 1
    return sent


def run_cancel(*, run: Run) -> Run:
    """Cancel a run: a queued one ends `cancelled` at once; a running one is asked to stop and
    its runner ends it at its next step or sooner (a run awaiting approval stops waiting). A
    finished run cannot be cancelled (Conflict)."""
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
    if Run.objects.filter(id=run.id, status__in=ACTIVE_STATUSES).update(cancel_requested_at=now):
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise Conflict(f"run {run.id} is already {run.status}", code="run_finished")


def run_claim_queued(*, run_id, worker: str) -> Run | None:
    """Take a run that is queued, in one statement: the run as it now is, or None when it is not
    queued (see `run_claim`). The run carries `key_prefix`, its API key's prefix ("" without a
    key), for `run_scopes`, and `fresh` (True: it has no steps yet)."""
    now = timezone.now()
    values = {
        "status": RunStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker,
        "attempt": 1,
    }
    update, params = update_statement(Run, run_id, values, only_if=("status", [RunStatus.QUEUED]))
    with connection.cursor() as cursor:
        cursor.execute(f"{update} RETURNING {_claim_returning()}", params)
        row = cursor.fetchone()
    if row is None:
        return None
    [run] = instances(Run, _RUN_FIELDS, [row[:-1]])
    run.key_prefix = row[-1] or ""
    run.fresh = True
    return run


_RUN_FIELDS = [f.name for f in Run._meta.concrete_fields]
_RETURNING: dict = {}


def _claim_returning() -> str:
    """What the claim returns: every column of the run and its key's prefix (written once per
    database vendor)."""
    text = _RETURNING.get(connection.vendor)
    if text is None:
        table = quoted(Run)
        columns = ", ".join(f"{table}.{quoted(Run, name)}" for name in _RUN_FIELDS)
        prefix = (
            f"(SELECT {quoted(ApiKey, 'prefix')} FROM {quoted(ApiKey)} WHERE {quoted(ApiKey)}."
            f"{quoted(ApiKey, 'id')} = {table}.{quoted(Run, 'api_key')}) AS key_prefix"
        )
        text = _RETURNING[connection.vendor] = f"{columns}, {prefix}"
    return text


def run_claim(*, run_id, worker: str, safe_to_retry: bool) -> Run | None:
    """Take a queued run for this worker. Returns the run to execute, or None when there is
    nothing to do: the run is gone, finished, or is being executed by a live attempt.

    A run found `running` with a stale heartbeat was started by an attempt whose worker died; it
    ends `lost` (worker_lost) unless its agent is safe to retry, so a run never runs twice.
    """
    claimed = run_claim_queued(run_id=run_id, worker=worker)
    if claimed is not None:
        return claimed
    now = timezone.now()
    run = Run.objects.filter(id=run_id).first()
    if run is None or run.status not in ACTIVE_STATUSES:
        return None
    stale_before = now - timedelta(seconds=settings.AGENTOPS_HEARTBEAT_STALE_SECONDS)
    if run.heartbeat_at and run.heartbeat_at >= stale_before:
        return None  # a live attempt holds it: this delivery is a duplicate
    if safe_to_retry:
        with transaction.atomic():
            retaken = Run.objects.filter(
                id=run_id, status__in=ACTIVE_STATUSES, attempt=run.attempt
            ).update(
                status=RunStatus.RUNNING, heartbeat_at=now, worker=worker, attempt=run.attempt + 1
            )
            if retaken:  # the new attempt starts over: what the old one waited on is closed
                approvals_close_run(run_id=run_id, actor="worker lost; run again", now=now)
        return Run.objects.get(id=run_id) if retaken else None
    run_mark_lost(run_id=run.id, reason="its worker stopped and the task was delivered again")
    return None


def run_mark_lost(*, run_id, reason: str) -> bool:
    """End a running run (or one awaiting approval) as `lost` (worker_lost). Steps already
    written are kept; a step left `running` is closed as `cancelled`, a question left open as
    `lost`. Returns False when the run was not running."""
    now = timezone.now()
    error = {"code": "worker_lost", "message": f"The run was lost: {reason}."}
    with transaction.atomic():
        ended = Run.objects.filter(id=run_id, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.LOST, error=error, error_code="worker_lost", finished_at=now
        )
        if ended:
            approvals_close_run(run_id=run_id, actor="worker lost", now=now)
            Event.objects.filter(run_id=run_id, status="running").update(
                status="cancelled", ended_at=now
            )
            windows_release_run(run_id=run_id)
            notify_run(RUN_LOST, run_id)
    return bool(ended)


def runs_reap(*, stale_after_seconds: int | None = None) -> int:
    """End every running run (or one awaiting approval) whose heartbeat stopped more than
    `stale_after_seconds` ago."""
    seconds = stale_after_seconds or settings.AGENTOPS_HEARTBEAT_STALE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = Run.objects.filter(
        status__in=ACTIVE_STATUSES, source=RunSource.INTERNAL, heartbeat_at__lt=cutoff
    ).values_list("id", flat=True)
    return sum(
        run_mark_lost(run_id=run_id, reason=f"no heartbeat for over {seconds} s")
        for run_id in list(stale)
    )


def run_finish(
    *, run_id, status: str, output=None, error: dict | None = None, usage=None, holds: bool = True
) -> bool:
    """Record a run's outcome. Only a running run (or one awaiting approval) can finish;
    returns False otherwise (it was reaped or cancelled meanwhile and keeps that state). A run
    that ends failed or budget_exceeded is told to the webhooks that asked (after commit, by a
    task). What the run still holds in spend windows is released; `holds=False` says it never
    held anything (its executor knows)."""
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
        fields.update(usage.fields())
    if not holds and status not in RUN_STATUS_EVENTS:
        # Nothing to write with it (the usual success): one statement, its own commit, instead
        # of BEGIN, the UPDATE and COMMIT in three round trips.
        return bool(update_by_pk(Run, run_id, fields, only_if=("status", ACTIVE_STATUSES)))
    with transaction.atomic():
        finished = update_by_pk(Run, run_id, fields, only_if=("status", ACTIVE_STATUSES))
        if holds:
            windows_release_run(run_id=run_id)  # what an abandoned call still held
        if finished and status in RUN_STATUS_EVENTS:
            notify_run(RUN_STATUS_EVENTS[status], run_id)
    return bool(finished)


def runs_heartbeat(run_ids: list) -> None:
    """Stamp `heartbeat_at` on the active runs among `run_ids`. On PostgreSQL a run whose row
    another transaction holds (a batch writing its counters, its finish) is skipped, not waited
    for: it is alive, and waiting could deadlock with a batch locking runs in another order."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        Run.objects.filter(id__in=run_ids, status__in=ACTIVE_STATUSES).update(heartbeat_at=now)
        return
    table, pk, status = quoted(Run), quoted(Run, "id"), quoted(Run, "status")
    ids = [Run._meta.pk.get_db_prep_value(run_id, connection) for run_id in run_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {quoted(Run, 'heartbeat_at')} = %s WHERE {pk} IN ("
            f"SELECT {pk} FROM {table} WHERE {pk} = ANY(%s) AND {status} = ANY(%s)"
            f" ORDER BY {pk} FOR UPDATE SKIP LOCKED)",
            [now, ids, [str(s) for s in ACTIVE_STATUSES]],
        )


def runs_usage_update(usages: dict, *, heartbeat_at=None, live: bool = False) -> None:
    """Several runs' counters (run id -> Usage) in one statement; with `heartbeat_at`, their
    heartbeat stamped too. `live`: the counters of runs still running, without their wall time,
    which their end writes (`wall_ms` is indexed for the "longest" sort; leaving it, and every
    other indexed column, unchanged lets PostgreSQL update the row in place, HOT)."""
    names = STEP_COUNTERS if live else COUNTERS
    stamp = {} if heartbeat_at is None else {"heartbeat_at": heartbeat_at}
    if len(usages) == 1:
        [(run_id, usage)] = usages.items()
        Run.objects.filter(id=run_id).update(**usage.fields(names), **stamp)
    elif usages:
        # One UPDATE per run sent together (executemany: one pipeline on PostgreSQL), without
        # building ORM expressions for each.
        fields = [Run._meta.get_field(name) for name in [*names, *stamp]]
        quote = connection.ops.quote_name
        sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        sql = f"UPDATE {quote(Run._meta.db_table)} SET {sets} WHERE {quote('id')} = %s"
        pk = Run._meta.pk
        params = []
        # In one order, so two batches (or a batch and a finish) cannot deadlock.
        for run_id, usage in sorted(usages.items(), key=lambda item: str(item[0])):
            values = {**usage.fields(names), **stamp}
            params.append(
                [f.get_db_prep_save(values[f.name], connection) for f in fields]
                + [pk.get_db_prep_value(run_id, connection)]
            )
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


def run_scopes(run: Run) -> list[str]:
    """The spend-window scopes that cover `run` (engine.windows.scopes_of)."""
    prefix = getattr(run, "key_prefix", None)
    if prefix is None:
        prefix = ApiKey.objects.filter(id=run.api_key_id).values_list("prefix", flat=True).first()
    return scopes_of(agent=run.agent, user_ref=run.user_ref, key_prefix=prefix or "")
