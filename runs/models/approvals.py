"""Calls of a run held for a person: a cap it would pass, or a tool that requires approval."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApprovalKind(models.TextChoices):
    CAP = "cap"
    TOOL = "tool"


class Approval(models.Model):
    """A call of a run held for a person (engine.approvals): a cap it would pass (`subject` the
    cap's name; `on_cap: ask`) or a tool that requires approval (`subject` the tool's name).
    `decision` is empty while it waits; then extend (with `caps`), approve, deny, stop, timeout,
    cancelled (the run was cancelled) or lost (its worker was)."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="approvals")
    kind = models.CharField(max_length=10, choices=ApprovalKind.choices)
    subject = models.CharField(max_length=200)
    request = models.JSONField(default=dict, blank=True)
    asked_at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=20, blank=True, default="")
    caps = models.JSONField(default=dict, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set by the run once it has taken the decision (or ended the wait itself).
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "asked_at"]
        constraints = [
            # A run holds at most one call at a time.
            models.UniqueConstraint(
                fields=["run"], condition=Q(closed_at__isnull=True), name="approval_one_open"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ApprovalKind.values), name="approval_kind_valid"
            ),
        ]

    def __str__(self):
        return f"{self.run_id}: {self.kind} {self.subject} {self.decision or 'waiting'}"
