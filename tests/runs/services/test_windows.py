"""Spend windows (runs.services.windows): defining them, holding a model call's worst case
against every window covering its run (all or none, never past the limit), settling to the real
cost, periods, scopes, the 429 before a run is queued, and ingested spend."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runs.engine.policy import CapPolicyInvalid
from runs.engine.windows import WindowRefused
from runs.errors import Conflict
from runs.models import CapPolicyChange, Run, SpendReservation, SpendWindow
from runs.selectors.windows import windows_state
from runs.services.keys import api_key_create
from runs.services.runs import run_create
from runs.services.windows import (
    SpendWindowExhausted,
    window_create,
    window_delete,
    windows_add_spend,
    windows_release_run,
    windows_reserve,
    windows_settle,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]
NOON = datetime(2026, 3, 3, 12, 30, tzinfo=UTC)


def a_run(**fields) -> Run:
    return Run.objects.create(agent=fields.pop("agent", "demo-support"), **fields)


def state(window) -> tuple:
    now = NOON
    s = next(s for s in windows_state(now=now) if s.window.id == window.id)
    return s.spent, s.reserved, s.refused


def test_a_window_is_checked_field_by_field_and_audited(make_user):
    with pytest.raises(CapPolicyInvalid) as exc:
        window_create(scope="team:x", period="fortnight", limit_usd="-1")
    assert set(exc.value.errors) == {"scope", "period", "limit_usd"}
    admin = make_user("admin", username="ada")
    window = window_create(scope=" agent:demo-loop ", period="day", limit_usd="5", created_by=admin)
    assert (window.scope, window.limit_usd) == ("agent:demo-loop", Decimal("5"))
    with pytest.raises(Conflict):
        window_create(scope="agent:demo-loop", period="day", limit_usd="9")
    window_delete(window_id=window.id, changed_by=admin)
    added, deleted = CapPolicyChange.objects.filter(scope="spend windows").order_by("id")
    assert added.after == {"id": window.id, "scope": "agent:demo-loop", "period": "day",
                           "limit_usd": "5.00"} and added.actor == "user:ada"  # fmt: skip
    assert deleted.before["scope"] == "agent:demo-loop" and deleted.after is None
    assert not SpendWindow.objects.exists()


def test_holds_never_pass_the_limit_and_settle_to_the_real_cost():
    window = window_create(scope="global", period="day", limit_usd="0.05")
    run = a_run()
    first = windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.03"), now=NOON)
    assert state(window) == (0, Decimal("0.03"), 0)
    with pytest.raises(WindowRefused) as refused:
        windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.03"), now=NOON)
    error = refused.value.to_error()
    assert error["cap"] == "spend_window" and error["scope"] == "global"
    assert error["period"] == "day" and error["resets_at"] == "2026-03-04T00:00:00+00:00"
    assert state(window) == (0, Decimal("0.03"), 1)  # the refusal is counted, nothing held
    windows_settle(holds=first, cost=Decimal("0.02"))
    assert state(window)[:2] == (Decimal("0.02"), 0)
    # Exactly to the limit fits; one micro-dollar more does not.
    exact = windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.03"), now=NOON)
    with pytest.raises(WindowRefused):
        windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.000001"), now=NOON)
    windows_settle(holds=exact, cost=Decimal("0.03"))
    assert state(window)[:2] == (Decimal("0.05"), 0)


def test_a_hold_is_taken_on_every_covering_window_or_on_none():
    roomy = window_create(scope="global", period="day", limit_usd="10")
    tight = window_create(scope="agent:demo-support", period="hour", limit_usd="0.01")
    run = a_run()
    with pytest.raises(WindowRefused) as refused:
        windows_reserve(run_id=run.id, windows=[roomy, tight], amount=Decimal("0.02"), now=NOON)
    assert refused.value.scope == "agent:demo-support"
    assert state(roomy)[:2] == (0, 0) and not SpendReservation.objects.exists()


def test_a_new_period_starts_from_nothing():
    window = window_create(scope="global", period="hour", limit_usd="0.01")
    run = a_run()
    held = windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.01"), now=NOON)
    windows_settle(holds=held, cost=Decimal("0.01"))
    with pytest.raises(WindowRefused):
        windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.01"), now=NOON)
    next_hour = NOON + timedelta(minutes=31)
    assert windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.01"), now=next_hour)


def test_releasing_a_run_gives_back_what_it_held_and_only_once():
    window = window_create(scope="global", period="day", limit_usd="1")
    run = a_run()
    held = windows_reserve(run_id=run.id, windows=[window], amount=Decimal("0.4"), now=NOON)
    assert windows_release_run(run_id=run.id) == 1
    windows_settle(holds=held, cost=Decimal("0.4"))  # too late: the hold was released already
    assert state(window)[:2] == (0, 0)


def test_a_new_run_is_refused_429_while_a_window_covering_it_is_spent(client):
    window = window_create(scope="user:cust-1", period="day", limit_usd="0.01")
    windows_add_spend(spends=[(["user:cust-1"], Decimal("0.01"))])
    with pytest.raises(SpendWindowExhausted) as exc:
        run_create(agent="demo-support", input={}, user_ref="cust-1")
    assert exc.value.status == 429 and 0 < int(exc.value.headers["Retry-After"]) <= 86_400
    assert not Run.objects.exists()
    # Another user's runs are not covered by it.
    assert run_create(agent="demo-support", input={}, user_ref="cust-2").status == "queued"
    _, key = api_key_create(name="k", scopes=["runs:write"])
    response = client.post(
        "/api/v1/runs",
        {"agent": "demo-support", "input": {}, "user_ref": "cust-1"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "spend_window_exhausted"
    assert response.json()["error"]["details"]["scope"] == "user:cust-1"
    assert 0 < int(response["Retry-After"]) <= 86_400
    assert Run.objects.count() == 1
    assert windows_state()[0].refused == 2 and windows_state()[0].window == window


def test_a_key_window_covers_the_runs_that_key_starts(client):
    key, secret = api_key_create(name="bot", scopes=["runs:write"])
    window_create(scope=f"key:{key.prefix}", period="month", limit_usd="0")
    response = client.post(
        "/api/v1/runs",
        {"agent": "demo-support", "input": {}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 429
    assert run_create(agent="demo-support", input={}).status == "queued"  # not that key's


def test_an_ingested_run_fills_the_windows_covering_it(client):
    _, secret = api_key_create(name="ingest", scopes=["ingest"])
    window = window_create(scope="agent:billing-bot", period="day", limit_usd="0.10")
    run_id, step_id = "0f8e0000-0000-4000-8000-000000000001", "0f8e0000-0000-4000-8000-000000000002"
    batch = {
        "runs": [{"id": run_id, "agent": "billing-bot"}],
        "events": [{"id": step_id, "run_id": run_id, "kind": "model_call", "model": "m",
                    "cost_usd": "0.04"}],
    }  # fmt: skip
    response = client.post(
        "/api/v1/ingest", batch, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert windows_state()[0].spent == Decimal("0.04") and windows_state()[0].window == window
    # Sent again with a corrected cost: the window follows the step, it does not add twice.
    batch["events"][0]["cost_usd"] = "0.03"
    client.post("/api/v1/ingest", batch, content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret}")  # fmt: skip
    assert windows_state()[0].spent == Decimal("0.03")
