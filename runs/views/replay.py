"""Replay pages: re-execute a run (POST), step through a finished run (playback), and compare
two runs side by side."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..engine.caps import REPLAY_CAPS
from ..errors import AppError
from ..roles import ADMIN, ENGINEER, SUPPORT, has_role, role_required
from ..selectors import replay as playback
from ..services.replay import run_replay
from .run_page import get_run
from .submission import start_once


@require_POST
@role_required(ENGINEER)
def run_reexecute(request, run_id):
    """Queue a re-execution from the run page's form and open the new run."""
    original = get_run(run_id)
    caps = {
        cap.name: request.POST[cap.name].strip()
        for cap in REPLAY_CAPS
        if request.POST.get(cap.name, "").strip()
    }

    def create():
        return run_replay(
            original=original,
            mode=request.POST.get("mode", ""),
            caps=caps or None,
            model=request.POST.get("model", "").strip(),
            on_divergence=request.POST.get("on_divergence", "stop"),
            may_raise_caps=has_role(request.user, ADMIN),
            created_by=request.user,
        )

    try:
        run = start_once(request, operation=f"page_replay:{original.id}", create=create)
    except AppError as exc:
        messages.error(request, f"Not re-executed: {exc.message}")
        return redirect("runs:run", run_id=original.id)
    return redirect("runs:run", run_id=run.id)


@require_GET
@role_required(SUPPORT)
def run_playback(request, run_id):
    """One step of the run at a time: what the agent knew there and what it had spent."""
    run = get_run(run_id)
    seq = request.GET.get("seq")
    try:
        seq = int(seq) if seq not in (None, "") else None
    except ValueError:
        raise Http404("no such step") from None
    frame = playback.playback_frame(run=run, seq=seq)
    if frame is None and seq is not None:
        raise Http404("no such step")
    return render(request, "runs/playback.html", {"run": run, "frame": frame})


@require_GET
@role_required(SUPPORT)
def runs_compare(request, run_a, run_b):
    left, right = get_run(run_a), get_run(run_b)
    comparison, truncated = playback.compare_load(left=left, right=right)
    context = {
        "left": left,
        "right": right,
        "comparison": comparison,
        "truncated": truncated,
        "max_steps": playback.COMPARE_MAX_STEPS,
    }
    return render(request, "runs/compare.html", context)
