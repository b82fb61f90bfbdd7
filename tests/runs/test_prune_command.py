"""`manage.py prune`, the beat task behind it and the AGENTOPS_RETENTION_DAYS setting."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from runs.management.commands.prune import parse_age
from runs.models import Event, Run
from runs.tasks import prune_old_runs
from tests.runs.run_rows import make_run, make_steps

ROOT = Path(__file__).resolve().parent.parent.parent


def run_aged(days: float, steps: int = 2, **fields) -> Run:
    created = timezone.now() - timedelta(days=days)
    values = {"created_at": created, "started_at": created, "finished_at": created}
    run = make_run(**{**values, **fields})
    make_steps(run, steps)
    return run


@pytest.mark.parametrize(
    "text, age",
    [("90d", timedelta(days=90)), ("90", timedelta(days=90)), (" 7d ", timedelta(days=7)),
     ("36h", timedelta(hours=36))],
)  # fmt: skip
def test_ages_in_days_or_hours(text, age):
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["0d", "0", "-5d", "90m", "1.5d", "d", "", "ninety days"])
def test_other_ages_are_refused(text):
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)


def test_prune_removes_the_old_finished_runs_and_says_what_went(db, capsys):
    old, young = run_aged(100, steps=3), run_aged(10)
    running = run_aged(400, status="running", finished_at=None)

    call_command("prune", "--older-than", "90d")

    out = capsys.readouterr().out
    assert out.startswith("Removed 1 runs, 3 steps finished before ")
    assert "(1 batches)" in out
    assert set(Run.objects.values_list("id", flat=True)) == {young.id, running.id}
    assert not Event.objects.filter(run_id=old.id).exists()


def test_dry_run_says_what_would_go_and_removes_nothing(db, capsys):
    run_aged(100, steps=3)
    run_aged(200, steps=4)
    call_command("prune", "--older-than", "90d", "--dry-run")
    assert capsys.readouterr().out.startswith("Would remove 2 runs, 7 steps finished before ")
    assert (Run.objects.count(), Event.objects.count()) == (2, 7)


def test_without_older_than_the_setting_is_the_limit(db, capsys, settings):
    settings.AGENTOPS_RETENTION_DAYS = 30
    old, young = run_aged(31), run_aged(29)
    call_command("prune")
    assert "Removed 1 runs" in capsys.readouterr().out
    assert list(Run.objects.values_list("id", flat=True)) == [young.id]
    assert not Run.objects.filter(id=old.id).exists()


def test_without_older_than_or_the_setting_nothing_is_pruned(db, settings):
    settings.AGENTOPS_RETENTION_DAYS = 0
    run_aged(1000)
    with pytest.raises(CommandError, match="retention is off"):
        call_command("prune")
    assert Run.objects.count() == 1


@pytest.mark.parametrize("args", [["--older-than", "0d"], ["--older-than", "soon"],
                                  ["--older-than", "9d", "--batch-steps", "0"]])  # fmt: skip
def test_bad_options_are_refused_before_anything_is_deleted(db, args):
    run_aged(1000)
    with pytest.raises(CommandError):
        call_command("prune", *args)
    assert Run.objects.count() == 1


def test_the_beat_task_prunes_by_the_setting_and_does_nothing_when_it_is_off(db, settings):
    old = run_aged(100, steps=2)
    settings.AGENTOPS_RETENTION_DAYS = 0
    assert prune_old_runs() is None
    assert Run.objects.filter(id=old.id).exists()

    settings.AGENTOPS_RETENTION_DAYS = 90
    assert prune_old_runs() == {"runs.Run": 1, "runs.Event": 2}
    assert not Run.objects.filter(id=old.id).exists()


def _beat_schedule(tmp_path, **env) -> dict:
    script = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'agentops.settings'; "
        "from django.conf import settings; "
        "print(json.dumps({k: [v['task'], str(v['schedule']), v['options']] "
        "for k, v in settings.CELERY_BEAT_SCHEDULE.items()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_beat_prunes_daily_only_when_retention_is_set(tmp_path):
    assert "prune-old-runs" not in _beat_schedule(tmp_path)
    assert "prune-old-runs" not in _beat_schedule(tmp_path, AGENTOPS_RETENTION_DAYS="0")
    task, schedule, options = _beat_schedule(tmp_path, AGENTOPS_RETENTION_DAYS="90")[
        "prune-old-runs"
    ]
    assert task == "runs.prune"
    assert "30 3 * * *" in schedule
    assert options["expires"] > 0


@pytest.mark.parametrize("value", ["-1", "ninety"])
def test_a_bad_retention_setting_stops_startup(tmp_path, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AGENTOPS_DATA_DIR": str(tmp_path),
             "AGENTOPS_RETENTION_DAYS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "AGENTOPS_RETENTION_DAYS" in result.stderr
