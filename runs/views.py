"""Pages. Thin doors: check the role, call a selector or service, render."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from . import selectors, services
from .errors import AppError
from .models import RunStatus
from .roles import ENGINEER, SUPPORT, has_role, role_required

STEPS_PER_PAGE = 200


@role_required(SUPPORT)
def overview(request):
    counts = selectors.runs_status_counts(since_hours=24)
    rows = [(status, counts["by_status"].get(status, 0)) for status in RunStatus.values]
    return render(
        request,
        "runs/overview.html",
        {"rows": rows, "total": counts["total"], "spend_usd": counts["spend_usd"]},
    )


def _get_run(ref: str):
    try:
        return selectors.run_get(ref=ref)
    except AppError as exc:
        raise Http404(exc.message) from None


@role_required(SUPPORT)
def run_detail(request, run_id):
    run = _get_run(run_id)
    events, next_after = selectors.events_page(run=run, after_seq=-1, limit=STEPS_PER_PAGE)
    context = {
        "run": run,
        "events": events,
        "next_after": next_after,
        "usage": selectors.run_usage_against_caps(run),
        "can_act": has_role(request.user, ENGINEER),
    }
    if request.htmx and request.GET.get("part") == "live":
        response = render(request, "runs/run.html#live", context)
        if run.is_finished:
            # Swap in the final state once more, then tell htmx to stop asking.
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "runs/run.html", context)


@require_POST
@role_required(ENGINEER)
def run_cancel(request, run_id):
    run = _get_run(run_id)
    try:
        services.run_cancel(run=run)
    except AppError as exc:
        messages.error(request, exc.message)
    return redirect("runs:run", run_id=run.id)
