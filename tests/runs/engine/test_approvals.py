"""Asking a person (runs.engine.approvals, through the runner): a cap held with `on_cap: ask`,
tools that require approval, the timeout on an injected clock, and the checks of an extension.
In memory, no database."""

from decimal import Decimal

import pytest

from runs.agents import AgentSpec
from runs.engine.approvals import (
    ApprovalPolicy,
    Decision,
    MemoryApprovals,
    check_extension,
    clean_approval_fields,
    resolve_approval_policy,
)
from runs.engine.caps import SPEND, TOOL_CALLS, CapError, CapRaiseNotAllowed, Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.engine.tools import register_tool, unregister_tool
from tests.runs.engine.test_runner import ManualClock

PRICES = {"scripted-premium": (Decimal("15.00"), Decimal("75.00"))}
ASK = ApprovalPolicy(on_cap="ask", timeout_s=60, max_extension={TOOL_CALLS.name: 10})
calls: list[dict] = []
DENIED = {"error": "tool_denied", "tool": "t_pay"}


def _pay(amount: int) -> dict:
    calls.append({"amount": amount})
    return {"paid": amount}


@pytest.fixture(autouse=True)
def _tools():
    calls.clear()
    register_tool(_pay, name="t_pay", requires_approval=True)
    register_tool(lambda n: {"n": n}, name="t_count")
    yield
    unregister_tool("t_pay")
    unregister_tool("t_count")


def counting(ctx, input):
    results = [ctx.tool("t_count", {"n": n}) for n in range(input.get("n", 4))]
    return {"calls": len(results), "waited": ctx.budget.seconds}


def run(fn, *, caps, policy, approvals, clock=None, input=None):
    clock = clock or ManualClock()
    recorder = MemoryRecorder(clock=clock)
    spec = AgentSpec(name="t-ask", fn=fn, provider_config={"script": [{"content": "ok"}]})
    outcome = execute(
        spec,
        input or {},
        caps,
        recorder,
        price_for=PRICES.get,
        clock=clock,
        approvals=approvals,
        approval_policy=policy,
        sleep=clock.advance,
    )
    assert recorder.running() == []
    return outcome, recorder


def answering(decision: Decision):
    return MemoryApprovals(on_ask=lambda approvals, ref: approvals.decide(ref, decision))


def test_an_extension_lets_the_held_call_go_on_and_the_run_finish():
    approvals = answering(Decision("extend", by="user:eng", caps={TOOL_CALLS.name: 4}))
    outcome, rec = run(counting, caps=Caps(max_tool_calls=2), policy=ASK, approvals=approvals)
    assert outcome.status == "succeeded" and outcome.output["calls"] == 4
    assert outcome.usage.tool_calls == 4
    (asked,) = approvals.asked
    assert asked["kind"] == "cap" and asked["subject"] == TOOL_CALLS.name
    assert asked["request"]["limit"] == 2 and asked["request"]["used"] == 2
    assert asked["request"]["args"] == {"n": 2}
    (wait,) = rec.of_kind("lifecycle", "awaiting_approval")
    assert wait.status == "ok" and wait.output["by"] == "user:eng"
    assert wait.output["caps"] == {TOOL_CALLS.name: 4}
    # The held call ran once, after the wait.
    assert [s.input["n"] for s in rec.of_kind("tool_call")] == [0, 1, 2, 3]


def test_stop_ends_the_run_budget_exceeded_as_without_asking():
    approvals = answering(Decision("stop", by="user:eng"))
    outcome, rec = run(counting, caps=Caps(max_tool_calls=2), policy=ASK, approvals=approvals)
    assert outcome.status == "budget_exceeded" and outcome.cap == TOOL_CALLS.name
    assert outcome.usage.tool_calls == 2
    assert rec.of_kind("lifecycle", "awaiting_approval")[0].status == "error"


def test_nobody_answering_ends_the_run_at_the_timeout_on_the_runs_clock():
    clock = ManualClock()
    approvals = MemoryApprovals()
    outcome, rec = run(
        counting, caps=Caps(max_tool_calls=2), policy=ASK, approvals=approvals, clock=clock
    )
    assert outcome.status == "budget_exceeded" and outcome.cap == TOOL_CALLS.name
    (wait,) = rec.of_kind("lifecycle", "awaiting_approval")
    assert wait.status == "timeout" and wait.output["decision"] == "timeout"
    assert wait.output["waited_s"] == 60
    assert approvals.closed[0][1].decision == "timeout"


def test_waiting_does_not_count_against_the_wall_clock_cap():
    clock = ManualClock()
    approvals = MemoryApprovals(
        on_ask=lambda a, ref: (
            clock.advance(50),
            a.decide(ref, Decision("extend", by="x", caps={TOOL_CALLS.name: 3})),
        )
    )
    outcome, _ = run(
        counting,
        caps=Caps(max_tool_calls=2, max_wall_seconds=10),
        policy=ASK,
        approvals=approvals,
        clock=clock,
        input={"n": 3},
    )
    assert outcome.status == "succeeded"
    assert outcome.usage.wall_ms < 10_000


def test_with_on_cap_stop_nothing_is_asked():
    approvals = MemoryApprovals()
    policy = ApprovalPolicy(max_extension={TOOL_CALLS.name: 10})
    outcome, rec = run(counting, caps=Caps(max_tool_calls=2), policy=policy, approvals=approvals)
    assert outcome.status == "budget_exceeded" and approvals.asked == []
    assert rec.of_kind("lifecycle", "awaiting_approval") == []


