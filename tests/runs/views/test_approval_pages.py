"""A run awaiting approval on the pages: its run page says what it waits on and lets an
engineer answer (not support), the live poll leaves the answer form alone while the question
stands, and the Overview and the Runs list count and filter waiting runs."""

import pytest

from runs.models import Approval, CapPolicyChange, Run
from runs.services import caps
from runs.services.approvals import DbApprovals
from runs.services.runs import run_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]
HTMX = {"HTTP_HX_REQUEST": "true"}
SPEND = "max_cost_usd"


def waiting(kind="cap", subject=SPEND, args=None) -> Run:
    caps.cap_policy_set(
        scope="demo-support", values={"on_cap": "ask", "max_extension": {SPEND: "1.00"}}
    )
    run = run_create(agent="demo-support", input={})
    Run.objects.filter(id=run.id).update(status="running")
    request = {"call": "tool_call", "name": "refund", "limit": "0.50", "used": "0.49"}
    if args is not None:
        request["args"] = args
    DbApprovals(run_id=run.id).ask(kind=kind, subject=subject, request=request)
    return Run.objects.get(id=run.id)


def as_role(client, make_user, role):
    client.force_login(make_user(role))
    return client


def test_the_run_page_says_what_the_run_waits_on_and_offers_the_answer(client, make_user):
    run = waiting(args={"note": "<script>alert(1)</script>"})
    html = as_role(client, make_user, "engineer").get(f"/runs/{run.id}/").content.decode()
    assert 'data-testid="awaiting-approval"' in html
    assert 'data-testid="run-status">awaiting_approval<' in html
    assert f'<strong class="mono">{SPEND}</strong> cap: it has used $0.49 of $0.50' in html
    assert "An admin set the ceiling at $1.00." in html
    assert 'value="extend"' in html and 'value="stop"' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert f"waiting={Approval.objects.get(run=run).id}" in html


def test_support_sees_the_question_but_no_form(client, make_user):
    run = waiting()
    html = as_role(client, make_user, "support").get(f"/runs/{run.id}/").content.decode()
    assert 'data-testid="awaiting-approval"' in html and 'value="extend"' not in html
    response = client.post(f"/runs/{run.id}/approval/", {"decision": "stop"})
    assert response.status_code == 403
    assert Approval.objects.get(run=run).decision == ""


def test_an_engineer_extends_from_the_page(client, make_user):
    run = waiting()
    engineer = as_role(client, make_user, "engineer")
    response = engineer.post(f"/runs/{run.id}/approval/", {"decision": "extend", SPEND: "0.75"})
    assert response.status_code == 302
    question = Approval.objects.get(run=run)
    assert question.decision == "extend" and question.caps == {SPEND: "0.75"}
    assert question.decided_by.groups.filter(name="engineer").exists()
    assert CapPolicyChange.objects.filter(scope="approvals").count() == 1


def test_a_refused_answer_is_shown_in_the_live_part(client, make_user):
    run = waiting()
    engineer = as_role(client, make_user, "engineer")
    body = {"decision": "extend", SPEND: "5.00"}
    html = engineer.post(f"/runs/{run.id}/approval/", body, **HTMX).content.decode()
    assert 'role="alert"' in html and "ceiling of $1.00" in html
    assert Approval.objects.get(run=run).decision == ""


def test_a_tool_question_offers_approve_and_deny(client, make_user):
    run = waiting(kind="tool", subject="refund", args={"amount": 5})
    engineer = as_role(client, make_user, "engineer")
    html = engineer.get(f"/runs/{run.id}/").content.decode()
    assert 'value="approve"' in html and 'value="deny"' in html and 'value="extend"' not in html
    html = engineer.post(f"/runs/{run.id}/approval/", {"decision": "deny"}, **HTMX).content
    assert Approval.objects.get(run=run).decision == "deny"
    assert b"awaiting_approval" in html  # the live part, polling on until the run takes it
    assert b'data-testid="answered">Answered <strong>deny</strong>' in html
    assert b'value="approve"' not in html


def test_the_live_poll_leaves_the_form_alone_while_the_question_stands(client, make_user):
    run = waiting()
    question = Approval.objects.get(run=run)
    engineer = as_role(client, make_user, "engineer")
    url = f"/runs/{run.id}/?part=live&waiting={question.id}"
    assert engineer.get(url, **HTMX).status_code == 204
    Approval.objects.filter(id=question.id).update(decision="stop", closed_at=question.asked_at)
    Run.objects.filter(id=run.id).update(status="running")
    response = engineer.get(url, **HTMX)
    assert (
        response.status_code == 200 and b'data-testid="awaiting-approval"' not in response.content
    )


def test_overview_counts_and_the_runs_list_filters_waiting_runs(client, make_user):
    run = waiting()
    other = run_create(agent="demo-loop", input={})
    viewer = as_role(client, make_user, "support")
    html = viewer.get("/").content.decode()
    assert 'href="/runs/?status=awaiting_approval" data-testid="awaiting-count">1<' in html
    listed = viewer.get("/runs/?status=awaiting_approval").content.decode()
    assert str(run.id) in listed and str(other.id) not in listed
