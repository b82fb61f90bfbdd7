"""POST /api/v1/runs/{id}/approval: who may answer, the ceiling at its boundary, the wrong
state, bad bodies in the §9 shape, and what an answer leaves behind (the run's caps, the
question, the audit trail)."""

import pytest

from runs.models import Approval, CapPolicyChange, Run
from runs.services import caps
from runs.services.approvals import DbApprovals
from runs.services.runs import run_create
from tests.ingest.test_caps_api import assert_error, call, key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]
SPEND = "max_cost_usd"


def waiting_run(kind="cap", subject=SPEND) -> Run:
    """A run of demo-spender (on_cap ask, a $1.00 ceiling on spend) holding a call."""
    caps.cap_policy_set(
        scope="demo-spender", values={"on_cap": "ask", "max_extension": {SPEND: "1.00"}}
    )
    run = run_create(agent="demo-spender", input={"question": "q"})
    Run.objects.filter(id=run.id).update(status="running")
    DbApprovals(run_id=run.id).ask(kind=kind, subject=subject, request={"used": "0.49"})
    run.refresh_from_db()
    assert run.status == "awaiting_approval"
    return run


def approve(client, run, body, token=None):
    return call(client, "post", f"/runs/{run.id}/approval", body, token)


def login(client, make_user, role):
    client.force_login(make_user(role))


def test_an_engineer_extends_up_to_the_ceiling_and_the_run_caps_follow(client, make_user):
    run = waiting_run()
    login(client, make_user, "engineer")
    response = approve(client, run, {"decision": "extend", "caps": {SPEND: 1.0}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == "extend" and body["caps"] == {SPEND: "1.00"}
    assert body["by"].startswith("user:") and body["subject"] == SPEND
    run.refresh_from_db()
    assert run.caps[SPEND] == "1.00"
    answer = DbApprovals(run_id=run.id).answer(Approval.objects.get(run=run).id)
    assert answer.decision == "extend" and answer.caps == {SPEND: "1.00"}
    audit = CapPolicyChange.objects.get(scope="approvals")
    assert audit.after == {"run": str(run.id), "decision": "extend", "caps": {SPEND: "1.00"}}
    assert audit.actor == body["by"]


def test_an_extension_above_the_ceiling_is_403_and_changes_nothing(client):
    run = waiting_run()
    error = assert_error(
        approve(client, run, {"decision": "extend", "caps": {SPEND: "1.0001"}}, key("runs:write")),
        403,
        "extension_above_ceiling",
    )
    assert error["details"]["cap"] == SPEND
    assert Approval.objects.get(run=run).decision == ""
    assert Run.objects.get(id=run.id).caps[SPEND] == "0.50"


def test_a_cap_without_a_ceiling_cannot_be_extended(client):
    run = waiting_run(subject="max_tool_calls")
    body = {"decision": "extend", "caps": {"max_tool_calls": 30}}
    assert_error(approve(client, run, body, key("runs:write")), 403, "extension_above_ceiling")


@pytest.mark.parametrize("role, status", [("support", 403), ("engineer", 200), ("admin", 200)])
def test_a_support_user_cannot_answer(client, make_user, role, status):
    run = waiting_run()
    login(client, make_user, role)
    assert approve(client, run, {"decision": "stop"}).status_code == status
    assert Approval.objects.get(run=run).decision == ("stop" if status == 200 else "")


@pytest.mark.parametrize("scopes, status", [(("runs:read",), 403), (("runs:write",), 200)])
def test_a_key_needs_runs_write(client, scopes, status):
    run = waiting_run()
    assert approve(client, run, {"decision": "stop"}, key(*scopes)).status_code == status


def test_a_run_that_awaits_nothing_is_409(client):
    run = run_create(agent="demo-spender", input={})
    response = approve(client, run, {"decision": "stop"}, key("runs:write"))
    assert_error(response, 409, "not_awaiting_approval")


def test_a_second_answer_is_409(client):
    run = waiting_run()
    token = key("runs:write")
    assert approve(client, run, {"decision": "stop"}, token).status_code == 200
    body = {"decision": "extend", "caps": {SPEND: "0.9"}}
    assert_error(approve(client, run, body, token), 409, "not_awaiting_approval")
    assert Approval.objects.get(run=run).decision == "stop"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"decision": "maybe"}, "invalid_input"),
        ({}, "invalid_input"),
        ({"decision": "stop", "extra": 1}, "invalid_input"),
        ({"decision": "extend"}, "invalid_caps"),
        ({"decision": "extend", "caps": {SPEND: "lots"}}, "invalid_caps"),
        ({"decision": "extend", "caps": {SPEND: "0.50"}}, "invalid_caps"),
        ({"decision": "extend", "caps": {"max_wall_seconds": 900}}, "invalid_caps"),
        ({"decision": "extend", "caps": {"nope": 1}}, "invalid_caps"),
        ({"decision": "stop", "caps": {SPEND: "0.9"}}, "invalid_caps"),
        ({"decision": "approve"}, "invalid_decision"),
    ],
)
def test_bad_bodies_are_422_in_the_error_shape(client, body, code):
    run = waiting_run()
    assert_error(approve(client, run, body, key("runs:write")), 422, code)
    assert Approval.objects.get(run=run).decision == ""


def test_a_held_tool_call_is_approved_or_denied_not_extended(client):
    run = waiting_run(kind="tool", subject="refund")
    token = key("runs:write")
    body = {"decision": "extend", "caps": {SPEND: "0.9"}}
    assert_error(approve(client, run, body, token), 422, "invalid_decision")
    response = approve(client, run, {"decision": "deny"}, token)
    assert response.status_code == 200 and response.json()["decision"] == "deny"


def test_an_unknown_run_is_404(client):
    body = {"decision": "stop"}
    path = "/runs/00000000-0000-0000-0000-000000000000/approval"
    assert_error(call(client, "post", path, body, key("runs:write")), 404, "not_found")


def test_the_run_says_what_it_awaits(client):
    run = waiting_run()
    body = call(client, "get", f"/runs/{run.id}", token=key("runs:read")).json()
    assert body["status"] == "awaiting_approval"
    assert body["awaiting"]["kind"] == "cap" and body["awaiting"]["subject"] == SPEND
    assert body["awaiting"]["request"]["used"] == "0.49"
    assert body["approval_policy"]["on_cap"] == "ask"
    approve(client, run, {"decision": "stop"}, key("runs:write"))
    Run.objects.filter(id=run.id).update(status="running")
    assert call(client, "get", f"/runs/{run.id}", token=key("runs:read")).json()["awaiting"] is None
