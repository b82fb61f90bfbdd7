"""The steps of an ingest batch: merged per id, matched against the stored steps, numbered,
priced, written through `events.events_record`, and what they change in their runs' counters.
Called by `ingest.ingest_batch` inside its transaction, with the runs locked."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection
from django.utils import timezone

from ..engine.budget import Usage, cost_of
from ..models import Event
from ..selectors.prices import price_at, prices_from, prices_of, prices_query
from .events import COLUMNS, events_record, masked

# The largest value the cost columns hold (14 digits, 6 after the point).
MAX_COST = Decimal("99999999.999999")
# Every column of a step, as `values()` names them.
EVENT_FIELDS = tuple(COLUMNS)


class StepIdTaken(Exception):
    """A step id read as free was stored by another transaction before this batch wrote it: the
    batch's transaction must be rolled back and the batch read again."""


@dataclass
class StepReads:
    """What `store_steps` reads of the database for a batch (`step_reads`): which of its step ids
    are stored, each of its runs' last seq, and the prices of the models its steps name."""

    stored_ids: set = field(default_factory=set)
    last_seq: dict = field(default_factory=dict)
    prices: dict = field(default_factory=dict)
    priced: set = field(default_factory=set)  # the models whose prices were read


def step_reads(items: list[dict]) -> tuple[list[tuple[str, list]], object]:
    """The statements that read a batch's `StepReads`, to be sent with the batch's other reads
    (`sql.read_together`), and the function that makes the StepReads from their rows."""
    if not items:
        return [], lambda found: StepReads()
    ids = list({item["id"] for item in items})
    statements = [_stored_ids_query(ids, list({item["run_id"] for item in items}))]
    models = sorted({item["model"] for item in items if item.get("model")})
    if models:
        sql, params, undated = prices_query(models)
        statements.append((sql, params))

    def reads(found: list) -> StepReads:
        stored, last = _stored_ids_from(found[0])
        prices = prices_from(found[1], undated) if models else {}
        return StepReads(set(stored), last, prices, set(models))

    return statements, reads


@dataclass
class UsageDelta(Usage):
    """What a batch adds to (or, for a re-sent step, takes from) one run's counters, and the
    earliest start and latest end (or start) among the steps it adds."""

    first_start: datetime | None = None
    last_end: datetime | None = None

    def add(self, row: dict, sign: int = 1) -> None:
        kind = row.get("kind")
        if kind == "tool_call":
            self.tool_calls += sign
        elif kind == "model_call":
            self.model_calls += sign
        self.input_tokens += sign * (row.get("input_tokens") or 0)
        self.output_tokens += sign * (row.get("output_tokens") or 0)
        self.cost_usd += sign * (row.get("cost_usd") or 0)
        if sign > 0 and (self.first_start is None or row["started_at"] < self.first_start):
            self.first_start = row["started_at"]
        end = row.get("ended_at") or row["started_at"]
        if sign > 0 and (self.last_end is None or end > self.last_end):
            self.last_end = end


