"""Long-lived processes take their start-up objects out of the garbage collector's walks
(agentops.heap): a full collection then walks only what was made since."""

import gc
import subprocess
import sys
from pathlib import Path

from runs import tasks

ROOT = Path(__file__).resolve().parent.parent


def test_loading_the_wsgi_application_freezes_what_start_up_made(tmp_path):
    code = (
        "import gc\n"
        "before = gc.get_freeze_count()\n"
        "from agentops.wsgi import application\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_DATA_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "agentops.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    before, frozen, walked = map(int, result.stdout.split())
    assert before == 0
    # Django, the apps and their modules: tens of thousands of objects no collection walks.
    assert frozen > 20_000 and walked < frozen / 4


def test_a_worker_freezes_what_start_up_made_once_ready_and_in_each_pool_child():
    class Sender:  # what worker_ready hands its handlers
        class app:
            sent = []
            conf = type("conf", (), {"task_default_queue": "q"})

            @classmethod
            def send_task(cls, name, queue):
                cls.sent.append(name)

    gc.unfreeze()
    try:
        tasks._on_worker_ready(sender=Sender)
        assert gc.get_freeze_count() > 20_000
        assert Sender.app.sent == ["runs.reap", "runs.dispatch"]
        gc.unfreeze()
        tasks._on_worker_process_init()
        assert gc.get_freeze_count() > 20_000
    finally:
        gc.unfreeze()  # the test process collects as before
