"""A worker rides out a Redis restart with a run in flight: the run finishes, the worker
reconnects and takes the next run. Redis is a throwaway redis-server of the test's own on a
spare port (never the shared one), and the worker is started as `up` and the README start it."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
from celery import Celery

from runs.engine.caps import Caps
from runs.models import Run
from tests.conftest import ROOT, services_unavailable, subprocess_env
from tests.throwaway import Redis

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        services_unavailable("redis-server is not installed (apt-get install redis-server)")
    server = Redis(tmp_path, persist=False)
    server.start()
    yield server
    server.stop()


def wait_status(run_id, done, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.status in done:
            return run
        time.sleep(0.2)
    return Run.objects.get(id=run_id)


def test_a_worker_rides_out_a_redis_restart_with_a_run_in_flight(
    transactional_db, redis_server, tmp_path
):
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    app = Celery(broker=redis_server.url(), set_as_current=False)
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115
    env = subprocess_env(
        CELERY_BROKER_URL=redis_server.url(), CELERY_RESULT_BACKEND="", CACHE_URL="",
        AGENTOPS_QUEUE=queue,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "agentops", "worker", "--pool", "threads",
         "--concurrency", "4", "--queues", queue, "--loglevel", "INFO",
         "--hostname", f"restart-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def start(steps, seconds):
        run = Run.objects.create(
            agent="test-steps", input={"steps": steps, "seconds": seconds}, status="queued",
            caps=Caps().to_dict(),
        )  # fmt: skip
        # Through an explicit connection: CELERY_BROKER_URL in this process's environment would
        # win over the app's own broker setting.
        with app.connection_for_write(redis_server.url()) as connection:
            app.send_task("runs.execute", args=[str(run.id)], queue=queue, connection=connection)
        return run

    try:
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, log_path.read_text()
            time.sleep(0.1)
        first = start(steps=2, seconds=0.1)
        assert wait_status(first.id, {"succeeded"}).status == "succeeded", log_path.read_text()
        in_flight = start(steps=12, seconds=0.5)
        assert wait_status(in_flight.id, {"running"}).status == "running"
        redis_server.stop()
        time.sleep(2)
        redis_server.start()
        in_flight = wait_status(in_flight.id, {"succeeded", "failed", "lost"})
        assert worker.poll() is None, log_path.read_text()
        assert in_flight.status == "succeeded", log_path.read_text()
        # The worker reconnected and goes on taking runs.
        after = start(steps=1, seconds=0.1)
        after = wait_status(after.id, {"succeeded"})
        assert worker.poll() is None, log_path.read_text()
        assert after.status == "succeeded", log_path.read_text()
        assert "Unrecoverable error" not in log_path.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        log.close()