def store_steps(
    items: list[dict],
    known_runs: set,
    rejected: list,
    *,
    reads: StepReads,
    content_only: bool = False,
    copy_new: bool = True,
) -> tuple[int, dict]:
    """Write the steps of known external runs; reject the others. Returns (accepted count,
    {run_id: UsageDelta}).

    With `content_only`, an item of a stored step only adds to its content: its `input` and
    `output` fill the step's when empty, or add the messages a stored list lacks; its other
    fields only serve to create a step not stored yet. `reads` are the batch's `step_reads`.
    When every step is new and `copy_new`, they are copied straight into the table; raises
    StepIdTaken if another transaction stored one of their ids since `reads`."""
    merged, indexes = _merge_by_id(items, known_runs, rejected)
    _reject_cycles(merged, indexes, rejected)
    accepted = sum(len(positions) for positions in indexes.values())
    if not merged:
        return accepted, {}
    stored_ids, last_seq = [i for i in merged if i in reads.stored_ids], reads.last_seq
    stored = {}
    if stored_ids:  # re-sent steps: read them whole to merge into
        rows = Event.objects.filter(id__in=stored_ids).values(*EVENT_FIELDS)
        stored = {row["id"]: row for row in rows}
    usage: dict = {}
    rows, fresh_by_run = [], {}
    for event_id, item in merged.items():
        old = stored.get(event_id)
        if old is None:
            item.setdefault("started_at", timezone.now())
            fresh_by_run.setdefault(item["run_id"], []).append(item)
            continue
        if old["run_id"] != item["run_id"]:
            for index in indexes[event_id]:
                rejected.append(_reject(index, item, "this id is a step of another run"))
            accepted -= len(indexes[event_id])
            continue
        if content_only:
            rows.append(_with_content(old, item))
            usage.setdefault(old["run_id"], UsageDelta()).add(old, -1)
            continue
        if item.get("status") == "running" and old["status"] != "running":
            continue  # a late copy of the step's start: the step has ended already
        if "status" not in item and item.get("ended_at") and old["status"] == "running":
            item["status"] = "ok"
        row = {**old, **item, "seq": old["seq"]}
        if row.get("ended_at") and row.get("started_at") and row["ended_at"] < row["started_at"]:
            for index in indexes[event_id]:
                rejected.append(_reject(index, item, "ended_at is before started_at"))
            accepted -= len(indexes[event_id])
            continue
        if "cost_usd" not in item and ("input_tokens" in item or "output_tokens" in item):
            row["cost_usd"] = None  # priced again from the new token counts
        rows.append(row)
        usage.setdefault(row["run_id"], UsageDelta()).add(old, -1)
    rows.extend(_numbered(fresh_by_run, last_seq))
    _price_missing_costs(rows, reads)
    for row in rows:
        usage.setdefault(row["run_id"], UsageDelta()).add(row)
    if stored_ids or not copy_new:
        events_record(events=rows)
        return accepted, usage
    try:  # every step is new, as read under the runs' locks: no upsert needed
        events_record(events=rows, new=True)
    except IntegrityError as exc:
        raise StepIdTaken from exc
    return accepted, usage


def _merge_by_id(items: list[dict], known_runs: set, rejected: list) -> tuple[dict, dict]:
    """{id: item} with the fields of later items of the same id over earlier ones (a step
    started and ended in one batch), and {id: [positions]}."""
    merged: dict = {}
    indexes: dict = {}
    for item in items:
        index = item.pop("_index")
        if item["run_id"] not in known_runs:
            reason = "its run_id names no external run (send the run first or in this batch)"
            rejected.append(_reject(index, item, reason))
            continue
        first = merged.get(item["id"])
        if first is None:
            merged[item["id"]] = item
            indexes[item["id"]] = [index]
        elif first["run_id"] != item["run_id"]:
            rejected.append(_reject(index, item, "this id is a step of another run"))
        else:
            first.update({k: v for k, v in item.items() if k != "seq"})
            indexes[item["id"]].append(index)
    return merged, indexes


def _with_content(old: dict, item: dict) -> dict:
    row = dict(old)
    for key in ("input", "output"):
        new = item.get(key)
        if new is None:
            continue
        if old[key] is None:
            row[key] = new
        elif isinstance(old[key], list) and isinstance(new, list):
            row[key] = old[key] + [m for m in new if masked(m) not in old[key]]
    return row


# How far up a step's parents are followed looking for a cycle; deeper chains are not checked
# further (stored steps form no cycle, so only a chain through this batch's steps can close one).
MAX_PARENT_DEPTH = 100


