"""/caps/ and /prices/: who may reach them, the editor's messages per field, the audit trail,
the backtest panel, and model prices from a date."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import CapPolicy, CapPolicyChange, Event, ModelPrice, Run
from runs.selectors.caps import cap_policy_last_change_id
from runs.selectors.prices import price_for
from runs.services import caps, prices
from tests.runs.run_rows import finished_run, loop_steps

pytestmark = pytest.mark.django_db

GLOBAL_FORM = {
    "scope": "global",
    "max_tool_calls": "20",
    "max_cost_usd": "0.50",
    "max_wall_seconds": "300",
    "tool_timeout_seconds": "10",
    "last_n": "100",
}


def login(client, make_user, role="admin"):
    user = make_user(role)
    client.force_login(user)
    return user


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="([^"]+)">([^<]+)<', html))


# Who may reach what.

PAGES = [("get", "/caps/"), ("get", "/caps/?scope=demo-loop"), ("get", "/prices/")]
ACTIONS = [
    ("post", "/caps/?scope=demo-loop", {"scope": "demo-loop", "max_tool_calls": "3"}),
    ("post", "/caps/backtest/", {"scope": "demo-loop", "max_tool_calls": "3", "last_n": "20"}),
    ("post", "/caps/remove/", {"scope": "demo-loop"}),
    ("post", "/prices/", {"model": "m", "input_per_mtok": "1", "output_per_mtok": "2"}),
    ("post", "/prices/retire/", {"model": "gpt-4o"}),
]


@pytest.mark.parametrize("method, path", PAGES)
def test_pages_need_a_login(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ["support", "engineer", None])
@pytest.mark.parametrize("method, path", PAGES)
def test_only_admins_see_the_pages(client, make_user, role, method, path):
    login(client, make_user, role)
    assert getattr(client, method)(path).status_code == 403


@pytest.mark.parametrize("role", ["support", "engineer"])
@pytest.mark.parametrize("method, path, data", ACTIONS)
def test_only_admins_may_act(client, make_user, role, method, path, data):
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5})
    login(client, make_user, role)
    assert getattr(client, method)(path, data).status_code == 403
    assert CapPolicy.objects.get(scope="demo-loop").values.get("max_tool_calls") == 5
    assert not ModelPrice.objects.filter(model="m").exists()
    assert not ModelPrice.objects.filter(retired_at__isnull=False).exists()


def test_anonymous_actions_go_to_the_login_page(client):
    for method, path, data in ACTIONS:
        response = getattr(client, method)(path, data)
        assert response.status_code == 302, path
    assert not CapPolicyChange.objects.exists()


def test_admins_get_the_navigation_items(client, make_user):
    login(client, make_user, "admin")
    html = client.get("/caps/").content.decode()
    assert 'href="/caps/" aria-current="page">Caps<' in html and 'href="/prices/">Prices<' in html
    login(client, make_user, "engineer")
    html = client.get("/agents/").content.decode()
    assert ">Caps<" not in html and ">Prices<" not in html


# The editor.


def test_every_bad_field_gets_its_message_and_nothing_is_saved(client, make_user):
    login(client, make_user)
    form = {
        **GLOBAL_FORM,
        "max_tool_calls": "0",
        "max_cost_usd": "0.12345",
        "max_wall_seconds": "1.5",
        "tool_timeout_seconds": "",
        "max_model_calls": "x",
        "max_tokens": "-1",
        "tool__check_inventory": "99999",
    }
    response = client.post("/caps/?scope=global", form)
    assert response.status_code == 422
    assert field_errors(response.content.decode()) == {
        "max_tool_calls": "must be between 1 and 1000000000",
        "max_cost_usd": "must have at most 4 decimal places",
        "max_wall_seconds": "must be a whole number of seconds from 1 to 604800",
        "tool_timeout_seconds": "is required in the global policy (every agent inherits it)",
        "max_model_calls": "must be a whole number",
        "max_tokens": "must be between 1 and 1000000000",
        "tool__check_inventory": "must be a whole number of seconds from 1 to 86400",
    }
    # What was typed stays in the form.
    assert 'value="0.12345"' in response.content.decode()
    assert CapPolicy.objects.get(scope="global").values.get("max_tool_calls") == 20
    assert not CapPolicyChange.objects.exists()


def test_saving_an_override_records_it_and_shows_it_in_the_history(client, make_user):
    user = login(client, make_user)
    page = client.get("/caps/?scope=demo-loop").content.decode()
    assert 'placeholder="inherits 20"' in page and "has no override" in page
    form = {
        "scope": "demo-loop",
        "version": "0",
        "max_tool_calls": "4",
        "last_n": "100",
        "tool__check_inventory": "3",
    }
    response = client.post("/caps/?scope=demo-loop", form)
    assert response.status_code == 302 and response["Location"] == "/caps/?scope=demo-loop"
    policy = CapPolicy.objects.get(scope="demo-loop")
    assert (policy.values, policy.tool_timeouts) == ({"max_tool_calls": 4}, {"check_inventory": 3})
    change = CapPolicyChange.objects.get(scope="demo-loop")
    assert change.changed_by == user and change.actor == f"user:{user.username}"
    page = client.get("/caps/?scope=demo-loop").content.decode()
    assert "Saved the demo-loop policy" in page
    history = page[page.index('id="history-h"') :]
    assert f"user:{user.username}" in history and "Created the override." in history
    assert "max_tool_calls</span>: inherit → 4" in history
    assert "tool_timeouts.check_inventory</span>: inherit → 3 s" in history
    assert 'value="4"' in page  # the form now shows the saved value


def test_a_form_opened_before_someone_elses_save_is_refused(client, make_user):
    login(client, make_user)
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5}, actor="key:robot")
    stale = {"scope": "demo-loop", "version": "0", "max_tool_calls": "9", "last_n": "100"}
    response = client.post("/caps/?scope=demo-loop", stale)
    assert response.status_code == 409
    assert "changed by key:robot" in response.content.decode()
    assert CapPolicy.objects.get(scope="demo-loop").values.get("max_tool_calls") == 5


def test_removing_an_override_from_the_page(client, make_user):
    login(client, make_user)
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5})
    version = cap_policy_last_change_id(scope="demo-loop")
    page = client.get("/caps/?scope=demo-loop").content.decode()
    assert "Remove the override of demo-loop" in page
    response = client.post("/caps/remove/", {"scope": "demo-loop", "version": str(version)})
    assert response.status_code == 302
    assert not CapPolicy.objects.filter(scope="demo-loop").exists()
    page = client.get(response["Location"]).content.decode()
    assert "Removed the demo-loop override" in page and "Removed the override." in page


def test_an_unknown_scope_is_not_found(client, make_user):
    login(client, make_user)
    assert client.get("/caps/?scope=nobody").status_code == 404
    assert client.post("/caps/?scope=nobody", {"scope": "nobody"}).status_code == 404


def test_an_override_of_an_agent_no_longer_registered_can_only_be_removed(client, make_user):
    login(client, make_user)
    CapPolicy.objects.create(scope="gone-agent", values={"max_tool_calls": 3})
    page = client.get("/caps/?scope=gone-agent").content.decode()
    assert "No agent named gone-agent is registered here" in page
    assert 'id="policy-form"' not in page and "Remove the override of gone-agent" in page
    assert client.post("/caps/remove/", {"scope": "gone-agent"}).status_code == 302
    assert not CapPolicy.objects.filter(scope="gone-agent").exists()


# The backtest panel.


def test_the_backtest_panel_shows_what_the_typed_values_would_cut(client, make_user):
    login(client, make_user)
    cut = finished_run(steps=loop_steps(6), ago=20)
    finished_run(steps=loop_steps(3), ago=10)
    form = {"scope": "demo-loop", "max_tool_calls": "3", "last_n": "20"}
    response = client.post("/caps/backtest/", form, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html  # the fragment only
    assert "would have stopped 1 of the last 2 finished runs of demo-loop" in html
    assert "saving $0.0020" in html and "would have stopped 0." in html
    assert f'href="/runs/{cut.id}/#step-7"' in html
    assert html.count('class="histogram"') == 6  # three figures, each with its svg
    assert "proposed: 3" in html and "current: 20" in html
    assert not CapPolicyChange.objects.exists()  # nothing saved


def test_the_backtest_without_javascript_renders_the_whole_page(client, make_user):
    login(client, make_user)
    finished_run(steps=loop_steps(6))
    response = client.post(
        "/caps/backtest/", {"scope": "demo-loop", "max_tool_calls": "3", "last_n": "20"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="policy-form"' in html
    assert "would have stopped 1 of the last 1 finished run of demo-loop" in html


def test_the_backtest_lists_bad_values_instead_of_numbers(client, make_user):
    login(client, make_user)
    form = {"scope": "demo-loop", "max_tool_calls": "0", "last_n": "20"}
    html = client.post("/caps/backtest/", form, HTTP_HX_REQUEST="true").content.decode()
    assert "Fix these values" in html and "Max tool calls: must be between 1" in html


def test_the_page_and_the_api_give_the_same_numbers(client, make_user):
    login(client, make_user)
    caps.cap_policy_set(scope="demo-loop", values={"max_cost_usd": "0.004"})
    for n in (2, 4, 5, 6):
        finished_run(steps=loop_steps(n))
    # The form as the page shows it (the saved override filled in), with one value changed.
    form = {"scope": "demo-loop", "max_tool_calls": "4", "max_cost_usd": "0.004", "last_n": "20"}
    html = client.post("/caps/backtest/", form, HTTP_HX_REQUEST="true").content.decode()
    proposal = {
        "max_tool_calls": 4,
        "max_cost_usd": "0.004",
        "max_wall_seconds": 300,
        "tool_timeout_seconds": 10,
        "max_model_calls": None,
        "max_tokens": None,
    }
    body = client.post(
        "/api/v1/caps/backtest",
        {"caps": proposal, "agent": "demo-loop", "last_n": 20},
        content_type="application/json",
    ).json()
    assert (body["runs_checked"], body["runs_cut"]) == (4, 2)
    # $0.001 per model call: a 5th passes $0.004, and comes before the 5th tool call.
    assert body["by_cap"]["max_cost_usd"] == 2 and body["by_cap"]["max_tool_calls"] == 0
    assert f"would have stopped {body['runs_cut']} of the last {body['runs_checked']}" in html
    for example in body["examples"]:
        assert f"/runs/{example['run_id']}/#step-{example['cut_at_seq']}" in html


def test_a_step_beyond_the_first_page_of_the_timeline_links_to_its_page(client, make_user):
    login(client, make_user)
    run = finished_run(steps=loop_steps(60))
    form = {"scope": "demo-loop", "max_tool_calls": "55", "last_n": "20"}
    html = client.post("/caps/backtest/", form, HTTP_HX_REQUEST="true").content.decode()
    assert f'href="/runs/{run.id}/?after=110#step-111"' in html


# Prices.


def test_add_a_price_from_a_date_and_past_costs_stay(client, make_user):
    login(client, make_user)
    run = Run.objects.create(agent="demo-support", status="succeeded", cost_usd=Decimal("0.15"))
    Event.objects.create(
        run=run,
        seq=0,
        kind="model_call",
        model="scripted-mini",
        cost_usd=Decimal("0.15"),
        input_tokens=1_000_000,
    )
    old = price_for("scripted-mini")
    response = client.post(
        "/prices/", {"model": "scripted-mini", "input_per_mtok": "1.25", "output_per_mtok": "5"}
    )
    assert response.status_code == 302
    assert price_for("scripted-mini") == (Decimal("1.25"), Decimal("5"))
    assert price_for("scripted-mini", at=timezone.now() - timedelta(hours=1)) == old
    run.refresh_from_db()
    assert run.cost_usd == Decimal("0.15") and run.events.get().cost_usd == Decimal("0.15")
    html = client.get("/prices/").content.decode()
    row = html[html.index('data-model="scripted-mini"') :]
    assert "$1.2500" in row[:600] and "Earlier prices (1)" in row


def test_a_dated_model_id_takes_its_undated_names_price_unless_it_has_its_own():
    # Providers answer with (and agents may ask for) snapshot ids; the seeded prices are undated.
    gpt_4o = price_for("gpt-4o")
    assert gpt_4o is not None
    assert price_for("gpt-4o-2024-08-06") == gpt_4o
    assert price_for("claude-sonnet-4-5-20250929") == price_for("claude-sonnet-4-5")
    ModelPrice.objects.create(model="gpt-4o-2024-08-06", input_per_mtok=1, output_per_mtok=2)
    assert price_for("gpt-4o-2024-08-06") == (1, 2)
    assert price_for("gpt-4o-mini-2024") is None  # not a date: no fallback
    assert price_for("unknown-20250101") is None


def test_a_price_scheduled_later_starts_then_and_can_be_cancelled(client, make_user):
    login(client, make_user)
    later = timezone.now() + timedelta(days=2)
    response = client.post(
        "/prices/",
        {
            "model": "gpt-4o",
            "input_per_mtok": "9",
            "output_per_mtok": "9",
            "effective_from": later.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    scheduled = ModelPrice.objects.get(model="gpt-4o", input_per_mtok=9)
    assert price_for("gpt-4o") == (Decimal("2.5"), Decimal("10"))
    assert price_for("gpt-4o", at=later + timedelta(minutes=1)) == (9, 9)
    assert "scheduled" in client.get("/prices/").content.decode()
    assert client.post(f"/prices/{scheduled.id}/cancel/").status_code == 302
    assert not ModelPrice.objects.filter(id=scheduled.id).exists()
    current = ModelPrice.objects.get(model="gpt-4o")
    client.post(f"/prices/{current.id}/cancel/")  # in effect: kept
    assert ModelPrice.objects.filter(id=current.id).exists()


def test_retiring_a_model_leaves_it_unpriced_even_with_older_prices(client, make_user):
    login(client, make_user)
    prices.price_add(
        model="gpt-4o",
        input_per_mtok="3",
        output_per_mtok="12",
        effective_from=timezone.now() - timedelta(minutes=5),
    )
    assert client.post("/prices/retire/", {"model": "gpt-4o"}).status_code == 302
    assert price_for("gpt-4o") is None
    assert price_for("gpt-4o", at=timezone.now() - timedelta(minutes=1)) == (3, 12)
    html = client.get("/prices/").content.decode()
    assert "Retired: calls to it have no known price." in html
    # Retiring again says so instead of pretending.
    page = client.post("/prices/retire/", {"model": "gpt-4o"}, follow=True).content.decode()
    assert "gpt-4o is already retired" in page


def test_bad_prices_are_named_per_field(client, make_user):
    login(client, make_user)
    response = client.post(
        "/prices/", {"model": "", "input_per_mtok": "-1", "output_per_mtok": "0.00001"}
    )
    assert response.status_code == 422
    errors = field_errors(response.content.decode())
    assert set(errors) == {"model", "input_per_mtok", "output_per_mtok"}
    assert "no more than 4 decimal places" in errors["output_per_mtok"]
    start = ModelPrice.objects.get(model="gpt-4o").effective_from
    response = client.post(
        "/prices/",
        {
            "model": "gpt-4o",
            "input_per_mtok": "1",
            "output_per_mtok": "1",
            "effective_from": start.isoformat(),
        },
    )
    assert field_errors(response.content.decode()) == {
        "effective_from": "gpt-4o already has a price starting at that time"
    }


def test_the_caps_page_reads_a_fixed_number_of_queries(client, make_user):
    login(client, make_user)
    for agent in ("demo-loop", "demo-support"):
        caps.cap_policy_set(scope=agent, values={"max_tool_calls": 5}, actor="key:a")
        caps.cap_policy_set(scope=agent, values={"max_tool_calls": 6}, actor="key:b")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/caps/?scope=demo-loop").status_code == 200
        return len(captured)

    few = queries()
    for agent in ("demo-hang", "demo-slow", "demo-spender"):
        caps.cap_policy_set(scope=agent, values={"max_tool_calls": 7}, actor="key:c")
    for n in range(8):
        caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 8 + n}, actor="key:d")
    assert queries() == few


# Asking a person.


def test_an_agent_is_set_to_ask_with_ceilings_and_tools_from_the_page(client, make_user):
    login(client, make_user)
    page = client.get("/caps/?scope=demo-support").content.decode()
    assert "inherit (stop)" in page and 'name="requires_approval"' in page
    form = {
        "scope": "demo-support",
        "version": "0",
        "last_n": "100",
        "on_cap": "ask",
        "approval_timeout_seconds": "120",
        "extend__max_cost_usd": "2.50",
        "requires_approval": ["lookup_order"],
    }
    response = client.post("/caps/?scope=demo-support", form)
    assert response.status_code == 302, field_errors(response.content.decode())
    policy = CapPolicy.objects.get(scope="demo-support")
    assert policy.values == {} and policy.approvals == {
        "on_cap": "ask",
        "approval_timeout_seconds": 120,
        "max_extension": {"max_cost_usd": "2.50"},
        "requires_approval": ["lookup_order"],
    }
    page = client.get("/caps/?scope=demo-support").content.decode()
    history = page[page.index('id="history-h"') :]
    assert "on_cap</span>: inherit → ask" in history
    assert "max_extension.max_cost_usd</span>: inherit → $2.50" in history
    assert 'value="2.50"' in page and 'value="ask" selected' in page


def test_bad_approval_fields_get_their_message_beside_them(client, make_user):
    login(client, make_user)
    form = {
        **GLOBAL_FORM,
        "version": "0",
        "on_cap": "ask",
        "approval_timeout_seconds": "0",
        "extend__max_tool_calls": "many",
    }
    response = client.post("/caps/?scope=global", form)
    assert response.status_code == 422
    errors = field_errors(response.content.decode())
    assert set(errors) >= {"approval_timeout_seconds", "extend__max_tool_calls"}
    assert not CapPolicy.objects.filter(scope="global", approvals__on_cap="ask").exists()
