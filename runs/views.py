"""Pages. Thin doors: check the role, call a selector or service, render."""

from django.shortcuts import render

from . import selectors
from .models import RunStatus
from .roles import SUPPORT, role_required


@role_required(SUPPORT)
def overview(request):
    counts = selectors.runs_status_counts(since_hours=24)
    rows = [(status, counts["by_status"].get(status, 0)) for status in RunStatus.values]
    return render(
        request,
        "runs/overview.html",
        {"rows": rows, "total": counts["total"], "spend_usd": counts["spend_usd"]},
    )
