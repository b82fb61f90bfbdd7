"""Every demo agent (DESIGN §12) ends in its documented state, offline and deterministically."""

from decimal import Decimal

import pytest

from runs.agents import all_agents, get_agent, load_agent_modules
from runs.agents import demo as demo_module
from runs.engine.caps import Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.providers import RecordedProvider

load_agent_modules(["runs.agents.demo"])

# The seeded prices of the scripted models (runs/seed.py).
PRICES = {
    "scripted-mini": (Decimal("0.15"), Decimal("0.60")),
    "scripted-premium": (Decimal("15.00"), Decimal("75.00")),
}
QUESTION = {"question": "Where is my order A-1001? It is three days late."}
DEMOS = [
    "demo-support", "demo-loop", "demo-spender", "demo-slow", "demo-hang", "demo-broken",
    "demo-repeat",
]  # fmt: skip


def run(name, caps=None, *, recorder=None, provider_factory=None, input=QUESTION):
    recorder = recorder or MemoryRecorder()
    kwargs = {"provider_factory": provider_factory} if provider_factory else {}
    outcome = execute(
        get_agent(name), input, caps or Caps(), recorder, price_for=PRICES.get, **kwargs
    )
    assert recorder.running() == []
    return outcome, recorder


def test_the_demo_agents_are_registered_offline():
    registered = {spec.name: spec for spec in all_agents()}
    for name in DEMOS:
        spec = registered[name]
        assert spec.provider == "scripted"
        assert spec.model == ("scripted-premium" if name == "demo-spender" else "scripted-mini")
        assert spec.description
    assert load_agent_modules("runs.agents.demo, ") == ["runs.agents.demo"]  # idempotent


def test_load_agent_modules_names_a_missing_module():
    with pytest.raises(ImportError, match="no_such_agents"):
        load_agent_modules(["no_such_agents"])


def test_demo_support_answers_with_both_tools():
    outcome, rec = run("demo-support")
    assert outcome.status == "succeeded" and outcome.error is None
    assert "A-1001 is shipped with DHL" in outcome.output["answer"]
    assert "kb-12" in outcome.output["answer"]  # the late-delivery policy was found
    assert [s.name for s in rec.of_kind("tool_call")] == ["lookup_order", "search_kb"]
    assert all(s.status == "ok" for s in rec.steps)
    assert rec.of_kind("decision")[0].output["choice"] is False
    assert Decimal("0") < outcome.usage.cost_usd < Decimal("0.01")


def test_demo_support_is_deterministic():
    first, _ = run("demo-support")
    second, _ = run("demo-support")
    assert first.output == second.output
    assert first.usage.cost_usd == second.usage.cost_usd
    assert first.usage.input_tokens == second.usage.input_tokens


def test_demo_loop_is_stopped_by_max_tool_calls_after_exactly_20():
    outcome, rec = run("demo-loop")
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_tool_calls"
    assert outcome.usage.tool_calls == 20
    statuses = [s.status for s in rec.of_kind("tool_call")]
    assert statuses == ["ok"] * 20 + ["cancelled"]
    assert rec.steps[-1].kind == "lifecycle" and rec.steps[-1].name == "max_tool_calls"


def test_demo_spender_never_spends_past_max_cost_usd():
    outcome, rec = run("demo-spender")
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_cost_usd"
    assert outcome.usage.cost_usd <= Decimal("0.50")
    assert outcome.usage.cost_usd > Decimal("0.40")  # it really spent: the cap stopped it
    calls = [s for s in rec.of_kind("model_call") if s.status == "ok"]
    assert 3 <= len(calls) <= 10
    assert all(s.model == "scripted-premium" for s in calls)
    assert sum(s.cost_usd for s in calls) == outcome.usage.cost_usd


@pytest.mark.parametrize("cap", ["0.05", "0.1234", "1"])
def test_demo_spender_respects_lower_and_higher_caps(cap):
    outcome, _ = run("demo-spender", Caps(max_cost_usd=Decimal(cap)))
    assert outcome.cap == "max_cost_usd"
    assert outcome.usage.cost_usd <= Decimal(cap)


