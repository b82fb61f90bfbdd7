"""Outgoing webhooks (runs.services.webhooks): which events are recorded where runs end and
spend windows fill, and how an attempt goes against a local HTTP endpoint: signed, tried again
after a failure until it answers 2xx, never sent again after that, given up on after a day, and
the endpoint disabled after failing too often in a row. Attempts are made here, on an injected
clock; tests/runs/test_webhooks_worker.py sends them from a real worker."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from runs.engine.webhooks import RUN_AWAITING_APPROVAL, RUN_FAILED, WINDOW_80, WINDOW_EXHAUSTED
from runs.errors import Conflict
from runs.models import Run, Webhook, WebhookDelivery
from runs.services.approvals import DbApprovals
from runs.services.runs import run_finish, run_mark_lost
from runs.services.webhooks import (
    deliveries_sweep,
    delivery_attempt,
    notify_run,
    webhook_create,
    webhook_enable,
)
from runs.services.windows import window_create, windows_add_spend, windows_reserve
from runs.services.windows import windows_settle as settle
from tests.webhook_receiver import WebhookReceiver, verify

pytestmark = pytest.mark.django_db
SECRET = "s3cret-s3cret-s3cret"
ALL = [RUN_FAILED, "run.budget_exceeded", "run.lost", RUN_AWAITING_APPROVAL, WINDOW_80,
       WINDOW_EXHAUSTED]  # fmt: skip


@pytest.fixture
def sent(monkeypatch):
    """The delivery ids handed to the broker (none reaches one here)."""
    ids = []
    monkeypatch.setattr(
        "runs.services.webhooks._enqueue",
        lambda delivery_id, countdown=None: ids.append((str(delivery_id), countdown)),
    )
    return ids


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def hook(url, events=ALL, secret=SECRET) -> Webhook:
    return webhook_create(url=url, secret=secret, events=list(events))[0]


def running_run(**fields) -> Run:
    fields.setdefault("agent", "demo-broken")
    return Run.objects.create(status="running", started_at=timezone.now(), **fields)


def fail(run: Run) -> None:
    error = {"code": "agent_error", "message": "lookup <b>exploded</b> & died"}
    assert run_finish(run_id=run.id, status="failed", error=error)


def test_a_failed_run_is_recorded_for_the_endpoints_that_asked_and_sent_after_commit(
    sent, django_capture_on_commit_callbacks, settings
):
    settings.AGENTOPS_BASE_URL = "https://ops.example.com"
    wanted = hook("https://a.example.com/x", [RUN_FAILED])
    hook("https://b.example.com/x", ["run.lost"])
    disabled = hook("https://c.example.com/x", [RUN_FAILED])
    Webhook.objects.filter(id=disabled.id).update(disabled_at=timezone.now())
    run = running_run(cost_usd=Decimal("0.0123"))

    with django_capture_on_commit_callbacks(execute=True):
        fail(run)
        assert sent == []  # nothing leaves before the run's end is committed

    delivery = WebhookDelivery.objects.get()
    assert delivery.webhook == wanted and delivery.event == RUN_FAILED
    assert sent == [(str(delivery.id), None)]
    body = delivery.payload
    assert body["event"] == RUN_FAILED
    assert body["run"] == {
        "id": str(run.id),
        "agent": "demo-broken",
        "status": "failed",
        "error": {"code": "agent_error", "message": "lookup <b>exploded</b> & died"},
        "cost_usd": "0.0123",
        "user_ref": "",
        "url": f"https://ops.example.com/runs/{run.id}/",
    }
    # Slack-compatible: a link to the run; what the agent wrote cannot form markup there.
    assert f"<https://ops.example.com/runs/{run.id}/|{str(run.id)[:8]}>" in body["text"]
    assert "&lt;b&gt;exploded&lt;/b&gt; &amp; died" in body["text"] and "<b>" not in body["text"]


def test_succeeded_and_cancelled_runs_are_not_told_and_an_event_is_recorded_once(sent):
    hook("https://a.example.com/x")
    ok = running_run(agent="demo-support")
    run_finish(run_id=ok.id, status="succeeded", output={"answer": "fine"})
    assert not WebhookDelivery.objects.exists()

    run = running_run()
    fail(run)
    assert not run_finish(run_id=run.id, status="failed", error={"code": "x"})  # already ended
    assert notify_run(RUN_FAILED, run) == 1  # told again: the row exists, nothing new
    assert WebhookDelivery.objects.count() == 1


def test_at_most_fifty_endpoints(sent):
    for n in range(50):
        hook(f"https://a.example.com/{n}")
    with pytest.raises(Conflict) as exc:
        hook("https://a.example.com/50")
    assert exc.value.code == "too_many_webhooks" and Webhook.objects.count() == 50


def test_a_lost_run_and_each_approval_wait_are_told(sent):
    hook("https://a.example.com/x")
    lost = running_run()
    assert run_mark_lost(run_id=lost.id, reason="test")
    waiting = running_run()
    notify_run(RUN_AWAITING_APPROVAL, waiting, occurrence="1", detail={"cap": "max_cost_usd"})
    notify_run(RUN_AWAITING_APPROVAL, waiting, occurrence="1")
    notify_run(RUN_AWAITING_APPROVAL, waiting, occurrence="2")
    events = sorted(WebhookDelivery.objects.values_list("event", "key"))
    assert events == [
        (RUN_AWAITING_APPROVAL, f"{RUN_AWAITING_APPROVAL}:{waiting.id}:1"),
        (RUN_AWAITING_APPROVAL, f"{RUN_AWAITING_APPROVAL}:{waiting.id}:2"),
        ("run.lost", f"run.lost:{lost.id}"),
    ]
    first = WebhookDelivery.objects.get(key__endswith=":1")
    assert first.payload["detail"] == {"cap": "max_cost_usd"}
    assert "is waiting for approval" in first.payload["text"]


def test_a_delivery_is_signed_and_the_signature_checks_out(sent, receiver):
    webhook = hook(receiver.url)
    fail(running_run())
    delivery = WebhookDelivery.objects.get()

    outcome = delivery_attempt(delivery_id=delivery.id)

    assert outcome.delivered and outcome.response_code == 200
    (request,) = receiver.requests
    headers = request["headers"]
    assert verify(SECRET, headers, request["body"])
    assert not verify("another-secret-entirely", headers, request["body"])
    assert headers["X-Agentops-Event"] == RUN_FAILED
    assert headers["X-Agentops-Delivery"] == str(delivery.id)
    assert headers["Content-Type"] == "application/json"
    assert request["json"] == delivery.payload
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    webhook.refresh_from_db()
    assert webhook.last_success_at is not None and webhook.consecutive_failures == 0


def test_a_500_is_tried_again_with_backoff_until_a_200_and_never_after(sent, receiver, settings):
    settings.AGENTOPS_WEBHOOK_RETRY_MS = 10_000
    receiver.statuses = [500, 503]
    webhook = hook(receiver.url)
    fail(running_run())
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()

    first = delivery_attempt(delivery_id=delivery.id, now=now)
    assert (first.sent, first.delivered, first.response_code, first.retry_in) == (
        True, False, 500, 10.0,
    )  # fmt: skip
    assert not delivery_attempt(delivery_id=delivery.id, now=now + timedelta(seconds=9)).sent
    second = delivery_attempt(delivery_id=delivery.id, now=now + timedelta(seconds=10))
    assert second.response_code == 503 and second.retry_in == 20.0  # doubling
    later = now + timedelta(seconds=30)
    third = delivery_attempt(delivery_id=delivery.id, now=later)
    assert third.delivered and third.response_code == 200

    for when in (later, later + timedelta(hours=1)):
        assert not delivery_attempt(delivery_id=delivery.id, now=when).sent
        assert deliveries_sweep(now=when) == 0
    assert len(receiver.requests) == 3
    assert len({r["headers"]["X-Agentops-Delivery"] for r in receiver.requests}) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 3, 200)
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.disabled_at is None


def test_an_attempt_under_way_holds_the_delivery(sent, receiver):
    hook(receiver.url)
    fail(running_run())
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    # Another attempt claimed it at `now` and has not answered yet.
    WebhookDelivery.objects.filter(id=delivery.id).update(
        attempts=1, next_attempt_at=now + timedelta(seconds=80)
    )
    assert not delivery_attempt(delivery_id=delivery.id, now=now).sent
    assert deliveries_sweep(now=now + timedelta(seconds=60)) == 0
    assert deliveries_sweep(now=now + timedelta(seconds=120)) == 1  # that attempt was lost
    assert receiver.requests == []


def test_an_endpoint_is_disabled_after_failing_too_often_in_a_row(sent, receiver, settings):
    settings.AGENTOPS_WEBHOOK_DISABLE_AFTER = 3
    receiver.statuses = [500, 500, 200, 500, 500, 500]
    webhook = hook(receiver.url)
    for _ in range(4):
        fail(running_run())
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    now = timezone.now()

    outcomes = [delivery_attempt(delivery_id=d.id, now=now) for d in deliveries]
    assert [o.response_code for o in outcomes] == [500, 500, 200, 500]
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 1 and webhook.disabled_at is None  # a 200 resets

    later = now + timedelta(hours=1)
    assert delivery_attempt(delivery_id=deliveries[0].id, now=later).retry_in is not None
    last = delivery_attempt(delivery_id=deliveries[1].id, now=later)
    assert last.response_code == 500 and last.retry_in is None  # not tried again: disabled
    webhook.refresh_from_db()
    assert webhook.disabled_at is not None and webhook.disabled_reason == (
        "3 failed attempts in a row"
    )
    # Disabled: nothing is attempted, swept or recorded for it any more.
    assert not delivery_attempt(delivery_id=deliveries[3].id, now=later + timedelta(hours=1)).sent
    assert deliveries_sweep(now=later + timedelta(hours=1)) == 0
    fail(running_run())
    assert WebhookDelivery.objects.count() == 4
    assert len(receiver.requests) == 6

    webhook_enable(webhook_id=webhook.id)
    webhook.refresh_from_db()
    assert webhook.disabled_at is None and webhook.consecutive_failures == 0
    assert deliveries_sweep(grace=timedelta(0)) == 3  # the pending ones go out again


def test_a_delivery_is_given_up_on_a_day_after_the_event(sent, receiver, settings):
    settings.AGENTOPS_WEBHOOK_RETRY_MS = 10_000
    settings.AGENTOPS_WEBHOOK_RETRY_MAX_SECONDS = 3600  # the next try would be past the day
    receiver.statuses = [500] * 5
    hook(receiver.url)
    fail(running_run())
    delivery = WebhookDelivery.objects.get()
    near_the_end = delivery.created_at + timedelta(hours=23, minutes=30)
    WebhookDelivery.objects.filter(id=delivery.id).update(attempts=12)

    outcome = delivery_attempt(delivery_id=delivery.id, now=near_the_end)

    assert outcome.response_code == 500 and outcome.retry_in is None
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.error == "given up: HTTP 500"
    # One never attempted in time (a disabled endpoint, a long outage) is given up on too.
    fail(running_run())
    other = WebhookDelivery.objects.get(status="pending")
    deliveries_sweep(now=other.created_at + timedelta(days=1, seconds=1))
    other.refresh_from_db()
    assert other.status == "failed" and other.attempts == 0


def test_a_slow_endpoint_times_out_and_is_tried_again(sent, receiver, settings):
    settings.AGENTOPS_WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.release.clear()
    hook(receiver.url)
    fail(running_run())
    delivery = WebhookDelivery.objects.get()

    outcome = delivery_attempt(delivery_id=delivery.id)

    assert outcome.sent and not outcome.delivered and outcome.retry_in is not None
    delivery.refresh_from_db()
    assert delivery.status == "pending" and "timed out" in delivery.error
    assert delivery.response_code is None


def test_a_redirect_is_not_followed_and_counts_as_a_failure(sent, receiver):
    receiver.statuses = [302]
    hook(receiver.url)
    fail(running_run())
    outcome = delivery_attempt(delivery_id=WebhookDelivery.objects.get().id)
    assert outcome.response_code == 302 and not outcome.delivered


# Spend windows: told once per window and period.


def spend(window, usd: str, run=None) -> None:
    run = run or running_run(agent="demo-support")
    holds = windows_reserve(run_id=run.id, windows=[window], amount=Decimal(usd))
    settle(holds=holds, cost=Decimal(usd))


def window_events() -> list[str]:
    return sorted(WebhookDelivery.objects.values_list("event", flat=True))


def test_a_window_reaching_80_percent_and_its_limit_is_told_once_each(sent):
    hook("https://a.example.com/x", [WINDOW_80, WINDOW_EXHAUSTED])
    window = window_create(scope="global", period="day", limit_usd="1.00")
    spend(window, "0.79")
    assert window_events() == []
    spend(window, "0.01")  # exactly 80 %
    assert window_events() == [WINDOW_80]
    spend(window, "0.10")
    assert window_events() == [WINDOW_80]
    spend(window, "0.10")  # spent to the limit
    assert window_events() == [WINDOW_80, WINDOW_EXHAUSTED]
    with pytest.raises(Exception, match="spend window"):
        spend(window, "0.01")
    assert window_events() == [WINDOW_80, WINDOW_EXHAUSTED]

    body = WebhookDelivery.objects.get(event=WINDOW_80).payload
    assert body["window"]["scope"] == "global" and body["window"]["limit_usd"] == "1.00"
    assert body["window"]["spent_usd"] == "0.80"
    assert "global per day" in body["text"] and "80 %" in body["text"]


def test_a_refusal_exhausts_a_window_once_per_period(sent):
    hook("https://a.example.com/x", [WINDOW_EXHAUSTED])
    window = window_create(scope="agent:demo-support", period="hour", limit_usd="0.10")
    spend(window, "0.05")
    for _ in range(3):  # a call whose worst case does not fit is refused
        with pytest.raises(Exception, match="spend window"):
            spend(window, "0.06")
    assert window_events() == [WINDOW_EXHAUSTED]
    # The next period is another period: told again.
    next_hour = timezone.now() + timedelta(hours=1)
    run = running_run(agent="demo-support")
    windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.10"), now=next_hour)
    with pytest.raises(Exception, match="spend window"):
        windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.01"), now=next_hour)
    assert window_events() == [WINDOW_EXHAUSTED, WINDOW_EXHAUSTED]
    assert len(set(WebhookDelivery.objects.values_list("key", flat=True))) == 2


def test_ingested_spend_can_fill_a_window(sent):
    hook("https://a.example.com/x", [WINDOW_80, WINDOW_EXHAUSTED])
    window_create(scope="agent:remote-bot", period="day", limit_usd="2")
    windows_add_spend(spends=[(["global", "agent:remote-bot"], Decimal("2.50"))])
    assert window_events() == [WINDOW_80, WINDOW_EXHAUSTED]
    assert json.loads(json.dumps(WebhookDelivery.objects.first().payload))["window"]["id"]


def test_a_run_that_starts_waiting_for_a_person_is_told_once_per_question(sent):
    hook("https://a.example.com/x", events=[RUN_AWAITING_APPROVAL])
    run = running_run()

    ref = DbApprovals(run_id=run.id).ask(kind="tool", subject="refund", request={"args": {}})

    delivery = WebhookDelivery.objects.get()
    assert delivery.event == RUN_AWAITING_APPROVAL
    assert delivery.key == f"{RUN_AWAITING_APPROVAL}:{run.id}:{ref}"
    assert delivery.payload["run"]["status"] == "awaiting_approval"
    assert delivery.payload["detail"] == {"kind": "tool", "subject": "refund"}