def _reject_cycles(merged: dict, indexes: dict, rejected: list) -> None:
    """Reject (and drop from `merged`) each step whose `parent_id` leads back to itself,
    following the parents this batch sets over the stored ones."""
    stored_parent: dict = {}

    def parent_of(step_id):
        item = merged.get(step_id)
        if item is not None and "parent_id" in item:
            return item["parent_id"]
        return stored_parent.get(step_id)

    for _ in range(MAX_PARENT_DEPTH):  # load stored parents one level of the chains at a time
        wanted = set()
        for event_id in merged:
            node, seen = parent_of(event_id), set()
            while node is not None and node != event_id and node not in seen:
                seen.add(node)
                if node not in stored_parent and not (
                    node in merged and "parent_id" in merged[node]
                ):
                    wanted.add(node)
                    break
                node = parent_of(node)
        if not wanted:
            break
        found = dict(Event.objects.filter(id__in=wanted).values_list("id", "parent_id"))
        stored_parent.update({node: found.get(node) for node in wanted})
    cyclic = []
    for event_id in merged:
        node, seen = parent_of(event_id), set()
        while node is not None and node not in seen and node != event_id:
            seen.add(node)
            node = parent_of(node)
        if node == event_id:
            cyclic.append(event_id)
    for event_id in cyclic:
        item = merged.pop(event_id)
        for index in indexes.pop(event_id):
            rejected.append(_reject(index, item, "parent_id makes a cycle of steps"))


def _reject(index: int, item: dict, reason: str) -> dict:
    return {"type": "event", "index": index, "id": str(item.get("id", "")), "reason": reason}


def _stored_ids_query(ids: list, run_ids: list) -> tuple[str, list]:
    """Which of `ids` are stored steps, and each run's highest seq (`_stored_ids_from`)."""
    table = connection.ops.quote_name(Event._meta.db_table)
    if connection.vendor == "postgresql":
        # Each list as one array literal: cheaper to send and to plan than 100 parameters. Each
        # run's last seq is one step back along the (run_id, seq) index, however long the run.
        sql = (
            f"SELECT 0, id, NULL FROM {table} WHERE id = ANY(%s::uuid[]) UNION ALL "
            f"SELECT 1, r, (SELECT MAX(seq) FROM {table} WHERE run_id = r) "
            "FROM unnest(%s::uuid[]) AS r"
        )
        params = ["{" + ",".join(map(str, ids)) + "}", "{" + ",".join(map(str, run_ids)) + "}"]
    else:
        pk = Event._meta.pk
        sql = (
            f"SELECT 0, id, NULL FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))}) "
            f"UNION ALL SELECT 1, run_id, MAX(seq) FROM {table} "
            f"WHERE run_id IN ({', '.join(['%s'] * len(run_ids))}) GROUP BY run_id"
        )
        params = [pk.get_db_prep_value(i, connection) for i in [*ids, *run_ids]]
    return sql, params


def _stored_ids_from(found: list) -> tuple[list, dict]:
    stored = [uuid.UUID(str(value)) for which, value, _ in found if which == 0]
    last = {
        uuid.UUID(str(value)): seq for which, value, seq in found if which == 1 and seq is not None
    }
    return stored, last


def _numbered(fresh_by_run: dict, last: dict) -> list[dict]:
    """New steps with the next free seq of their run, in the order the client gave them (its
    `seq`, else their start time)."""
    rows = []
    for run_id, fresh in fresh_by_run.items():
        fresh.sort(key=lambda e: (e.get("seq") is None, e.get("seq") or 0, e["started_at"]))
        seq = last.get(run_id, -1) + 1
        for item in fresh:
            item["seq"] = seq
            seq += 1
            rows.append(item)
    return rows


def _price_missing_costs(rows: list[dict], reads: StepReads) -> None:
    """Price each step that carries tokens but no cost at the price in effect when it started
    (read with the batch; a model only a stored step named is read here)."""
    unpriced = [
        row
        for row in rows
        if row.get("cost_usd") is None
        and row.get("model")
        and (row.get("input_tokens") is not None or row.get("output_tokens") is not None)
    ]
    if not unpriced:
        return
    prices = reads.prices
    unread = {row["model"] for row in unpriced} - reads.priced
    if unread:
        prices = {**prices, **prices_of(unread)}
    for row in unpriced:
        price = price_at(prices.get(row["model"], []), row["started_at"])[0]
        if price is not None:
            cost = cost_of(row.get("input_tokens") or 0, row.get("output_tokens") or 0, price)
            row["cost_usd"] = min(cost, MAX_COST)
