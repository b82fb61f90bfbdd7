"""/runs/waiting/ (engineer): the runs awaiting approval, each linked to its page; and
/runs/<id>/approval/ (engineer): answering, from the run's page, the call a run holds for a
person. The same service as POST /api/v1/runs/{id}/approval, so the page and the API refuse the
same answers with the same messages."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..engine.caps import ASKABLE
from ..errors import AppError
from ..roles import ENGINEER, role_required
from ..selectors.approvals import WAITING_SHOWN, waiting_rows
from ..services.approvals import approval_decide
from .run_page import get_run, live_context
from .runs_list import is_partial


@require_GET
@role_required(ENGINEER)
def waiting_runs(request):
    rows, total = waiting_rows()
    context = {"rows": rows, "total": total, "shown": WAITING_SHOWN}
    return render(request, "runs/waiting.html", context)


@require_POST
@role_required(ENGINEER)
def run_approval(request, run_id):
    run = get_run(run_id)
    decision = request.POST.get("decision", "")
    caps = None
    if decision == "extend":
        caps = {
            cap.name: request.POST[cap.name].strip()
            for cap in ASKABLE
            if request.POST.get(cap.name, "").strip()
        }
    problem = None
    try:
        approval_decide(run=run, decision=decision, caps=caps, decided_by=request.user)
    except AppError as exc:
        problem = exc.message
    run.refresh_from_db()
    if is_partial(request):
        # The page's live part again: it polls on until the run has taken the answer.
        context = {**live_context(request, run), "approval_error": problem}
        return render(request, "runs/run.html#live", context)
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, f"Answered: {decision}. The run takes it within a second.")
    return redirect("runs:run", run_id=run.id)
