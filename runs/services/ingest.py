"""Storing batches from agents that run elsewhere (source = external).

Runs are upserted by id, steps through `events.events_record` (the one write path) by id, so
re-sending a batch adds nothing. A re-sent item changes only the fields it carries: a `running`
step is completed by sending its id again with `ended_at` (and `status`, `output`, tokens…). The
server assigns each new step its `seq` (a client's `seq` only orders the new steps of one batch),
which keeps a run's order unique however batches interleave.

An external run's counters (tool and model calls, tokens, cost) are the sums over its steps: each
batch adds what its steps added or changed, under the run's lock. A run's times follow its steps
when it does not send them: sent without a start time, it starts (and is created) at its first
step; sent finished without a finish time, it finishes at the end of its last step (at the time
it arrives when it has none); `wall_ms` runs from its start to its end.

Concurrency: a batch holds a lock per run it touches for its whole transaction (PostgreSQL
advisory locks taken in one global order, so batches sharing runs take turns and never deadlock;
SQLite serializes writers anyway). That is what makes run creation, seq assignment and the
counters safe when many clients send overlapping batches at once.
"""

import functools
import json
from collections.abc import Callable

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from ..engine.budget import STEP_COUNTERS
from ..engine.windows import scopes_of
from ..models import TERMINAL_STATUSES, Event, EventKind, Run, RunSource, RunStatus
from .events import json_safe, masked, text_safe
from .ingest_steps import MAX_COST, StepIdTaken, StepReads, UsageDelta, step_reads, store_steps
from .sql import any_of, instances, quoted, read_together, update_by_pk, update_statement
from .windows import spend_scopes, windows_add_spend, windows_from, windows_query

RUN_FIELDS = (
    "agent",
    "status",
    "input",
    "output",
    "error",
    "user_ref",
    "session_ref",
    "tags",
    "metadata",
    "created_at",
    "started_at",
    "finished_at",
    "error_code",
    "cap_hit",
)
_RUN_JSON = ("input", "output", "error", "metadata", "tags")
_RUN_TEXT = ("agent", "user_ref", "session_ref")


def ingest_batch(
    *,
    runs: list[dict],
    events: list[dict],
    replace_run: Callable[[dict | None, dict], bool] | None = None,
    api_key=None,
    content_only: bool = False,
) -> tuple[dict, list[dict]]:
    """Store valid runs and events (already shape-checked dicts with Event/Run field names, each
    with its position in the request under `_index`; a field left out is a field not sent).

    `replace_run(stored_metadata, item)` may veto updating an existing external run (OTLP uses it
    so a stand-in never overwrites a better run); it is not asked when the run is new.
    `content_only` makes events only add content to stored steps (see `store_steps`).
    `api_key` is the key that sent the batch: new runs remember it, and what the batch's steps
    cost fills the spend windows covering their runs (its key's among them).
    Returns (counts, rejected): counts of accepted items {"runs", "events"}, and
    {"type", "index", "id", "reason"} for each item refused here (an event of an unknown run, an
    id that belongs to a run executed here or to another run's step). Everything accepted is
    committed when this returns.
    """
    store = functools.partial(
        _ingest_once, replace_run=replace_run, api_key=api_key, content_only=content_only
    )
    try:  # on copies: the items are consumed as they are stored
        return store(runs=[dict(r) for r in runs], events=[dict(e) for e in events])
    except StepIdTaken:
        # Another batch stored one of these step ids after it was read (this transaction is
        # rolled back whole): read again, and that step is now found where it is.
        return store(runs=runs, events=events, copy_new=False)


def _ingest_once(
    *, runs, events, replace_run, api_key, content_only, copy_new=True
) -> tuple[dict, list[dict]]:
    rejected: list[dict] = []
    with transaction.atomic():
        run_ids = {r["id"] for r in runs} | {e["run_id"] for e in events}
        stored_runs, reads = _batch_reads(run_ids, events, whole=bool(runs))
        existing = {run.id: run for run in stored_runs}
        firsts = _first_step_starts(events)
        accepted_runs, changed, unended = _upsert_runs(
            runs, existing, rejected, replace_run, api_key, firsts
        )
        external = {run_id for run_id, run in existing.items() if run.source == RunSource.EXTERNAL}
        accepted_steps, usage = store_steps(
            events, external, rejected, reads=reads, content_only=content_only, copy_new=copy_new
        )
        _finish_at_last_step({run_id: existing[run_id] for run_id in unended})
        saves = [
            _run_update(existing[run_id], usage.get(run_id), changed)
            for run_id in (changed | set(usage) | unended) & external
        ]
        prefix = api_key.prefix if api_key is not None else ""
        spends = [
            (scopes_of(agent=run.agent, user_ref=run.user_ref, key_prefix=prefix), cost)
            for run_id, run in existing.items()
            if run_id in usage and run_id in external and (cost := usage[run_id].cost_usd)
        ]
        # The runs' counters and the windows their spend fills: one round trip on PostgreSQL.
        scopes = spend_scopes(spends)
        found = read_together(saves + ([windows_query(scopes)] if scopes else []))
        windows_add_spend(spends=spends, windows=windows_from(found[-1]) if scopes else [])
    return {"runs": accepted_runs, "events": accepted_steps}, rejected


