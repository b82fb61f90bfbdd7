"""The spend windows on /caps/ (admin): add one, delete one, and backtest a proposed one against
recent runs before adding it. The caps page itself shows them (views.caps)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..engine.caps import SPEND_WINDOW
from ..errors import AppError
from ..roles import ADMIN, role_required
from ..selectors.caps import DEFAULT_BACKTEST_RUNS, caps_backtest
from ..services.windows import window_create, window_delete
from .run_page import int_param, step_url


def _windows_url() -> str:
    return reverse("runs:caps") + "#windows"


def _proposal(request) -> dict:
    return {
        "scope": request.POST.get("scope", "").strip(),
        "period": request.POST.get("period", ""),
        "limit_usd": request.POST.get("limit_usd", "").strip(),
    }


@require_POST
@role_required(ADMIN)
def window_add(request):
    proposal = _proposal(request)
    try:
        window = window_create(**proposal, created_by=request.user)
    except AppError as exc:
        fields = (exc.details or {}).get("fields") if isinstance(exc.details, dict) else None
        text = "; ".join(f"{k}: {v}" for k, v in fields.items()) if fields else exc.message
        messages.error(request, f"Spend window not added: {text}")
    else:
        messages.success(
            request,
            f"Added a window of {window.scope}: ${window.limit_usd} per {window.period}. Runs it "
            "covers are held to it from their next model call.",
        )
    return redirect(_windows_url())


@require_POST
@role_required(ADMIN)
def window_remove(request, window_id: int):
    try:
        window_delete(window_id=window_id, changed_by=request.user)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Deleted the spend window.")
    return redirect(_windows_url())


@require_POST
@role_required(ADMIN)
def window_backtest(request):
    """What the proposed window (beside those in force) would have done to recent runs."""
    proposal = _proposal(request)
    last_n = int_param(request.POST.get("last_n"), DEFAULT_BACKTEST_RUNS)
    context = {"window_proposal": proposal}
    try:
        result = caps_backtest(proposed={}, last_n=last_n, windows=[proposal])
    except AppError as exc:
        fields = (exc.details or {}).get("fields") if isinstance(exc.details, dict) else None
        context["window_errors"] = list(fields.values()) if fields else [exc.message]
        status = 422
    else:
        stopped = [c for c in result.proposed.cut if c.cap == SPEND_WINDOW]
        context["window_result"] = {
            "runs_checked": result.proposed.runs_checked,
            "not_started": sum(1 for c in stopped if c.cut_at_seq is None),
            "stopped": sum(1 for c in stopped if c.cut_at_seq is not None),
            "saved_usd": sum(c.saved_usd for c in stopped),
            "examples": [
                {
                    "check": c,
                    "url": step_url(c.run_id, c.cut_at_seq)
                    if c.cut_at_seq is not None
                    else reverse("runs:run", args=[c.run_id]),
                }
                for c in stopped[:10]
            ],
        }
        status = 200
    template = "runs/caps.html#window_backtest" if request.htmx else "runs/window_backtest.html"
    return render(request, template, context, status=status)
