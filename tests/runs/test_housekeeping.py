"""Beat reaps lost runs and re-dispatches queued ones in its own process, so a run whose only
worker died ends `lost` without any worker coming back; old idempotency keys are pruned."""

import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.engine.caps import Caps
from runs.models import IdempotencyKey, Run
from runs.services.housekeeping import housekeeping_once
from tests.conftest import ROOT, subprocess_env


def _run(**fields) -> Run:
    return Run.objects.create(agent="demo-support", input={}, caps=Caps().to_dict(), **fields)


@pytest.mark.integration
def test_beat_alone_reaps_a_dead_workers_run_and_sends_a_lost_message(transactional_db, tmp_path):
    long_ago = timezone.now() - timedelta(minutes=10)
    dead = _run(status="running", started_at=long_ago, heartbeat_at=long_ago, attempt=1)
    unsent = _run(status="queued", created_at=long_ago)
    log_path = tmp_path / "beat.log"
    queue = f"housekeeping-{uuid.uuid4().hex[:8]}"
    with open(log_path, "wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "agentops", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "schedule")],
            # Its messages go to a queue no worker of this session reads, so the re-sent run
            # stays queued where the test can see it.
            cwd=ROOT, env=subprocess_env(AGENTOPS_REAP_EVERY_SECONDS="1", AGENTOPS_QUEUE=queue),
            stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert beat.poll() is None, log_path.read_text()
                dead.refresh_from_db()
                unsent.refresh_from_db()
                if dead.status == "lost" and unsent.dispatches:
                    break
                time.sleep(0.3)
        finally:
            beat.terminate()
            beat.wait(timeout=20)
    assert dead.status == "lost" and dead.error["code"] == "worker_lost", log_path.read_text()
    assert unsent.status == "queued" and unsent.dispatches == 1


@pytest.mark.django_db(transaction=True)
def test_a_pass_prunes_old_idempotency_keys_when_asked(monkeypatch):
    monkeypatch.setattr("runs.services.runs._send", lambda run_id: None)
    IdempotencyKey.objects.create(owner="a", key="old", fingerprint="f")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert housekeeping_once()["pruned"] == 0
    assert housekeeping_once(prune=True)["pruned"] == 1
    assert not IdempotencyKey.objects.exists()
