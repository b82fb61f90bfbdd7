"""`manage.py up`: migrate, create the demo users, then run web + worker + beat in the foreground.

Demo users are created only when absent and never changed (a password set since is kept), and
with DEBUG=0 only when `--demo` asks for them. Each child runs in its own process group so a stop
reaches its own children too (gunicorn's and Celery's pool processes). A worker or beat that
exits is started again (after 1 s, doubling up to 30 s while it keeps exiting); the web server
exiting stops everything. SIGINT or SIGTERM stops every child: politely first, then by force.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from runs.engine.caps import WALL
from runs.models import CapPolicy, Run
from runs.roles import ROLES
from runs.services.caps import cap_policy_set
from runs.services.runs import run_create
from runs.services.users import user_set_role

RESTARTED = ("worker", "beat")  # children started again when they exit
RESTART_DELAY_MAX = 30.0
STEADY_SECONDS = 60  # a child that ran this long before exiting is restarted at once again

# Demo logins: a password per role, printed at start. `--no-demo` creates none of them.
DEMO_USERS = {role: f"{role}-demo" for role in ROLES}
ROLE_BLURBS = {
    "support": "reads runs",
    "engineer": "also starts, cancels and re-executes runs",
    "admin": "also edits caps, prices and API keys",
}
STOP_GRACE_SECONDS = 10
# The demo agents' own caps, set on first start as an admin would (a per-agent override, shown on
# the Agents page and used by its form): demo-slow reaches its wall cap in 30 s, not 5 minutes.
DEMO_CAPS = {"demo-slow": {WALL.name: 30}}
# One run of each demo agent on first start, so every page has something to show.
DEMO_RUNS = (
    ("demo-support", "cust-1001", {"question": "Where is my order A-1001?"}, None),
    ("demo-support", "cust-1002", {"question": "Has order A-1003 arrived?"}, None),
    ("demo-loop", "cust-1002", {"question": "Is SKU-42 back in stock?"}, None),
    ("demo-spender", "cust-1003", {"question": "Explain our refund policy in depth."}, None),
    ("demo-slow", "cust-1004", {"question": "Is the nightly batch done?"}, None),
    ("demo-hang", "cust-1005", {"question": "What was February's revenue?"}, None),
    ("demo-broken", "cust-1001", {"question": "Please refund order A-1001."}, None),
    ("demo-repeat", "cust-1003", {"question": "Has order A-1002 shipped yet?"}, None),
)


class Command(BaseCommand):
    help = "Migrate, create demo users, and run the web server, a Celery worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default=os.environ.get("AGENTOPS_HOST", "127.0.0.1"))
        parser.add_argument("--no-demo", action="store_true", help="create no demo users or runs")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="create the demo users and runs even with DEBUG=0 (they are made when DEBUG=1)",
        )
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")

    def handle(self, *args, port, host, no_demo, demo, web_workers, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is not a TCP port")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database is migrated.")
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        demo_logins = {}
        if wants_demo(no_demo=no_demo, demo=demo, debug=settings.DEBUG):
            demo_logins = demo_users_create()
            if not Run.objects.exists():
                for scope, values in DEMO_CAPS.items():
                    if not CapPolicy.objects.filter(scope=scope).exists():
                        cap_policy_set(scope=scope, values=values, actor="demo setup")
                for agent, user_ref, question, caps in DEMO_RUNS:
                    run_create(agent=agent, input=question, user_ref=user_ref, caps=caps,
                               tags=["demo"])  # fmt: skip
                self.stdout.write(f"Queued {len(DEMO_RUNS)} demo runs.")

        children = self._start_children(host, port, web_workers)
        stopping = {"signal": None}

        def request_stop(signum, frame):
            stopping["signal"] = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        self._print_banner(host, port, demo_logins)
        exit_code = 0
        commands = self._commands(host, port, web_workers)
        restarts = {
            name: {"delay": 1.0, "at": None, "started": time.monotonic()} for name in children
        }
        try:
            while stopping["signal"] is None:
                if children["web"].poll() is not None:
                    self.stderr.write("web stopped unexpectedly; stopping all.")
                    exit_code = 1
                    break
                for name in RESTARTED:
                    self._supervise(name, children, commands, restarts[name])
                time.sleep(0.3)
        finally:
            self._stop_children(children)
        self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)

    def _supervise(self, name: str, children: dict, commands: dict, state: dict) -> None:
        """Start `name` again once its delay has passed since it exited."""
        proc, now = children[name], time.monotonic()
        if proc.poll() is None:
            return
        if state["at"] is None:
            if now - state["started"] >= STEADY_SECONDS:
                state["delay"] = 1.0
            state["at"] = now + state["delay"]
            self.stderr.write(
                f"{name} exited with code {proc.returncode}; starting it again in "
                f"{state['delay']:g} s."
            )
            self.stderr.flush()
            return
        if now < state["at"]:
            return
        _signal_group(proc, signal.SIGKILL)  # what it leaves behind (a prefork pool's children)
        try:
            children[name] = subprocess.Popen(commands[name], start_new_session=True)
        except OSError as exc:
            self.stderr.write(f"could not start {name} again: {exc}")
        state.update(at=None, started=now, delay=min(state["delay"] * 2, RESTART_DELAY_MAX))

    def _start_children(self, host: str, port: int, web_workers: int) -> dict:
        children = {}
        try:
            for name, command in self._commands(host, port, web_workers).items():
                children[name] = subprocess.Popen(command, start_new_session=True)
        except OSError as exc:
            self._stop_children(children)
            raise CommandError(f"could not start {name}: {exc}") from exc
        return children

    def _commands(self, host: str, port: int, web_workers: int) -> dict:
        python = sys.executable
        return {
            "web": [
                python,
                "-m",
                "gunicorn",
                "agentops.wsgi:application",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(web_workers),
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "--no-control-socket",
                "--graceful-timeout",
                str(STOP_GRACE_SECONDS - 2),
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "agentops",
                "worker",
                "--pool",
                settings.AGENTOPS_WORKER_POOL,
                "--concurrency",
                str(settings.AGENTOPS_WORKER_CONCURRENCY),
                "--queues",
                settings.AGENTOPS_QUEUE,
                "--loglevel",
                "INFO",
                "--hostname",
                f"agentops-{os.getpid()}@%h",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "agentops",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }

    def _stop_children(self, children: dict) -> None:
        for proc in children.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left (a worker still finishing a run, a stuck pool process) is killed; a run
        # it held is detected as lost on redelivery, never silently executed twice.
        for proc in children.values():
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _print_banner(self, host: str, port: int, demo_logins: dict) -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        lines = ["", f"agentops is up: http://{shown}:{port}/"]
        if demo_logins:
            lines.append("Log in as:")
            for role, password in demo_logins.items():
                lines.append(f"  {role:<9} password {password:<14} ({ROLE_BLURBS[role]})")
        lines.append("Stop with Ctrl-C.")
        self.stdout.write("\n".join(lines) + "\n")
        self.stdout.flush()


def wants_demo(*, no_demo: bool, demo: bool, debug: bool) -> bool:
    """Demo users and runs: asked for with --demo, else on a development setup (DEBUG=1) unless
    --no-demo. A production setup (DEBUG=0) never gets well-known logins by accident."""
    if no_demo:
        return False
    return demo or debug


def demo_users_create() -> dict[str, str]:
    """Create each demo user that does not exist; never change one that does (its password may
    have been set since). Returns {username: password} of the demo logins that work: those whose
    password is still the demo one."""
    User = get_user_model()
    logins = {}
    for role, password in DEMO_USERS.items():
        user = User.objects.filter(username=role).first()
        if user is None:
            user_set_role(username=role, role=role, password=password)
            logins[role] = password
        elif user.check_password(password):
            logins[role] = password
    return logins


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    if proc.poll() is not None and signum != signal.SIGKILL:
        return
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
