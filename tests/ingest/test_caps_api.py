"""/api/v1/caps: scopes, the §9 error shape with a message per field, the audit trail, removing
an override, and the backtest's numbers."""

import json
from decimal import Decimal

import pytest

from runs.models import CapPolicy, CapPolicyChange
from runs.services import caps
from runs.services.keys import api_key_create
from runs.services.runs import run_create
from tests.runs.run_rows import GLOBAL as FULL_GLOBAL
from tests.runs.run_rows import finished_run, loop_steps

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def key(*scopes, name="t") -> str:
    return api_key_create(name=name, scopes=list(scopes))[1]


def call(client, method, path, body=None, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(
        f"/api/v1{path}", data=data, content_type="application/json", **headers
    )


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# Who may do what.

WRITES = [
    ("put", "/caps/demo-loop", {"max_tool_calls": 3}),
    ("delete", "/caps/demo-loop", None),
    ("post", "/caps/backtest", {"caps": {"max_tool_calls": 3}}),
]


@pytest.mark.parametrize(
    "method, path, body", [("get", "/caps", None), ("get", "/caps/changes", None), *WRITES]
)
def test_no_key_is_401(client, method, path, body):
    assert_error(call(client, method, path, body), 401, "unauthenticated")


@pytest.mark.parametrize("scopes", [("runs:read",), ("runs:write", "runs:read"), ("ingest",)])
@pytest.mark.parametrize("method, path, body", WRITES)
def test_writes_and_backtests_need_the_admin_scope(client, scopes, method, path, body):
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 5})
    error = assert_error(call(client, method, path, body, key(*scopes)), 403, "insufficient_scope")
    assert "admin" in error["message"]
    assert CapPolicy.objects.get(scope="demo-loop").values.get("max_tool_calls") == 5


@pytest.mark.parametrize("path", ["/caps", "/caps/changes"])
def test_reading_needs_runs_read(client, path):
    assert call(client, "get", path, token=key("runs:read")).status_code == 200
    assert_error(call(client, "get", path, token=key("ingest")), 403, "insufficient_scope")


@pytest.mark.parametrize("role, status", [("support", 403), ("engineer", 403), ("admin", 200)])
def test_a_page_session_gets_its_roles_scopes(client, make_user, role, status):
    user = make_user(role)
    client.force_login(user)
    assert call(client, "put", "/caps/demo-loop", {"max_tool_calls": 3}).status_code == status
    assert call(client, "get", "/caps").status_code == 200


# Reading and writing.


def test_get_caps_shows_the_policy_overrides_and_effective_caps(client):
    caps.cap_policy_set(
        scope="demo-loop", values={"max_tool_calls": 4, "tool_timeouts": {"check_inventory": 2}}
    )
    body = call(client, "get", "/caps", token=key("runs:read")).json()
    assert body["global"]["scope"] == "global"
    assert {k: body["global"][k] for k in FULL_GLOBAL} == FULL_GLOBAL
    assert body["global"]["max_model_calls"] is None
    (override,) = body["overrides"]
    assert override["scope"] == "demo-loop" and override["max_tool_calls"] == 4
    assert override["max_cost_usd"] is None and override["tool_timeouts"] == {"check_inventory": 2}
    assert body["effective"]["demo-loop"]["max_tool_calls"] == 4
    assert body["effective"]["demo-support"]["max_tool_calls"] == 20
    assert body["bounds"]["max_wall_seconds"] == "whole seconds from 1 to 604800"


