"""Take the README's screenshots of the pages with headless Chromium.

    .venv/bin/python bench/screenshots.py [--out static/screenshots]

Builds a throwaway installation in a temporary folder (SQLite, file broker), executes the demo
agents in this process so the runs are real, starts the web server, logs in and photographs the
runs list, a run page with one step of its timeline opened (an engineer's view), and a stopped
run as support first sees it: the receipt and the transcript. Needs Chromium
(AGENTOPS_CHROMIUM, default /usr/bin/chromium) and the dev dependencies (playwright).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AGENTOPS_CHROMIUM", "/usr/bin/chromium")
USER, PASSWORD = "screenshots", "screenshots-demo"
SUPPORT_USER = "screenshots-support"
STOPPED = (
    "demo-loop",
    "cust-1008",
    "Is SKU-7 back in stock at any warehouse?",
    {"max_tool_calls": 3},
)

# (agent, user_ref, question, caps): each demo ending once or more, so the list has variety.
RUNS = [
    ("demo-support", "cust-1001", "Where is my order A-1001?", None),
    ("demo-broken", "cust-1001", "Please refund order A-1001.", None),
    ("demo-support", "cust-1002", "Has order A-1003 arrived?", None),
    ("demo-loop", "cust-1002", "Is SKU-42 back in stock?", None),
    ("demo-spender", "cust-1003", "Explain our refund policy in depth.", None),
    ("demo-slow", "cust-1004", "Is the nightly batch done?", {"max_wall_seconds": 2}),
    ("demo-hang", "cust-1005", "What was February's revenue?", None),
    ("demo-support", "cust-1006", "Where is order A-1002?", None),
    ("demo-support", "cust-1007", "My order A-1001 is late, can I get a refund?", None),
    STOPPED,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_data() -> tuple[str, str]:
    """Migrate, create the logins and execute RUNS; returns the ids of the runs to photograph
    (a successful one, and the stopped one support reads)."""
    import django

    django.setup()
    from django.core.management import call_command

    from runs.services.runs import run_create
    from runs.services.users import user_set_role
    from runs.worker import run_execute

    call_command("migrate", interactive=False, verbosity=0)
    user_set_role(username=USER, role="engineer", password=PASSWORD)
    user_set_role(username=SUPPORT_USER, role="support", password=PASSWORD)
    shown = stopped = None
    for agent, user_ref, question, caps in RUNS:
        run = run_create(
            agent=agent,
            input={"question": question},
            caps=caps,
            user_ref=user_ref,
            session_ref=f"chat-{user_ref[-4:]}",
            tags=["demo"],
        )
        run_execute(run_id=run.id, worker="screenshots@localhost")
        if agent == "demo-support" and shown is None:
            shown = str(run.id)
        if (agent, user_ref) == STOPPED[:2]:
            stopped = str(run.id)
    return shown, stopped


def serve(port: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the web server did not start")


def _login(browser, base: str, username: str):
    page = browser.new_page(viewport={"width": 1280, "height": 820}, device_scale_factor=1)
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return page


def photograph(base: str, run_ids: tuple[str, str], out: Path, everything: bool) -> None:
    from playwright.sync_api import sync_playwright

    run_id, stopped_id = run_ids
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        # Support's first screen: the receipt, then the transcript with the refused call.
        page = _login(browser, base, SUPPORT_USER)
        page.goto(f"{base}/runs/{stopped_id}/")
        page.locator("#transcript .t-tool[data-mark=refused]").wait_for()
        page.screenshot(path=str(out / "run-transcript.png"), full_page=True)
        page.close()

        page = _login(browser, base, USER)

        page.goto(f"{base}/runs/")
        page.get_by_test_id("runs-table").wait_for()
        page.get_by_text("Filters", exact=True).click()
        page.get_by_label("Search runs").blur()
        page.screenshot(path=str(out / "runs-list.png"), full_page=True)

        page.goto(f"{base}/runs/{run_id}/")
        page.locator("li.step.kind-model_call summary").first.click()
        page.get_by_test_id("step-body").first.wait_for()
        page.screenshot(path=str(out / "run-page.png"), full_page=True)
        if everything:
            for name, path in (("overview", "/"), ("agents", "/agents/")):
                page.goto(f"{base}{path}")
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(ROOT / "static" / "screenshots"), help="folder for the PNGs"
    )
    parser.add_argument("--all", action="store_true", help="also the overview and agents pages")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    data_dir = tempfile.mkdtemp(prefix="agentops-screenshots-")
    env = dict(os.environ, AGENTOPS_DATA_DIR=data_dir, DATABASE_URL="sqlite:///",
               CELERY_BROKER_URL="filesystem://", DJANGO_SETTINGS_MODULE="agentops.settings",
               DEBUG="1")  # fmt: skip
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    run_ids = build_data()
    port = _free_port()
    server = serve(port, env)
    try:
        photograph(f"http://127.0.0.1:{port}", run_ids, out, args.all)
    finally:
        server.terminate()
        server.wait(timeout=10)
    names = ("runs-list.png", "run-transcript.png", "run-page.png")
    print("wrote " + ", ".join(str(out / name) for name in names))


if __name__ == "__main__":
    main()
