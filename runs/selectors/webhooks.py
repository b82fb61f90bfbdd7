"""Reads of outgoing webhooks: the endpoints (never their secrets), and each one's delivery log,
newest first."""

from __future__ import annotations

from ..errors import InvalidInput, NotFound
from ..models import DeliveryStatus, Webhook, WebhookDelivery

MAX_DELIVERIES_PAGE = 200


def webhooks_list() -> list[Webhook]:
    return list(Webhook.objects.select_related("created_by").order_by("id"))


def webhook_get(*, webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(id=webhook_id).first()
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return webhook


def deliveries_page(
    *, webhook_id: int, status: str = "", before=None, limit: int = 50
) -> tuple[list[WebhookDelivery], str | None]:
    """One page of an endpoint's deliveries, newest first (ids are time-ordered): those older
    than delivery `before` when given. Returns them and the cursor of the next page, or None."""
    if status and status not in DeliveryStatus.values:
        raise InvalidInput(f"status must be one of {', '.join(DeliveryStatus.values)}")
    limit = max(1, min(limit, MAX_DELIVERIES_PAGE))
    rows = WebhookDelivery.objects.filter(webhook_id=webhook_id).defer("payload")
    if status:
        rows = rows.filter(status=status)
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows.order_by("-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, str(page[-1].id) if more else None
