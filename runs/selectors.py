"""Reads. Views, API operations and tasks call these instead of building queries themselves."""

from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from .models import Run


def runs_status_counts(*, since_hours: int = 24) -> dict:
    """Runs created in the last `since_hours`, counted by status, and their total spend."""
    since = timezone.now() - timedelta(hours=since_hours)
    recent = Run.objects.filter(created_at__gte=since)
    by_status = dict(
        recent.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    spend = recent.aggregate(total=Sum("cost_usd"))["total"] or 0
    return {"by_status": by_status, "total": sum(by_status.values()), "spend_usd": spend}
