"""Outgoing webhooks: the endpoints admins configure and each event's delivery to them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..engine.ids import uuid7


class Webhook(models.Model):
    """An endpoint told of `events` (runs.engine.webhooks.EVENTS). The secret signs each delivery
    and is never shown after creation. Disabled after too many failed attempts in a row."""

    url = models.CharField(max_length=2000)
    secret = models.CharField(max_length=200)
    events = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up on


class WebhookDelivery(models.Model):
    """One event for one endpoint: `key` names the event (one row per endpoint and event, so an
    event is never delivered twice), `payload` is the body sent. Attempted until delivered or
    given up on; `next_attempt_at` is when it is due (or, while an attempt is under way, when
    that attempt counts as lost)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    key = models.CharField(max_length=300)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created"),
            # The sweep's query: pending deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_pending_due",
                condition=Q(status="pending"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "key"], name="delivery_webhook_key_unique"),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="delivery_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.event} to {self.webhook_id}: {self.status}"
