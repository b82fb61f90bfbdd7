"""Outgoing webhooks: admins add endpoints; events are recorded as deliveries, one per endpoint
and event, in the transaction that makes them true; Celery tasks send them (`webhook_deliver`,
and `deliveries_sweep` on beat for what is due and was not sent), never the request or the run's
own thread.

Exactly once per endpoint and event, as far as the endpoint answers: a delivery row is unique
by (endpoint, event key); an attempt first claims the row (`attempts + 1` and a lease, WHERE it
is pending and due: one claimant wins), and a 2xx marks it delivered, after which no attempt
claims it again. A failed attempt is tried again with backoff until a day after the event
(AGENTOPS_WEBHOOK_GIVE_UP_SECONDS); an endpoint that fails AGENTOPS_WEBHOOK_DISABLE_AFTER
attempts in a row is disabled until an admin enables it again.

The approvals code tells of a waiting run with `notify_run(RUN_AWAITING_APPROVAL, run,
occurrence=<approval id>)`.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from ..engine.caps import usd_text
from ..engine.webhooks import (
    EVENTS,
    WINDOW_EXHAUSTED,
    body_bytes,
    clean_endpoint,
    retry_delay,
    run_text,
    signed_headers,
    window_text,
)
from ..engine.windows import from_micros, period_end
from ..errors import Conflict, InvalidInput, NotFound
from ..models import DeliveryStatus, Run, SpendWindowPeriod, Webhook, WebhookDelivery

log = logging.getLogger(__name__)

DELIVER_TASK = "runs.webhook_deliver"  # runs.tasks.webhook_deliver, sent by name
MAX_WEBHOOKS = 50
SWEEP_BATCH = 500
# A delivery due this long and not yet claimed lost its message (or never had one): the sweep
# sends it again. The task sent after commit normally claims it within a second.
SWEEP_GRACE = timedelta(seconds=30)
READ_AT_MOST = 1024  # of an answer's body: only its status matters


# Endpoints.


def webhook_create(*, url, secret=None, events, created_by=None) -> tuple[Webhook, str | None]:
    """A new endpoint; WebhookInvalid (422) naming each bad field. Returns it with its secret
    when one was generated (shown this once), else None: a secret is never shown back."""
    url, secret, events, generated = clean_endpoint(url=url, secret=secret, events=events)
    with transaction.atomic():
        if Webhook.objects.count() >= MAX_WEBHOOKS:
            raise Conflict(
                f"there are already {MAX_WEBHOOKS} webhooks; delete one first",
                code="too_many_webhooks",
            )
        webhook = Webhook.objects.create(
            url=url, secret=secret, events=events, created_by=created_by
        )
    return webhook, secret if generated else None


def webhook_delete(*, webhook_id: int) -> None:
    """Delete an endpoint and its delivery log; what was pending is not sent."""
    if not Webhook.objects.filter(id=webhook_id).delete()[0]:
        raise NotFound(f"no webhook {webhook_id}")


def webhook_enable(*, webhook_id: int) -> Webhook:
    """Enable a disabled endpoint again: its failure count starts over and what is still pending
    (and less than a day old) is sent."""
    if not Webhook.objects.filter(id=webhook_id).update(
        disabled_at=None, disabled_reason="", consecutive_failures=0
    ):
        raise NotFound(f"no webhook {webhook_id}")
    WebhookDelivery.objects.filter(webhook_id=webhook_id, status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: deliveries_sweep(grace=timedelta(0)))
    return Webhook.objects.get(id=webhook_id)


# Events.


def _subscribers(event: str) -> list[int]:
    rows = Webhook.objects.filter(disabled_at__isnull=True).values_list("id", "events")
    return [webhook_id for webhook_id, events in rows if event in (events or [])]


def _record(event: str, key: str, webhook_ids: list[int], payload: dict) -> int:
    """Record one delivery of `payload` per endpoint (none where this key already has one) and
    send them once the caller's transaction commits."""
    rows = [
        WebhookDelivery(webhook_id=wid, event=event, key=key[:300], payload=payload)
        for wid in webhook_ids
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    ids = [row.id for row in rows]  # a key that had a row already: its task finds none
    transaction.on_commit(lambda: [_enqueue(delivery_id) for delivery_id in ids])
    return len(rows)


def site_url(path: str) -> str:
    return settings.AGENTOPS_BASE_URL + path


def notify_run(event: str, run, *, detail: dict | None = None, occurrence: str = "") -> int:
    """Tell the endpoints that asked for `event` (one of EVENTS) about `run` (a Run or its id),
    once per endpoint and (event, run, `occurrence`). Call it inside the transaction that
    changes the run, so the deliveries exist if and only if the change does; the sending
    starts after commit, from a Celery task. `detail` (JSON) goes into the body as is.
    Returns how many endpoints asked for it."""
    if event not in EVENTS:
        raise InvalidInput(f"unknown webhook event {event!r}")
    webhook_ids = _subscribers(event)
    if not webhook_ids:
        return 0
    if not isinstance(run, Run):
        run = Run.objects.filter(id=run).first()
        if run is None:
            return 0
    data = {
        "id": str(run.id),
        "agent": run.agent,
        "status": run.status,
        "error": run.error,
        "cost_usd": usd_text(run.cost_usd),
        "user_ref": run.user_ref,
        "url": site_url(reverse("runs:run", args=[run.id])),
    }
    payload = {
        "event": event,
        "occurred_at": timezone.now().isoformat(),
        "run": data,
        "text": run_text(event=event, run=data),
    }
    if detail is not None:
        payload["detail"] = detail
    key = f"{event}:{run.id}" + (f":{occurrence}" if occurrence else "")
    return _record(event, key, webhook_ids, payload)


def notify_window(event: str, *, account_id: int) -> int:
    """Tell of a spend window's period reaching 80 % or being exhausted; once per endpoint and
    (event, window, period)."""
    webhook_ids = _subscribers(event)
    account = SpendWindowPeriod.objects.select_related("window").filter(id=account_id).first()
    if not webhook_ids or account is None:
        return 0
    window = account.window
    data = {
        "id": window.id,
        "scope": window.scope,
        "period": window.period,
        "limit_usd": usd_text(window.limit_usd),
        "spent_usd": usd_text(from_micros(account.spent_micros)),
        "reserved_usd": usd_text(from_micros(account.reserved_micros)),
        "period_start": account.starts_at.isoformat(),
        "resets_at": period_end(window.period, account.starts_at).isoformat(),
        "url": site_url(reverse("runs:caps")),
    }
    payload = {
        "event": event,
        "occurred_at": timezone.now().isoformat(),
        "window": data,
        "text": window_text(event=event, window=data),
    }
    key = f"{event}:{window.id}:{account.starts_at.isoformat()}"
    return _record(event, key, webhook_ids, payload)


def window_exhausted(*, account_id: int, now=None) -> bool:
    """Note that a window's period is exhausted (it refused something, or is spent to its
    limit) and tell of it, the first time in the period only."""
    with transaction.atomic():
        first = SpendWindowPeriod.objects.filter(id=account_id, exhausted_at__isnull=True).update(
            exhausted_at=now or timezone.now()
        )
        if first:
            notify_window(WINDOW_EXHAUSTED, account_id=account_id)
    return bool(first)


# Sending.


def _queue() -> str:
    return settings.AGENTOPS_WEBHOOK_QUEUE or settings.AGENTOPS_QUEUE


def _enqueue(delivery_id, countdown: float | None = None) -> None:
    # Never raises: a broker that is down leaves the delivery due, and the sweep sends it.
    try:
        current_app.send_task(
            DELIVER_TASK,
            args=[str(delivery_id)],
            queue=_queue(),
            countdown=countdown,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:
        log.warning("webhook delivery %s not sent to the broker (will retry): %s", delivery_id, exc)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer like any other: not a success


_opener = urllib.request.build_opener(_NoRedirects)


def http_post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int | None, str]:
    """POST once: (status code or None, what went wrong or "")."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(READ_AT_MOST)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except Exception as exc:  # refused, timed out, bad TLS, a malformed answer
        reason = getattr(exc, "reason", None) or exc
        return None, f"{type(exc).__name__}: {reason}"[:300]


@dataclass(frozen=True)
class Attempt:
    """What `delivery_attempt` did: `sent` False when there was nothing to do; `retry_in`
    seconds until the next attempt when it failed and will be tried again."""

    sent: bool
    delivered: bool = False
    response_code: int | None = None
    retry_in: float | None = None


def delivery_attempt(*, delivery_id, now=None, post=http_post) -> Attempt:
    """Make one attempt at a delivery that is pending and due, unless another attempt holds it,
    its endpoint is disabled or it is past giving up on (then it is marked failed)."""
    now = now or timezone.now()
    give_up_before = now - timedelta(seconds=settings.AGENTOPS_WEBHOOK_GIVE_UP_SECONDS)
    WebhookDelivery.objects.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, created_at__lt=give_up_before
    ).update(status=DeliveryStatus.FAILED, error="given up: not delivered within the retry time")
    delivery = WebhookDelivery.objects.select_related("webhook").filter(id=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return Attempt(sent=False)
    webhook = delivery.webhook
    if webhook.disabled_at is not None:
        return Attempt(sent=False)
    timeout = settings.AGENTOPS_WEBHOOK_TIMEOUT_SECONDS
    attempt = delivery.attempts + 1
    lease = timedelta(seconds=60 + 4 * timeout)  # after which the sweep counts the attempt lost
    claimed = WebhookDelivery.objects.filter(
        id=delivery_id,
        status=DeliveryStatus.PENDING,
        attempts=delivery.attempts,
        next_attempt_at__lte=now,
    ).update(attempts=attempt, last_attempt_at=now, next_attempt_at=now + lease)
    if not claimed:
        return Attempt(sent=False)

    body = body_bytes(delivery.payload)
    headers = signed_headers(
        secret=webhook.secret,
        timestamp=int(time.time()),
        body=body,
        event=delivery.event,
        delivery=str(delivery.id),
    )
    code, error = post(webhook.url, body, headers, timeout)
    mine = WebhookDelivery.objects.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, attempts=attempt
    )
    if code is not None and 200 <= code < 300:
        mine.update(status=DeliveryStatus.DELIVERED, delivered_at=now, response_code=code, error="")
        Webhook.objects.filter(id=webhook.id).update(consecutive_failures=0, last_success_at=now)
        return Attempt(sent=True, delivered=True, response_code=code)

    delay = retry_delay(
        attempt,
        base=settings.AGENTOPS_WEBHOOK_RETRY_MS / 1000,
        most=settings.AGENTOPS_WEBHOOK_RETRY_MAX_SECONDS,
    )
    due = now + timedelta(seconds=delay)
    if due >= delivery.created_at + timedelta(seconds=settings.AGENTOPS_WEBHOOK_GIVE_UP_SECONDS):
        mine.update(
            status=DeliveryStatus.FAILED, response_code=code, error=f"given up: {error}"[:300]
        )
        retry_in = None
    else:
        mine.update(next_attempt_at=due, response_code=code, error=error[:300])
        retry_in = delay
    if _count_failure(webhook.id, now):
        retry_in = None
    return Attempt(sent=True, response_code=code, retry_in=retry_in)


def _count_failure(webhook_id: int, now) -> bool:
    """Count a failed attempt; disable the endpoint at the limit. True when it is disabled."""
    Webhook.objects.filter(id=webhook_id).update(
        consecutive_failures=F("consecutive_failures") + 1, last_failure_at=now
    )
    most = settings.AGENTOPS_WEBHOOK_DISABLE_AFTER
    Webhook.objects.filter(
        id=webhook_id, disabled_at__isnull=True, consecutive_failures__gte=most
    ).update(disabled_at=now, disabled_reason=f"{most} failed attempts in a row")
    return Webhook.objects.filter(id=webhook_id, disabled_at__isnull=False).exists()


def webhook_deliver(*, delivery_id) -> Attempt:
    """The task's work: one attempt, and the next one scheduled when it failed."""
    outcome = delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        _enqueue(delivery_id, countdown=outcome.retry_in)
    return outcome


def deliveries_sweep(*, now=None, grace: timedelta = SWEEP_GRACE) -> int:
    """Give up on deliveries past the retry time, and send those due for `grace` and unclaimed
    (their message was lost, the broker was down, the worker restarted, the endpoint was
    enabled again). Returns how many were sent."""
    now = now or timezone.now()
    give_up_before = now - timedelta(seconds=settings.AGENTOPS_WEBHOOK_GIVE_UP_SECONDS)
    WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, created_at__lt=give_up_before
    ).update(status=DeliveryStatus.FAILED, error="given up: not delivered within the retry time")
    due = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now - grace,
        webhook__disabled_at__isnull=True,
    ).order_by("next_attempt_at")
    ids = list(due.values_list("id", flat=True)[:SWEEP_BATCH])
    for delivery_id in ids:
        _enqueue(delivery_id)
    return len(ids)
