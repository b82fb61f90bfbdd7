"""Fixtures every test module may use: users of each role, a real Celery worker process on the
configured broker and database, and a headless Chromium logged in as a given role."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from runs.roles import ROLES
from runs.services.users import user_set_role

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AGENTOPS_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("AGENTOPS_REQUIRE_BROWSER", "") not in ("", "0")
# Set by CI on the real services: a test that needs a server binary fails without it.
REQUIRE_SERVICES = os.environ.get("AGENTOPS_REQUIRE_SERVICES", "") not in ("", "0")


def services_unavailable(reason: str):
    """Skip a test whose server binary this machine lacks, or fail it where the real services
    are required (AGENTOPS_REQUIRE_SERVICES, set by CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"this test needs a real service here but cannot run: {reason}")
    pytest.skip(reason)


PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(config, items):
    """Chaos tests take minutes and start their own PostgreSQL and Redis: they run only when
    selected by marker (`pytest -m chaos`), never as part of the whole suite."""
    if "chaos" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="chaos: run with `pytest -m chaos -s tests/test_chaos.py`")
    for item in items:
        if "chaos" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded_after_flush(request):
    """Transactional tests flush every table, seeds included; put the seeds back."""
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        from django.contrib.auth.models import Group

        from runs.models import CapPolicy, ModelPrice
        from runs.seed import seed_defaults

        request.getfixturevalue("transactional_db")
        seed_defaults(Group=Group, CapPolicy=CapPolicy, ModelPrice=ModelPrice)


@pytest.fixture
def make_user(db):
    """make_user(role) → a user holding that role (or none for role=None), password PASSWORD."""

    def make(role: str | None, username: str | None = None):
        from django.contrib.auth import get_user_model

        username = username or f"{role or 'norole'}-{uuid.uuid4().hex[:6]}"
        if role is None:
            user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        else:
            user = user_set_role(username=username, role=role, password=PASSWORD)
        return user

    return make


@pytest.fixture
def no_enqueue(monkeypatch):
    """Runs created stay queued and nothing reaches a broker: for tests that look at the API or
    the pages, not at execution."""
    monkeypatch.setattr("runs.services.runs._send", lambda run_id: None)


@pytest.fixture(params=ROLES)
def role(request):
    return request.param


def database_url_for_subprocess() -> str:
    """DATABASE_URL pointing a child process at the database this test session uses."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return "sqlite:///" + str(Path(s["NAME"]).resolve())
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for_subprocess(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        AGENTOPS_DATA_DIR=str(settings.DATA_DIR),
        AGENTOPS_QUEUE=settings.AGENTOPS_QUEUE,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """A real `celery worker` child process consuming this session's queue."""

    def __init__(
        self, log_path: Path, pool: str = "threads", concurrency: int = 8, queue: str = ""
    ):
        self.log_path = log_path
        self.queue = queue or settings.AGENTOPS_QUEUE
        self.pool = pool
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60):
        from runs.tasks import ping

        command = [
            sys.executable, "-m", "celery", "-A", "agentops", "worker",
            "--pool", self.pool, "--concurrency", str(self.concurrency),
            "--queues", self.queue, "--loglevel", "INFO",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h", "--without-mingle",
            "--without-gossip",
        ]  # fmt: skip
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=subprocess_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # Ready means it answered a task through the real broker.
        token = uuid.uuid4().hex
        result = ping.apply_async(args=[token], queue=self.queue)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited at start; log: {self.log_path}\n{self.log()}")
            if result.ready():
                assert result.get(timeout=1) == f"pong:{token}"
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not answer within {timeout}s; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = 15, timeout: float = 15):
        import signal

        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker process for the whole session, on the configured broker and the test
    database. Tests that use it need `transactional_db` so their rows are committed and visible."""
    worker = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    with django_db_blocker.unblock():
        worker.start()
    yield worker
    worker.stop()


# --- browser -------------------------------------------------------------------------------


def _browser_unavailable_reason() -> str | None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium driven by Playwright. Skipped without Chromium, unless
    AGENTOPS_REQUIRE_BROWSER is set (CI), where a missing browser fails the run."""
    reason = _browser_unavailable_reason()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(f"browser tests are required here but cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_as(chromium, live_server, make_user):
    """page_as(role) → a Playwright page logged in as a new user holding `role`."""
    contexts = []

    def login(role: str):
        user = make_user(role)
        context = chromium.new_context(base_url=live_server.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        page.user = user
        return page

    yield login
    for context in contexts:
        context.close()