def external_runs_fill_io(
    *, run_ids, input_of: Callable[[object], object], output_of: Callable[[object], object]
) -> None:
    """Give each external run among `run_ids` that has no input (or no output) one from its
    steps: `input_of(first model call's input)`, `output_of(last model call's output)`, where
    these return something (not None). Runs that have theirs are left alone. One statement reads
    the runs with their first and last model call's content (an OTLP export makes this call)."""
    if not run_ids:
        return
    calls = f"FROM {quoted(Event)} e WHERE e.run_id = r.id AND e.kind = %s"
    where, params = any_of(Run, "id", run_ids)
    sql = (
        f"SELECT r.id, r.input, r.output, "
        f"(SELECT e.input {calls} ORDER BY e.started_at, e.seq LIMIT 1), "
        f"(SELECT e.output {calls} ORDER BY e.started_at DESC, e.seq DESC LIMIT 1) "
        f"FROM {quoted(Run)} r WHERE r.{where} AND r.source = %s"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, [EventKind.MODEL_CALL, EventKind.MODEL_CALL, *params, "external"])
            found = cursor.fetchall()
        for run_id, *texts in found:
            run_input, run_output, first_input, last_output = map(_json_value, texts)
            values = {}
            if run_input in ({}, None) and (value := input_of(first_input)) is not None:
                values["input"] = json_safe(masked(value))
            if run_output is None and (value := output_of(last_output)) is not None:
                values["output"] = json_safe(masked(value))
            if values:
                update_by_pk(Run, run_id, values)


def _json_value(text):
    """A JSON column read by a plain statement: its text on PostgreSQL (as Django reads jsonb)
    and SQLite alike; None for SQL NULL."""
    return None if text is None else json.loads(text)


# What a batch of steps alone reads of its runs: only the counters and times change.
_STEP_ONLY_FIELDS = (
    "id", "source", "agent", "user_ref", "started_at", "finished_at", *STEP_COUNTERS,
)  # fmt: skip


def _batch_reads(run_ids, events: list[dict], *, whole: bool) -> tuple[list[Run], StepReads]:
    """What a batch reads before it writes, in one round trip on PostgreSQL: the lock on its
    runs first (each statement after it reads what was committed once the lock was held), the
    stored runs among `run_ids` (without `whole`, only `_STEP_ONLY_FIELDS`: the JSON columns
    left unread), and its steps' `StepReads`."""
    names = [f.name for f in Run._meta.concrete_fields] if whole else _STEP_ONLY_FIELDS
    columns = ", ".join(quoted(Run, name) for name in names)
    where, params = any_of(Run, "id", run_ids)
    statements = [(f"SELECT {columns} FROM {quoted(Run)} WHERE {where}", params)]
    if connection.vendor == "postgresql" and run_ids:
        # One 64-bit key per run, locked in ascending order: two batches never wait on each
        # other in opposite orders. A collision of keys only makes two runs share a lock.
        keys = sorted({_lock_key(run_id) for run_id in run_ids})
        lock = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
        statements.insert(0, (lock, [keys]))
    step_statements, step_reads_from = step_reads(events)
    found = read_together(statements + step_statements)
    step_rows = found[len(statements) :]
    return instances(Run, names, found[len(statements) - 1]), step_reads_from(step_rows)


def _lock_key(run_id) -> int:
    value = run_id.int
    key = ((value >> 64) ^ value) & (2**64 - 1)
    return key - 2**64 if key >= 2**63 else key


def runs_try_lock(run_ids) -> set:
    """Take, for the rest of the transaction, the lock a batch takes on each of these runs, but
    only where it is free, never waiting. Returns the ids taken: a run missing from it is being
    written by a batch right now. On SQLite, which serializes writers, every id is taken."""
    run_ids = set(run_ids)
    if connection.vendor != "postgresql" or not run_ids:
        return run_ids
    by_key: dict[int, list] = {}
    for run_id in run_ids:
        by_key.setdefault(_lock_key(run_id), []).append(run_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k FROM unnest(%s::bigint[]) AS k WHERE pg_try_advisory_xact_lock(k)",
            [sorted(by_key)],
        )
        return {run_id for (key,) in cursor.fetchall() for run_id in by_key[key]}