def test_put_replaces_a_scope_and_records_the_key(client):
    token = key("admin", name="ci-tuner")
    response = call(
        client, "put", "/caps/demo-loop", {"max_tool_calls": 6, "max_cost_usd": 0.25}, token
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "demo-loop" and body["changed"] is True
    assert body["policy"]["max_tool_calls"] == 6 and body["policy"]["max_cost_usd"] == "0.25"
    change = CapPolicyChange.objects.get(scope="demo-loop")
    assert change.actor == "key:ci-tuner" and change.changed_by is None
    assert change.after["max_cost_usd"] == "0.25"
    # PUT is the whole policy: what is left out is empty (inherited) again.
    again = call(client, "put", "/caps/demo-loop", {"max_tool_calls": 6}, token).json()
    assert again["changed"] is True and again["policy"]["max_cost_usd"] is None
    same = call(client, "put", "/caps/demo-loop", {"max_tool_calls": 6}, token).json()
    assert same["changed"] is False
    assert run_create(agent="demo-loop", input={}).caps["max_tool_calls"] == 6


def test_put_global_needs_every_required_cap(client):
    token = key("admin")
    error = assert_error(
        call(client, "put", "/caps/global", {"max_tool_calls": 5}, token), 422, "invalid_caps"
    )
    assert set(error["details"]["fields"]) == {
        "max_cost_usd",
        "max_wall_seconds",
        "tool_timeout_seconds",
    }
    ok = call(client, "put", "/caps/global", {**FULL_GLOBAL, "max_tokens": 50_000}, token)
    assert ok.status_code == 200 and ok.json()["policy"]["max_tokens"] == 50_000


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("max_tool_calls", 0, "must be between 1 and 1000000000"),
        ("max_tool_calls", 2.5, "must be a whole number"),
        ("max_cost_usd", "0.00001", "must have at most 4 decimal places"),
        ("max_cost_usd", -1, "must be between 0 and 99999.9999"),
        ("max_wall_seconds", 604_801, "must be a whole number of seconds from 1 to 604800"),
        ("tool_timeout_seconds", 0, "must be a whole number of seconds from 1 to 86400"),
        ("max_model_calls", "ten", "must be a whole number"),
        ("max_tokens", 0, "must be between 1 and 1000000000"),
        ("tool_timeouts", {"check_inventory": 0.5}, None),
        ("max_bananas", 1, "unknown cap"),
    ],
)
def test_put_answers_422_naming_the_field(client, field, value, message):
    response = call(client, "put", "/caps/demo-loop", {field: value}, key("admin"))
    error = assert_error(response, 422, "invalid_caps")
    if field == "tool_timeouts":
        field, message = (
            "tool_timeouts.check_inventory",
            "must be a whole number of seconds from 1 to 86400",
        )
    assert error["details"] == {"fields": {field: message}}
    assert f"{field}: {message}" in error["message"]
    assert not CapPolicy.objects.filter(scope="demo-loop").exists()


def test_an_agent_not_registered_here_is_422(client):
    error = assert_error(
        call(client, "put", "/caps/no-such-agent", {"max_tool_calls": 3}, key("admin")),
        422,
        "invalid_caps",
    )
    assert error["details"] == {
        "fields": {"scope": "no agent named 'no-such-agent' is registered here"}
    }


@pytest.mark.parametrize("name", ["changes", "backtest"])
def test_scopes_named_like_the_fixed_paths_are_scopes_too(client, name):
    token = key("admin")
    put = call(client, "put", f"/caps/{name}", {"max_tool_calls": 3}, token)
    error = assert_error(put, 422, "invalid_caps")
    assert error["details"] == {"fields": {"scope": f"no agent named '{name}' is registered here"}}
    assert_error(call(client, "delete", f"/caps/{name}", token=token), 404, "not_found")
    assert_error(
        call(client, "put", f"/caps/{name}", {}, key("runs:read")), 403, "insufficient_scope"
    )


