"""Retention: deleting finished runs, with their steps and every row that depends on them, once
they are older than a limit (`manage.py prune`, and beat daily when AGENTOPS_RETENTION_DAYS is set).

A run is older than the limit when it was created before the cutoff (now − limit) and, if it has
ended, ended before it too: the pages list and filter runs by creation time, so what goes is
always the oldest end of the list, and a run that ended within the limit is kept whenever it
started. A run exactly at the cutoff is kept. Only finished runs go (TERMINAL_STATUSES): a
queued, running or waiting run is never touched, however old.

The work is cut into short transactions of at most `batch_steps` steps (a run with more steps
than that loses them over several), so neither ingest nor the pages wait on it for long. Each
transaction first takes, without waiting, the lock an ingest batch takes on a run; a run that a
batch is writing is left for the next prune. Its status and age are checked again under that
lock, so a run sent again as running in the meantime stays.

Dependent rows go as each model's `on_delete` says (Django's deletion collector): steps and
spend reservations with their run; a replay of a deleted run stays, its `replay_of` cleared.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import Count, Q
from django.db.models.deletion import get_candidate_relations_to_delete
from django.utils import timezone

from ..models import TERMINAL_STATUSES, Event, Run
from .ingest import runs_try_lock

BATCH_STEPS = 5_000  # steps deleted per transaction
BATCH_RUNS = 500  # runs looked at per query
RUN_LABEL = Run._meta.label
STEP_LABEL = Event._meta.label


@dataclass
class PruneReport:
    """What a prune removed (or, with dry_run, would remove): rows by model label
    (`runs.Run`, `runs.Event`, …), how many transactions it took, and the runs it left because
    they were being written."""

    cutoff: datetime
    dry_run: bool
    removed: Counter = field(default_factory=Counter)
    batches: int = 0
    skipped: int = 0

    @property
    def runs(self) -> int:
        return self.removed[RUN_LABEL]

    @property
    def steps(self) -> int:
        return self.removed[STEP_LABEL]

    def others(self) -> dict[str, int]:
        """Dependent rows other than steps, by their model's plural name."""
        names = {m._meta.label: str(m._meta.verbose_name_plural) for m in _dependent_models()}
        return {
            names.get(label, label): n
            for label, n in sorted(self.removed.items())
            if label not in (RUN_LABEL, STEP_LABEL) and n
        }

    def summary(self) -> str:
        """One line: what went (or would go), before which time, in how many transactions."""
        parts = [f"{self.runs:,} runs", f"{self.steps:,} steps"]
        parts += [f"{n:,} {name}" for name, n in self.others().items()]
        verb = "Would remove" if self.dry_run else "Removed"
        line = (
            f"{verb} {', '.join(parts)} finished before {self.cutoff:%Y-%m-%d %H:%M:%S} UTC "
            f"({self.batches:,} batches)."
        )
        if self.skipped:
            line += f" Left {self.skipped:,} runs being written; the next prune takes them."
        return line


