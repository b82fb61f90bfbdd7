"""/api/v1/webhooks: outgoing webhooks, for admins only (the `admin` scope): list, add and delete
endpoints, and read an endpoint's delivery log. A secret is never answered back, except one
generated at creation (the secret was left out), that once."""

from datetime import datetime
from typing import Any
from uuid import UUID

from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field

from runs.engine.webhooks import EVENTS
from runs.selectors import webhooks as webhook_reads
from runs.selectors.webhooks import MAX_DELIVERIES_PAGE
from runs.services import webhooks as webhook_writes

from .auth import api_auth, require_scope
from .schemas import ErrorOut

router = Router(auth=api_auth, tags=["webhooks"])
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Any = Field(description="http:// or https:// URL the events are POSTed to")
    secret: Any = Field(
        None, description="16 to 200 characters signing each delivery; left out: one is generated"
    )
    events: Any = Field(description=f"a non-empty list of: {', '.join(EVENTS)}")


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_at: datetime | None = Field(description="when it was disabled after failing")
    disabled_reason: str
    consecutive_failures: int = Field(description="failed attempts since the last success")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str | None = Field(
        description="the generated secret, shown this once; null when you sent your own"
    )


class WebhookPage(Schema):
    items: list[WebhookOut]


class DeliveryOut(Schema):
    id: UUID
    event: str
    key: str = Field(description="the event told: one delivery per endpoint and key")
    status: str = Field(description="pending, delivered or failed (given up on)")
    attempts: int
    response_code: int | None = Field(description="the last attempt's HTTP status")
    error: str
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when pending: the next attempt")
    delivered_at: datetime | None


class DeliveryPage(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="pass as `before` for the next page")


class DeliveriesQuery(Schema):
    status: str = Field("", description="pending, delivered or failed")
    before: UUID | None = None
    limit: int = Field(50, ge=1, le=MAX_DELIVERIES_PAGE)


def _out(webhook, **extra) -> dict:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "enabled": webhook.disabled_at is None,
        "disabled_at": webhook.disabled_at,
        "disabled_reason": webhook.disabled_reason,
        "consecutive_failures": webhook.consecutive_failures,
        "last_success_at": webhook.last_success_at,
        "last_failure_at": webhook.last_failure_at,
        "created_at": webhook.created_at,
        **extra,
    }


@router.get("/webhooks", response={200: WebhookPage, **ERRORS})
def webhooks_read(request):
    """Every endpoint, with whether it is enabled (secrets are never shown)."""
    require_scope(request, "admin")
    return {"items": [_out(w) for w in webhook_reads.webhooks_list()]}


@router.post("/webhooks", response={201: WebhookCreated, **ERRORS})
def webhooks_add(request, body: WebhookIn):
    """Add an endpoint told of `events`. 422 `invalid_webhook` names each bad field."""
    who = require_scope(request, "admin")
    webhook, generated = webhook_writes.webhook_create(
        url=body.url, secret=body.secret, events=body.events, created_by=who.user
    )
    return Status(201, _out(webhook, secret=generated))


@router.delete("/webhooks/{webhook_id}", response={204: None, **ERRORS})
def webhooks_remove(request, webhook_id: int):
    """Delete an endpoint and its delivery log."""
    require_scope(request, "admin")
    webhook_writes.webhook_delete(webhook_id=webhook_id)
    return Status(204, None)


@router.get("/webhooks/{webhook_id}/deliveries", response={200: DeliveryPage, **ERRORS})
def webhook_deliveries(request, webhook_id: int, query: Query[DeliveriesQuery]):
    """An endpoint's deliveries, newest first: status, attempts, last response code."""
    require_scope(request, "admin")
    webhook_reads.webhook_get(webhook_id=webhook_id)
    items, cursor = webhook_reads.deliveries_page(
        webhook_id=webhook_id, status=query.status, before=query.before, limit=query.limit
    )
    return {"items": items, "next_cursor": cursor}