def test_bad_json_is_a_4xx_never_a_500(client):
    token = key("admin")
    raw = client.put(
        "/api/v1/caps/demo-loop",
        data="{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert raw.status_code in (400, 422) and "error" in raw.json()
    listed = call(client, "put", "/caps/demo-loop", [1, 2], token)
    assert listed.status_code == 422 and "error" in listed.json()


def test_delete_removes_an_override_and_falls_back(client):
    token = key("admin", name="janitor")
    caps.cap_policy_set(scope="demo-loop", values={"max_tool_calls": 4})
    assert call(client, "delete", "/caps/demo-loop", token=token).status_code == 204
    assert run_create(agent="demo-loop", input={}).caps["max_tool_calls"] == 20
    removal = CapPolicyChange.objects.filter(scope="demo-loop").order_by("-id").first()
    assert removal.after is None and removal.actor == "key:janitor"
    assert_error(call(client, "delete", "/caps/demo-loop", token=token), 404, "not_found")
    assert_error(call(client, "delete", "/caps/global", token=token), 422, "invalid_caps")


def test_the_audit_trail_is_readable(client):
    token = key("admin", name="robot")
    call(client, "put", "/caps/demo-loop", {"max_tool_calls": 4}, token)
    call(client, "put", "/caps/demo-support", {"max_tool_calls": 9}, token)
    body = call(client, "get", "/caps/changes?scope=demo-loop", token=token).json()
    (item,) = body["items"]
    assert item["scope"] == "demo-loop" and item["actor"] == "key:robot"
    assert item["before"] is None and item["after"]["max_tool_calls"] == 4
    everything = call(client, "get", "/caps/changes", token=token).json()["items"]
    assert [i["scope"] for i in everything] == ["demo-support", "demo-loop"]


# Backtest.


def test_backtest_answers_in_the_design_shape(client):
    stopped = finished_run(steps=loop_steps(8), ago=5)
    finished_run(steps=loop_steps(5), ago=10)  # 5 tool calls: exactly at the proposed cap
    finished_run(agent="demo-support", steps=loop_steps(8), ago=1)
    response = call(
        client,
        "post",
        "/caps/backtest",
        {"caps": {"max_tool_calls": 5}, "agent": "demo-loop", "last_n": 10},
        key("admin"),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "runs_checked": 2,
        "runs_cut": 1,
        "by_cap": {
            "max_tool_calls": 1,
            "max_cost_usd": 0,
            "max_wall_seconds": 0,
            "max_model_calls": 0,
            "max_tokens": 0,
            "max_repeated_calls": 0,
            "spend_window": 0,
        },
        # The 6th tool call is seq 11; two model calls ($0.001 each) come after it.
        "saved_usd": body["saved_usd"],
        "examples": [{"run_id": str(stopped.id), "cut_at_seq": 11, "cap": "max_tool_calls"}],
    }
    assert Decimal(body["saved_usd"]) == Decimal("0.002")


def test_backtest_of_every_agent_and_of_the_policy_in_force(client):
    token = key("admin")
    finished_run(steps=loop_steps(8))
    finished_run(agent="demo-support", steps=loop_steps(8))
    everyone = call(client, "post", "/caps/backtest", {"caps": {"max_tool_calls": 5}}, token)
    assert (everyone.json()["runs_checked"], everyone.json()["runs_cut"]) == (2, 2)
    in_force = call(client, "post", "/caps/backtest", {}, token).json()
    assert (in_force["runs_checked"], in_force["runs_cut"]) == (2, 0)
    one = call(
        client, "post", "/caps/backtest", {"caps": {"max_tool_calls": 5}, "last_n": 1}, token
    )
    assert one.json()["runs_checked"] == 1


def test_backtest_validates_like_put(client):
    token = key("admin")
    error = assert_error(
        call(
            client,
            "post",
            "/caps/backtest",
            {"caps": {"max_cost_usd": "1.23456", "max_wall_seconds": None}},
            token,
        ),
        422,
        "invalid_caps",
    )
    assert error["details"] == {
        "fields": {
            "max_cost_usd": "must have at most 4 decimal places",
            "max_wall_seconds": "cannot be switched off",
        }
    }
    too_many = call(client, "post", "/caps/backtest", {"last_n": 1001}, token)
    assert_error(too_many, 422, "invalid_input")


# Spend windows.


def test_windows_are_read_with_runs_read_and_changed_with_admin(client):
    reader, admin = key("runs:read"), key("admin")
    body = {"scope": "agent:demo-loop", "period": "day", "limit_usd": "5.00"}
    assert_error(call(client, "post", "/caps/windows", body, reader), 403, "insufficient_scope")
    created = call(client, "post", "/caps/windows", body, admin)
    assert created.status_code == 201, created.content
    window = created.json()
    assert (window["scope"], window["period"], window["limit_usd"]) == ("agent:demo-loop", "day",
                                                                        "5.0000")  # fmt: skip
    assert window["spent"] == "0.000000" and window["reserved"] == "0.000000"
    assert window["resets_at"] > window["period_start"]
    listed = call(client, "get", "/caps/windows", token=reader).json()["items"]
    assert [w["id"] for w in listed] == [window["id"]]
    assert [w["id"] for w in call(client, "get", "/caps", token=reader).json()["windows"]] == [
        window["id"]
    ]
    assert_error(call(client, "post", "/caps/windows", body, admin), 409, "window_exists")
    gone = call(client, "delete", f"/caps/windows/{window['id']}", token=admin)
    assert gone.status_code == 204
    assert_error(call(client, "delete", f"/caps/windows/{window['id']}", token=admin), 404,
                 "not_found")  # fmt: skip


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"scope": "team:a", "period": "day", "limit_usd": "5"}, {"scope"}),
        ({"scope": "global", "period": "year", "limit_usd": "5"}, {"period"}),
        ({"scope": "global", "period": "day", "limit_usd": "-1"}, {"limit_usd"}),
        ({"scope": 7, "period": None, "limit_usd": "lots"}, {"scope", "period", "limit_usd"}),
    ],
)
def test_a_bad_window_is_422_naming_each_field(client, body, fields):
    error = assert_error(call(client, "post", "/caps/windows", body, key("admin")), 422,
                         "invalid_caps")  # fmt: skip
    assert set(error["details"]["fields"]) == fields


