"""Storing batches from agents that run elsewhere (source = external).

Runs are upserted by id, steps through `services.events_record` (the one write path) by id, so
re-sending a batch adds nothing. The server assigns each new step its `seq` (a client's `seq` only
orders the new steps of one batch), which keeps a run's order unique however batches interleave.
An external run's counters are recomputed from its stored steps after every batch.
"""

from collections import defaultdict
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum

from . import selectors, services
from .limits import cost_of
from .models import Event, Run, RunSource

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
)


class Rejected(Exception):
    """One item cannot be stored; `reason` says why (it goes back to the client)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def ingest_batch(*, runs: list[dict], events: list[dict]) -> tuple[dict, list[dict]]:
    """Store valid runs and events (already shape-checked dicts with Event/Run field names).

    Returns (counts, rejected) where rejected lists {"type", "index", "id", "reason"} for items
    refused here (e.g. an event of an unknown run, or an id that belongs to an internal run).
    Everything accepted is committed when this returns.
    """
    rejected: list[dict] = []
    with transaction.atomic():
        run_ids = {r["id"] for r in runs} | {e["run_id"] for e in events}
        # Lock the touched runs in a fixed order so concurrent batches that share runs take
        # turns assigning seq (no duplicates, no deadlock).
        existing = {
            r.id: r for r in Run.objects.select_for_update().filter(id__in=run_ids).order_by("id")
        }
        accepted_runs = _upsert_runs(runs, existing, rejected)
        known_external = {
            run_id for run_id, run in existing.items() if run.source == RunSource.EXTERNAL
        } | accepted_runs
        stored = _store_events(events, known_external, rejected)
        _refresh_counters(known_external & ({e["run_id"] for e in events} | accepted_runs))
    return {"runs": len(accepted_runs), "events": stored}, rejected


def _upsert_runs(items: list[dict], existing: dict, rejected: list) -> set:
    accepted = set()
    to_create, to_update = [], []
    for index, item in items_with_index(items):
        current = existing.get(item["id"])
        if current is not None and current.source != RunSource.EXTERNAL:
            rejected.append(_reject("run", index, item, "this id belongs to a run executed here"))
            continue
        values = {k: item[k] for k in RUN_FIELDS if k in item}
        for key in ("input", "output", "error", "metadata"):
            if values.get(key) is not None:
                values[key] = services.masked(values[key])
        error = values.get("error") or {}
        values["error_code"] = str(error.get("code", ""))[:40] if error else ""
        if current is None:
            run = Run(id=item["id"], source=RunSource.EXTERNAL, **values)
            to_create.append(run)
            existing[run.id] = run
        else:
            for key, value in values.items():
                setattr(current, key, value)
            to_update.append(current)
        accepted.add(item["id"])
    if to_create:
        Run.objects.bulk_create(to_create)
    if to_update:
        Run.objects.bulk_update(to_update, [*RUN_FIELDS, "error_code"])
    return accepted


def items_with_index(items: list[dict]):
    for item in items:
        yield item.pop("_index"), item


def _reject(kind: str, index: int, item: dict, reason: str) -> dict:
    return {"type": kind, "index": index, "id": str(item.get("id", "")), "reason": reason}


def _store_events(items: list[dict], known_runs: set, rejected: list) -> int:
    ok = []
    for index, item in items_with_index(items):
        if item["run_id"] not in known_runs:
            rejected.append(
                _reject("event", index, item, "its run_id names no external run (send the run)")
            )
            continue
        ok.append(item)
    if not ok:
        return 0
    ids = [e["id"] for e in ok]
    stored = {
        event_id: (run_id, seq)
        for event_id, run_id, seq in Event.objects.filter(id__in=ids).values_list(
            "id", "run_id", "seq"
        )
    }
    fresh_by_run = defaultdict(list)
    rows = []
    for item in ok:
        if item["id"] in stored:
            run_id, seq = stored[item["id"]]
            if run_id != item["run_id"]:
                continue  # an id already used by another run's step: keep the first
            item["seq"] = seq  # a step keeps the place it got first
            rows.append(item)
        else:
            fresh_by_run[item["run_id"]].append(item)
    if fresh_by_run:
        next_seq = dict(
            Event.objects.filter(run_id__in=list(fresh_by_run))
            .values_list("run_id")
            .annotate(m=Max("seq"))
            .values_list("run_id", "m")
        )
        for run_id, fresh in fresh_by_run.items():
            seen = set()
            fresh.sort(key=lambda e: (e.get("seq") is None, e.get("seq") or 0, e["started_at"]))
            seq = next_seq.get(run_id, -1) + 1
            for item in fresh:
                if item["id"] in seen:
                    continue  # the same step twice in one batch: the first wins
                seen.add(item["id"])
                item["seq"] = seq
                seq += 1
                rows.append(item)
    _price_missing_costs(rows)
    return services.events_record(events=rows)


def _price_missing_costs(rows: list[dict]) -> None:
    prices: dict = {}
    for row in rows:
        if row.get("cost_usd") is not None or not row.get("model"):
            continue
        if row.get("input_tokens") is None and row.get("output_tokens") is None:
            continue
        key = (row["model"], row["started_at"].date())
        if key not in prices:
            prices[key] = selectors.price_for(row["model"], at=row["started_at"])
        if prices[key] is not None:
            row["cost_usd"] = cost_of(
                row.get("input_tokens") or 0, row.get("output_tokens") or 0, prices[key]
            )


def _refresh_counters(run_ids: set) -> None:
    if not run_ids:
        return
    totals = (
        Event.objects.filter(run_id__in=run_ids)
        .values("run_id")
        .annotate(
            tools=Count("id", filter=Q(kind="tool_call")),
            models=Count("id", filter=Q(kind="model_call")),
            tin=Sum("input_tokens"),
            tout=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            first=Min("started_at"),
        )
    )
    by_run = {t["run_id"]: t for t in totals}
    runs = list(Run.objects.filter(id__in=run_ids))
    for run in runs:
        t = by_run.get(run.id, {})
        run.tool_calls = t.get("tools") or 0
        run.model_calls = t.get("models") or 0
        run.input_tokens = t.get("tin") or 0
        run.output_tokens = t.get("tout") or 0
        run.cost_usd = t.get("cost") or Decimal("0")
        start = run.started_at or t.get("first")
        if start and run.finished_at:
            run.wall_ms = max(0, int((run.finished_at - start).total_seconds() * 1000))
    Run.objects.bulk_update(
        runs,
        ["tool_calls", "model_calls", "input_tokens", "output_tokens", "cost_usd", "wall_ms"],
    )
