"""Long-lived processes take their start-up objects out of the garbage collector's walks
(agentops.heap): a full collection then walks only what was made since."""

import gc
import subprocess
import sys
from pathlib import Path

from agentops.heap import WarmFreezer
from runs import tasks

ROOT = Path(__file__).resolve().parent.parent


def test_loading_the_wsgi_application_freezes_what_start_up_made(tmp_path):
    code = (
        "import gc\n"
        "before = gc.get_freeze_count()\n"
        "from agentops.wsgi import application\n"
        "loaded = gc.get_freeze_count()\n"
        "from django.core.signals import request_finished\n"
        "warm = [[n] for n in range(20_000)]  # what the first pages load\n"
        "for _ in range(100):\n"
        "    request_finished.send(sender=None)\n"
        "print(before, loaded, len(gc.get_objects()), gc.get_freeze_count() - loaded)\n"
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
    before, frozen, walked, warm = map(int, result.stdout.split())
    assert before == 0
    # Django, the apps and their modules: tens of thousands of objects no collection walks.
    assert frozen > 20_000 and walked < frozen / 4
    # And what was loaded by the time the 100th request finished.
    assert warm > 20_000


def test_a_web_process_freezes_again_after_its_100th_1000th_and_10000th_request():
    freezer = WarmFreezer()
    gc.unfreeze()
    try:
        freezes = []
        for n in range(1, 10_001):
            before = gc.get_freeze_count()
            kept = [object()]  # alive and tracked: a freeze takes it
            freezer.one_done()
            if gc.get_freeze_count() > before:
                freezes.append(n)
            gc.unfreeze()
            del kept
        assert freezes == [100, 1_000, 10_000]
    finally:
        gc.unfreeze()


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