def test_a_backtest_may_propose_a_window(client):
    for ago in (30, 20, 10):
        finished_run("demo-loop", [("model", "0.002")], ago=ago)
    body = {"windows": [{"scope": "agent:demo-loop", "period": "day", "limit_usd": "0.004"}]}
    result = call(client, "post", "/caps/backtest", body, key("admin")).json()
    assert result["by_cap"]["spend_window"] == 1
    assert result["examples"][0]["cut_at_seq"] is None  # the newest would not have started
    bad = {"windows": [{"scope": "agent:demo-loop", "period": "day"}]}
    error = assert_error(call(client, "post", "/caps/backtest", bad, key("admin")), 422,
                         "invalid_caps")  # fmt: skip
    assert "windows.0.limit_usd" in error["details"]["fields"]


# Asking a person: on_cap, the timeout, the ceilings and the tools that need approval.


def test_put_carries_the_approval_fields_and_runs_freeze_them(client):
    token = key("admin")
    body = {
        "on_cap": "ask",
        "approval_timeout_seconds": 60,
        "max_extension": {"max_cost_usd": "2", "max_tool_calls": 40},
        "requires_approval": ["lookup_order"],
    }
    response = call(client, "put", "/caps/demo-support", body, token)
    assert response.status_code == 200, response.content
    policy = response.json()["policy"]
    assert policy["on_cap"] == "ask" and policy["approval_timeout_seconds"] == 60
    assert policy["max_extension"] == {"max_tool_calls": 40, "max_cost_usd": "2.00"}
    assert policy["requires_approval"] == ["lookup_order"]
    state = call(client, "get", "/caps", token=token).json()
    assert (
        state["global"]["on_cap"] == "stop" and state["global"]["approval_timeout_seconds"] == 900
    )
    run = run_create(agent="demo-support", input={})
    assert run.approval_policy == {
        "on_cap": "ask",
        "approval_timeout_seconds": 60,
        "max_extension": {"max_tool_calls": 40, "max_cost_usd": "2.00"},
        "requires_approval": ["lookup_order"],
    }
    assert run_create(agent="demo-loop", input={}).approval_policy["on_cap"] == "stop"
    change = CapPolicyChange.objects.filter(scope="demo-support").latest("id")
    assert change.after["on_cap"] == "ask"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"on_cap": "sometimes"}, "on_cap"),
        ({"approval_timeout_seconds": 0}, "approval_timeout_seconds"),
        ({"approval_timeout_seconds": 604801}, "approval_timeout_seconds"),
        ({"max_extension": {"max_wall_seconds": 900}}, "max_extension.max_wall_seconds"),
        ({"max_extension": {"max_cost_usd": "-1"}}, "max_extension.max_cost_usd"),
        ({"max_extension": ["max_cost_usd"]}, "max_extension"),
        ({"requires_approval": ["no_such_tool"]}, "requires_approval"),
    ],
)
def test_bad_approval_fields_are_422_per_field(client, body, field):
    error = assert_error(
        call(client, "put", "/caps/global", body, key("admin")), 422, "invalid_caps"
    )
    assert field in error["details"]["fields"]


def test_the_approval_timeout_bounds_themselves_are_accepted(client):
    for seconds in (1, 604800):
        body = {**FULL_GLOBAL, "approval_timeout_seconds": seconds}
        assert call(client, "put", "/caps/global", body, key("admin")).status_code == 200


def test_a_run_request_cannot_set_on_cap(client):
    body = {"agent": "demo-loop", "caps": {"on_cap": "ask"}}
    assert_error(call(client, "post", "/runs", body, key("runs:write")), 422, "invalid_caps")