def runs_prune(
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_steps: int = BATCH_STEPS,
    batch_runs: int = BATCH_RUNS,
) -> PruneReport:
    """Delete the finished runs older than `older_than` (see the module doc for what counts as
    older), their steps and dependent rows, in transactions of at most `batch_steps` steps.
    With `dry_run`, delete nothing and report what would go. Returns the report; everything it
    counts as removed is committed."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_steps < 1 or batch_runs < 1:
        raise ValueError("batch sizes must be positive")
    cutoff = (now or timezone.now()) - older_than
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    after = None
    while page := _candidates(cutoff, after, batch_runs):
        steps = _step_counts([run_id for run_id, _ in page])
        for group in _groups(page, steps, batch_steps):
            if dry_run:
                report.removed[RUN_LABEL] += len(group)
                report.removed[STEP_LABEL] += sum(steps.get(run_id, 0) for run_id in group)
                report.removed.update(_dependents(group))
                # A run of more steps than a batch goes over several (see _delete_group).
                report.batches += max(1, -(-sum(steps.get(r, 0) for r in group) // batch_steps))
            else:
                _delete_group(group, steps, cutoff, batch_steps, report)
        after = page[-1][1], page[-1][0]
    return report


def _expired(cutoff: datetime) -> Q:
    return (
        Q(status__in=TERMINAL_STATUSES, created_at__lt=cutoff)
        & (Q(finished_at__isnull=True) | Q(finished_at__lt=cutoff))
    )  # fmt: skip


def _candidates(cutoff: datetime, after, limit: int) -> list[tuple]:
    """The next (id, created_at) of expired runs, oldest first, after the (created_at, id)
    `after` (runs left behind, being written, are not looked at again in this prune)."""
    query = Run.objects.filter(_expired(cutoff))
    if after is not None:
        created, run_id = after
        query = query.filter(created_at__gte=created).filter(
            Q(created_at__gt=created) | Q(id__gt=run_id)
        )
    return list(query.order_by("created_at", "id").values_list("id", "created_at")[:limit])


def _step_counts(run_ids: list) -> dict:
    rows = Event.objects.filter(run_id__in=run_ids).values("run_id").annotate(n=Count("id"))
    return {row["run_id"]: row["n"] for row in rows.order_by()}


def _groups(page: list[tuple], steps: dict, batch_steps: int):
    """Runs in order, cut into groups of at most `batch_steps` steps (a bigger run alone)."""
    group, size = [], 0
    for run_id, _ in page:
        n = steps.get(run_id, 0)
        if group and size + n > batch_steps:
            yield group
            group, size = [], 0
        group.append(run_id)
        size += n
    if group:
        yield group


def _delete_group(group: list, steps: dict, cutoff, batch_steps: int, report) -> None:
    """Delete one group's runs in one transaction; a run of more than `batch_steps` steps first
    loses them `batch_steps` at a time, each in a transaction of its own."""
    while True:
        with transaction.atomic():
            taken = _take(group, cutoff)
            report.skipped += len(group) - len(taken)
            if not taken:
                return
            if len(taken) == 1 and steps.get(taken[0], 0) > batch_steps:
                chunk = list(
                    Event.objects.filter(run_id=taken[0])
                    .order_by("seq")
                    .values_list("id", flat=True)[: batch_steps + 1]
                )
                if len(chunk) > batch_steps:
                    deleted, _ = Event.objects.filter(id__in=chunk[:batch_steps]).delete()
                    report.removed[STEP_LABEL] += deleted
                    report.batches += 1
                    group = taken
                    continue
            # only("id"): the collector needs the runs' keys, not their JSON.
            _, by_model = Run.objects.filter(id__in=taken).only("id").delete()
            report.removed.update({label: n for label, n in by_model.items() if n})
            report.batches += 1
            return


def _take(group: list, cutoff) -> list:
    """The runs of `group` this transaction now holds and that are still expired."""
    free = runs_try_lock(group)
    if not free:
        return []
    still = Run.objects.filter(_expired(cutoff), id__in=free).values_list("id", flat=True)
    return sorted(still)


def _dependent_models() -> list[type[models.Model]]:
    """Models deleted with a run (on_delete CASCADE), steps included."""
    return [
        rel.related_model
        for rel in get_candidate_relations_to_delete(Run._meta)
        if rel.on_delete is models.CASCADE and rel.related_model is not Run
    ]


def _dependents(run_ids: list) -> Counter:
    """Rows that deleting these runs would cascade to, steps aside (counted already)."""
    counts = Counter()
    for rel in get_candidate_relations_to_delete(Run._meta):
        if rel.on_delete is not models.CASCADE or rel.related_model in (Run, Event):
            continue
        n = rel.related_model._base_manager.filter(**{f"{rel.field.name}__in": run_ids}).count()
        if n:
            counts[rel.related_model._meta.label] += n
    return counts