def test_a_cancel_while_waiting_ends_the_run_cancelled():
    clock = ManualClock()
    recorder = MemoryRecorder(clock=clock, cancel_when=lambda r: bool(r.of_kind("lifecycle")))
    spec = AgentSpec(name="t-ask", fn=counting)
    outcome = execute(
        spec, {}, Caps(max_tool_calls=1), recorder, price_for=PRICES.get, clock=clock,
        approvals=MemoryApprovals(), approval_policy=ASK, sleep=clock.advance,
    )  # fmt: skip
    assert outcome.status == "cancelled"
    assert recorder.of_kind("lifecycle", "awaiting_approval")[0].status == "cancelled"


def paying(ctx, input):
    first = ctx.tool("t_pay", {"amount": 5})
    return {"first": first, "after": ctx.tool("t_count", {"n": 1})}


@pytest.mark.parametrize(
    ("answer", "result", "status"),
    [
        (Decision("approve", by="user:eng"), {"paid": 5}, "ok"),
        (Decision("deny", by="user:eng"), DENIED | {"by": "user:eng"}, "error"),
        (None, DENIED | {"by": "timeout"}, "timeout"),
    ],
)  # fmt: skip
def test_a_tool_that_requires_approval_waits_and_the_agent_goes_on(answer, result, status):
    approvals = answering(answer) if answer else MemoryApprovals()
    outcome, rec = run(
        paying, caps=Caps(), policy=ApprovalPolicy(timeout_s=30), approvals=approvals
    )
    assert outcome.status == "succeeded"
    assert outcome.output == {"first": result, "after": {"n": 1}}
    assert calls == ([{"amount": 5}] if answer and answer.decision == "approve" else [])
    pay = rec.of_kind("tool_call", "t_pay")[0]
    (wait,) = rec.of_kind("lifecycle", "awaiting_approval")
    assert wait.parent == pay.seq and wait.status == status
    assert wait.input["kind"] == "tool" and wait.input["subject"] == "t_pay"
    assert wait.input["args"] == {"amount": 5} and wait.input["usage"]["tool_calls"] == 1
    assert pay.output == result


def test_a_policy_can_require_approval_of_any_tool():
    approvals = answering(Decision("deny", by="user:eng"))
    policy = ApprovalPolicy(tools=frozenset({"t_count"}))
    outcome, _ = run(counting, caps=Caps(), policy=policy, approvals=approvals, input={"n": 1})
    assert outcome.status == "succeeded" and len(approvals.asked) == 1


def test_without_anyone_to_ask_a_tool_that_requires_approval_is_denied():
    outcome, _ = run(paying, caps=Caps(), policy=ApprovalPolicy(), approvals=None)
    assert outcome.output["first"]["error"] == "tool_denied" and calls == []


# Extensions and the policy's fields.


def test_an_extension_is_checked_against_the_ceiling_at_its_boundary():
    policy = ApprovalPolicy(on_cap="ask", max_extension={SPEND.name: Decimal("1.00")})
    caps = Caps(max_cost_usd=Decimal("0.50"))
    assert check_extension(policy, caps, SPEND.name, {SPEND.name: "1.00"}) == {
        SPEND.name: Decimal("1.00")
    }
    with pytest.raises(CapRaiseNotAllowed):
        check_extension(policy, caps, SPEND.name, {SPEND.name: "1.0001"})
    with pytest.raises(CapRaiseNotAllowed):  # no ceiling set for it
        check_extension(policy, caps, TOOL_CALLS.name, {TOOL_CALLS.name: 30})
    with pytest.raises(CapError) as not_above:
        check_extension(policy, caps, SPEND.name, {SPEND.name: "0.50"})
    assert not isinstance(not_above.value, CapRaiseNotAllowed)
    with pytest.raises(CapError):
        check_extension(policy, caps, SPEND.name, {})


def test_approval_fields_are_cleaned_with_one_message_per_field():
    errors = {}
    out = clean_approval_fields(
        {"on_cap": "maybe", "approval_timeout_seconds": "0",
         "max_extension": {SPEND.name: "-1", "max_wall_seconds": 10, "nope": 1},
         "requires_approval": ["t_pay", "missing"]},
        complete=True, tools={"t_pay"}, errors=errors,
    )  # fmt: skip
    assert set(errors) == {
        "on_cap", "approval_timeout_seconds", f"max_extension.{SPEND.name}",
        "max_extension.max_wall_seconds", "max_extension.nope", "requires_approval",
    }  # fmt: skip
    assert out["requires_approval"] == ["t_pay"]
    fine = clean_approval_fields({}, complete=True, tools=set(), errors=errors)
    assert fine["on_cap"] == "stop" and fine["approval_timeout_seconds"] == 900


def test_an_agents_values_win_over_the_global_ones():
    policy = resolve_approval_policy(
        {"on_cap": "stop", "approval_timeout_seconds": 900,
         "max_extension": {SPEND.name: "2.00"}, "requires_approval": ["a"]},
        {"on_cap": "ask", "approval_timeout_seconds": None,
         "max_extension": {TOOL_CALLS.name: 40}, "requires_approval": ["b"]},
    )  # fmt: skip
    assert policy.on_cap == "ask" and policy.timeout_s == 900
    assert policy.max_extension == {SPEND.name: Decimal("2.00"), TOOL_CALLS.name: 40}
    assert policy.tools == {"a", "b"}
    assert ApprovalPolicy.from_dict(policy.to_dict()) == policy