def _run_values(item: dict) -> dict:
    values = {k: item[k] for k in RUN_FIELDS if k in item}
    for key in _RUN_JSON:
        if values.get(key) is not None:
            values[key] = json_safe(masked(values[key]))
    for key in _RUN_TEXT:
        if key in values:
            values[key] = text_safe(values[key])
    return values


def _first_step_starts(events: list[dict]) -> dict:
    """The earliest start among a batch's steps, per run (steps sent without one aside)."""
    firsts: dict = {}
    for event in events:
        started = event.get("started_at")
        if started is not None and (
            event["run_id"] not in firsts or started < firsts[event["run_id"]]
        ):
            firsts[event["run_id"]] = started
    return firsts


def _finish_at_last_step(runs: dict) -> None:
    """Runs sent finished without a finish time finish when their last step ended (or, without
    steps, now). One query, after the batch's steps are written."""
    if not runs:
        return
    ends = (
        Event.objects.filter(run_id__in=list(runs))
        .values("run_id")
        .annotate(ended=Max("ended_at"), started=Max("started_at"))
    )
    last = {row["run_id"]: max(t for t in (row["ended"], row["started"]) if t) for row in ends}
    now = timezone.now()
    for run_id, run in runs.items():
        run.finished_at = last.get(run_id) or now


def _upsert_runs(items: list[dict], existing: dict, rejected: list, replace_run, api_key, firsts):
    """Create the new runs at once; apply items to the stored ones in memory (saved with their
    counters at the end). Returns (accepted count, ids of stored runs that changed, ids of runs
    that finished without a finish time)."""
    accepted = 0
    created: dict = {}
    changed: set = set()
    unended: set = set()
    now = timezone.now()
    for index, item in _with_index(items):
        current = existing.get(item["id"])
        if current is not None and current.source != RunSource.EXTERNAL:
            rejected.append(_reject(index, item, "this id belongs to a run executed here"))
            continue
        accepted += 1
        values = _run_values(item)
        if current is None:
            values.setdefault("status", RunStatus.RUNNING)
            if values.get("input") is None:
                values["input"] = {}
            if not values.get("created_at"):
                values["created_at"] = values.get("started_at") or firsts.get(item["id"]) or now
            current = Run(id=item["id"], source=RunSource.EXTERNAL, api_key=api_key)
            existing[current.id] = created[current.id] = current
        elif replace_run is not None and not replace_run(current.metadata, item):
            continue
        else:
            values.pop("created_at", None)  # a run keeps its place in the list
            if values.get("input", current.input) is None:
                values["input"] = {}
            if current.id not in created:
                changed.add(current.id)
        for key, value in values.items():
            setattr(current, key, value)
        if current.status in TERMINAL_STATUSES and not current.finished_at:
            unended.add(current.id)  # finished at its last step, once the batch's are stored
        error = current.error if isinstance(current.error, dict) else {}
        current.error_code = str(error.get("code") or "")[:40]
        budget = current.status == RunStatus.BUDGET_EXCEEDED
        current.cap_hit = str(error.get("cap") or "")[:40] if budget else ""
    if created:
        for run in created.values():
            run.wall_ms = _wall_ms(run)
        Run.objects.bulk_create(list(created.values()))
    return accepted, changed, unended


def _with_index(items: list[dict]):
    for item in items:
        yield item.pop("_index"), item


def _reject(index: int, item: dict, reason: str) -> dict:
    return {"type": "run", "index": index, "id": str(item.get("id", "")), "reason": reason}


def _run_update(run: Run, usage: UsageDelta | None, changed: set) -> tuple[str, list]:
    """The UPDATE of a stored run this batch changed: its counters plus what the batch added,
    its times, and the fields its item sent."""
    fields = {"started_at", "finished_at", "wall_ms"}
    if usage is not None:
        # Under the run's lock: what is stored plus what this batch changed is the sum.
        run.tool_calls = max(0, run.tool_calls + usage.tool_calls)
        run.model_calls = max(0, run.model_calls + usage.model_calls)
        run.input_tokens = max(0, run.input_tokens + usage.input_tokens)
        run.output_tokens = max(0, run.output_tokens + usage.output_tokens)
        run.cost_usd = min(max(run.cost_usd + usage.cost_usd, 0), MAX_COST)
        if run.started_at is None:
            run.started_at = usage.first_start
        fields.update(STEP_COUNTERS)
    if run.id in changed:
        fields.update(RUN_FIELDS)
    run.wall_ms = _wall_ms(run)
    return update_statement(Run, run.id, {name: getattr(run, name) for name in fields})


def _wall_ms(run: Run) -> int | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0, int((run.finished_at - run.started_at).total_seconds() * 1000))
