"""`manage.py up` starts web + worker + beat, answers health, and leaves nothing behind."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except OSError:
        return None, None


@pytest.mark.integration
def test_up_serves_health_and_stops_every_child_on_sigterm(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(AGENTOPS_DATA_DIR=str(tmp_path), AGENTOPS_QUEUE="agentops-up-test")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        status = body = None
        while time.monotonic() < deadline and status != 200:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            status, body = _get_json(f"http://127.0.0.1:{port}/api/v1/health")
            time.sleep(0.3)
        assert status == 200, (tmp_path / "up.log").read_text()
        assert body["database"]["detail"] == "sqlite"
        assert body["broker"]["detail"] == "filesystem"

        # The demo runs were queued and the worker executes them.
        db = sqlite3.connect(tmp_path / "agentops.sqlite3")
        finished = {}
        while time.monotonic() < deadline + 30 and len(finished) < 6:
            finished = dict(
                db.execute(
                    "SELECT agent, status FROM runs_run WHERE agent IN "
                    "('demo-support', 'demo-loop', 'demo-spender', 'demo-hang', 'demo-broken', "
                    "'demo-repeat') "
                    "AND status NOT IN ('queued', 'running')"
                ).fetchall()
            )
            time.sleep(0.3)
        # demo-slow's own override makes its point in 30 s, for the seeded run and the form's.
        (values,) = db.execute("SELECT \"values\" FROM runs_cappolicy WHERE scope = 'demo-slow'")
        (caps,) = db.execute("SELECT caps FROM runs_run WHERE agent = 'demo-slow'")
        assert json.loads(values[0]) == {"max_wall_seconds": 30}
        assert json.loads(caps[0])["max_wall_seconds"] == 30
        db.close()
        assert finished == {
            "demo-support": "succeeded",
            "demo-loop": "budget_exceeded",
            "demo-spender": "budget_exceeded",
            "demo-hang": "succeeded",
            "demo-broken": "failed",
            "demo-repeat": "budget_exceeded",
        }

        output = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{port}/" in output
        assert "support" in output and "support-demo" in output
        assert "No hostname was supplied" not in output and "Traceback" not in output

        # Web, worker and beat, each with its own children.
        descendants = psutil.Process(proc.pid).children(recursive=True)
        commands = " ".join(" ".join(p.cmdline()) for p in descendants)
        assert "gunicorn" in commands and " worker" in commands and " beat" in commands

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


@pytest.mark.django_db
def test_demo_users_are_created_only_when_absent_and_never_changed():
    from django.contrib.auth import authenticate as login
    from django.test import RequestFactory

    def authenticate(**credentials):
        return login(RequestFactory().post("/accounts/login/"), **credentials)

    from runs.management.commands.up import demo_users_create
    from runs.services.users import user_set_role

    user_set_role(username="admin", role="admin", password="a-strong-pass-phrase")
    logins = demo_users_create()
    assert logins == {"support": "support-demo", "engineer": "engineer-demo"}
    assert authenticate(username="admin", password="admin-demo") is None
    assert authenticate(username="admin", password="a-strong-pass-phrase") is not None
    user_set_role(username="support", role="support", password="changed-since-then")
    assert demo_users_create() == {"engineer": "engineer-demo"}  # an `up` again changes nothing
    assert authenticate(username="support", password="changed-since-then") is not None


@pytest.mark.parametrize(
    "no_demo, demo, debug, wanted",
    [
        (False, False, True, True),
        (True, False, True, False),
        (False, False, False, False),  # production: no well-known logins unless asked
        (False, True, False, True),
    ],
)
def test_demo_users_with_debug_off_only_when_asked(no_demo, demo, debug, wanted):
    from runs.management.commands.up import wants_demo

    assert wants_demo(no_demo=no_demo, demo=demo, debug=debug) is wanted


@pytest.mark.integration
def test_up_starts_a_worker_again_when_it_exits(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(AGENTOPS_DATA_DIR=str(tmp_path), AGENTOPS_QUEUE="agentops-up-restart")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port), "--no-demo"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def workers():
        return [
            p for p in psutil.Process(proc.pid).children() if " worker" in " ".join(p.cmdline())
        ]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not workers():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.3)
        (first,) = workers()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        again = []
        while time.monotonic() < deadline + 30 and not again:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            again = [p for p in workers() if p.pid != first.pid]
            time.sleep(0.3)
        assert again, (tmp_path / "up.log").read_text()
        assert "worker exited" in (tmp_path / "up.log").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