def test_demo_slow_is_stopped_by_a_3_s_wall_cap_without_awaiting_its_20_s_step():
    # Where exactly the deadline is seen is tested on an injected clock (engine/test_runner.py);
    # here: the demo ends by the wall cap and abandons the step in flight instead of awaiting it.
    outcome, rec = run("demo-slow", Caps(max_wall_seconds=3))
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_wall_seconds"
    assert 3000 <= outcome.usage.wall_ms < demo_module.SLOW_STEP_SECONDS * 1000
    assert rec.of_kind("tool_call")[-1].status == "timeout"  # the in-flight wait, abandoned
    assert rec.steps[-1].kind == "lifecycle" and rec.steps[-1].name == "max_wall_seconds"


def test_demo_slow_cannot_hit_the_tool_cap_first_at_the_default_caps():
    # Each step takes SLOW_STEP_SECONDS; 20 of them must outlast the default 300 s.
    caps = Caps()
    assert demo_module.SLOW_STEP_SECONDS * caps["max_tool_calls"] > caps["max_wall_seconds"]
    assert caps.timeout_for("wait_for_batch", 30) > demo_module.SLOW_STEP_SECONDS


def test_demo_hang_gets_tool_timeout_and_still_finishes():
    outcome, rec = run("demo-hang")
    assert outcome.status == "succeeded"
    assert "did not answer within 2 s" in outcome.output["answer"]
    step = rec.of_kind("tool_call", "fetch_report")[0]
    assert step.status == "timeout"
    assert step.output == {"error": "tool_timeout", "tool": "fetch_report", "timeout_s": 2}
    # Given up at its timeout, not awaited: the tool would have slept 60 s.
    assert 2 <= step.ended_at - step.started_at < demo_module.HANG_SECONDS / 2


def test_demo_broken_gets_tool_error_and_fails_with_agent_error():
    outcome, rec = run("demo-broken")
    assert outcome.status == "failed"
    assert outcome.error["code"] == "agent_error"
    assert "HTTP 502" in outcome.error["message"]
    step = rec.of_kind("tool_call", "refund_order")[0]
    assert step.status == "error" and step.output["error"] == "tool_error"


def test_a_demo_run_replays_from_its_recording_until_a_tool_changes(monkeypatch):
    original, rec = run("demo-support")
    recording = [(s.input, s.output) for s in rec.of_kind("model_call")]

    def recorded(spec):
        return RecordedProvider(recording)

    replay, _ = run("demo-support", provider_factory=recorded)
    assert replay.status == "succeeded" and replay.output == original.output

    # A "fixed" tool now answers differently: the replay notices at the next model call.
    monkeypatch.setitem(demo_module._ORDERS, "A-1001", {**demo_module._ORDERS["A-1002"]})
    diverged, rec = run("demo-support", provider_factory=recorded)
    assert diverged.status == "failed" and diverged.error["divergence"]["index"] == 1
    assert rec.of_kind("error", "recording_diverged")


def test_demo_repeat_is_told_on_the_4th_identical_call_and_stopped_on_the_5th():
    outcome, rec = run("demo-repeat")
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_repeated_calls"
    calls = rec.of_kind("tool_call", "lookup_order")
    assert [c.status for c in calls] == ["ok", "ok", "ok", "error", "cancelled"]
    assert calls[3].output == {"error": "repeated_call", "tool": "lookup_order", "count": 4}
    assert rec.steps[-1].name == "max_repeated_calls"


def test_demo_loop_never_repeats_itself_so_only_the_tool_cap_stops_it():
    outcome, rec = run("demo-loop")
    keys = [c.attributes["call_key"] for c in rec.of_kind("tool_call") if c.status == "ok"]
    assert len(keys) == 20 and len(set(keys)) == 20
