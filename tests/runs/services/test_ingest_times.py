"""An ingested run's times follow its steps when it does not send them: it starts (and is
created) at its first step and, sent finished, ends at its last step, so its duration never
spans time it did not run."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from django.utils import timezone

from runs.models import Run
from runs.services.ingest import ingest_batch

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def step(run_id, start: datetime, seconds: float, **fields) -> dict:
    end = start + timedelta(seconds=seconds)
    return {"_index": 0, "id": uuid4(), "run_id": run_id, "kind": "tool_call", "name": "t",
            "started_at": start, "ended_at": end, **fields}  # fmt: skip


def run_item(run_id, **fields) -> dict:
    return {"_index": 0, "id": run_id, "agent": "elsewhere", **fields}


def test_a_run_sent_finished_with_its_steps_spans_exactly_its_steps():
    run_id, sent, bare = uuid4(), uuid4(), uuid4()
    steps = [step(run_id, T0 + timedelta(seconds=1), 2), step(run_id, T0, 0.5), step(sent, T0, 1)]
    before = timezone.now()
    ingest_batch(
        runs=[run_item(run_id, status="succeeded"), run_item(bare, status="succeeded"),
              run_item(sent, status="succeeded", started_at=T0, finished_at=T0 + timedelta(1))],
        events=steps,
    )  # fmt: skip
    run = Run.objects.get(id=run_id)
    assert (run.created_at, run.started_at, run.finished_at) == (T0, T0, T0 + timedelta(seconds=3))
    assert run.wall_ms == 3000
    # Times sent are kept; a run without steps ends when it arrives.
    run = Run.objects.get(id=sent)
    assert (run.started_at, run.finished_at) == (T0, T0 + timedelta(days=1))
    assert before <= Run.objects.get(id=bare).finished_at <= timezone.now()


def test_a_run_finished_in_a_later_batch_ends_at_its_last_stored_step():
    run_id = uuid4()
    ingest_batch(runs=[run_item(run_id)], events=[step(run_id, T0, 1)])
    ingest_batch(runs=[], events=[step(run_id, T0 + timedelta(minutes=1), 4)])
    ingest_batch(runs=[run_item(run_id, status="failed", error={"code": "x"})], events=[])
    run = Run.objects.get(id=run_id)
    assert run.finished_at == T0 + timedelta(minutes=1, seconds=4)
    assert run.wall_ms == 64_000
