"""The runner (runs.engine.runner, runs.engine.context): caps at their boundaries, timeouts,
cancel, errors, and what gets recorded. In memory, no database.

Timeouts and the wall-clock cap are tested on an injected clock that the test moves (ManualClock):
what is asserted is where, on the run's own clock, a call was given up, never how long the test
took."""

import asyncio
import math
import threading
import time
from decimal import Decimal

import pytest

from runs.agents import AgentSpec
from runs.engine import context
from runs.engine.caps import Caps
from runs.engine.recorder import MemoryRecorder
from runs.engine.runner import execute
from runs.engine.tools import register_tool, unregister_tool
from runs.providers import RecordedProvider, ScriptedProvider

PRICES = {"scripted-mini": (Decimal("0.15"), Decimal("0.60"))}
_registered: list[str] = []


class ManualClock:
    """A monotonic clock that only moves when told: `advance(seconds)`, from any thread."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def hanging(clock: ManualClock, seconds: float, release: threading.Event):
    """A call that takes `seconds` on the run's clock, then hangs until `release` is set."""

    def call(**kwargs):
        clock.advance(seconds)
        release.wait(60)
        return {"late": True}

    return call


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()  # let abandoned calls' threads end


@pytest.fixture(autouse=True)
def _forget_tools():
    yield
    while _registered:
        unregister_tool(_registered.pop())


def add_tool(name, fn, *, timeout=None, schema=None):
    _registered.append(name)
    register_tool(fn, name=name, timeout=timeout, schema=schema)


def run(
    fn,
    caps=None,
    recorder=None,
    *,
    script=None,
    tools=(),
    provider=None,
    input=None,
    clock=None,
    spend_guard=None,
):
    spec = AgentSpec(
        name="t-agent",
        fn=fn,
        tools=tuple(tools),
        provider_config={"script": script if script is not None else []},
    )
    recorder = recorder or MemoryRecorder(**({"clock": clock} if clock else {}))
    factory = (lambda spec: provider) if provider is not None else None
    kwargs = {"provider_factory": factory} if factory else {}
    if clock is not None:
        kwargs["clock"] = clock
    if spend_guard is not None:
        kwargs["spend_guard"] = spend_guard
    outcome = execute(spec, input or {}, caps or Caps(), recorder, price_for=PRICES.get, **kwargs)
    assert recorder.running() == [], "every started step must have ended"
    return outcome, recorder


def echo(**kwargs):
    return kwargs


# Success, outputs, errors.


def test_a_plain_agent_succeeds_with_its_output():
    def agent(ctx, input):
        ctx.log("starting", n=1)
        ctx.decide("route", "fast", reason="small input")
        return {"echo": input["q"], "left": ctx.budget.tool_calls}

    outcome, rec = run(agent, input={"q": "hi"})
    assert outcome.status == "succeeded"
    assert outcome.output == {"echo": "hi", "left": 20}
    assert outcome.error is None
    assert [(s.kind, s.name, s.status) for s in rec.steps] == [
        ("log", "starting", "ok"),
        ("decision", "route", "ok"),
    ]
    assert rec.steps[0].input == {"message": "starting", "data": {"n": 1}}
    assert rec.steps[1].output == {"choice": "fast", "reason": "small input"}
    assert outcome.usage.wall_ms >= 0 and rec.usage_updates[-1] == outcome.usage


def test_an_agent_exception_fails_the_run_with_agent_error():
    def agent(ctx, input):
        raise KeyError("customer_id")

    outcome, rec = run(agent)
    assert outcome.status == "failed"
    assert outcome.error == {"code": "agent_error", "message": "'customer_id'", "type": "KeyError"}
    error_step = rec.of_kind("error")[0]
    assert error_step.status == "error" and "KeyError" in error_step.attributes["traceback"]


def test_output_that_is_not_json_fails_the_run():
    outcome, _ = run(lambda ctx, input: {"when": object()})
    assert outcome.status == "failed" and outcome.error["code"] == "agent_error"
    assert "not JSON-serializable" in outcome.error["message"]


def test_decimal_output_is_kept_as_a_string():
    outcome, _ = run(lambda ctx, input: {"total": Decimal("1.10")})
    assert outcome.output == {"total": "1.10"}


# Tools.


def test_tool_results_and_structured_errors_reach_the_agent():
    add_tool("t-echo", echo, schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    add_tool("t-raise", lambda: 1 / 0)
    seen = {}

    def agent(ctx, input):
        seen["ok"] = ctx.tool("t-echo", {"n": 2})
        seen["bad_args"] = ctx.tool("t-echo", {"n": "two"})
        seen["raised"] = ctx.tool("t-raise")
        seen["unknown"] = ctx.tool("t-nope", {})
        return "done"

    outcome, rec = run(agent)
    assert outcome.status == "succeeded"
    assert seen["ok"] == {"n": 2}
    assert seen["bad_args"]["error"] == "tool_error"
    assert "n: expected integer" in seen["bad_args"]["message"]
    assert seen["raised"] == {
        "error": "tool_error",
        "tool": "t-raise",
        "message": "ZeroDivisionError: division by zero",
    }
    assert seen["unknown"]["error"] == "unknown_tool"
    assert [s.status for s in rec.of_kind("tool_call")] == ["ok", "error", "error", "error"]
    assert outcome.usage.tool_calls == 4  # every attempt counts


def test_tools_outside_the_agents_list_are_unknown_to_it():
    add_tool("t-echo", echo)
    outcome, rec = run(lambda ctx, input: ctx.tool("t-echo", {}), tools=["t-other"])
    assert outcome.output["error"] == "unknown_tool"
    assert "not available to this agent" in outcome.output["message"]


def test_a_tool_result_that_is_not_json_is_recorded_as_text():
    add_tool("t-odd", lambda: {"x": math.nan, "when": Decimal("1.5")})
    outcome, rec = run(lambda ctx, input: ctx.tool("t-odd"))
    assert outcome.output == {"x": "nan", "when": "1.5"}
    assert rec.of_kind("tool_call")[0].output == outcome.output


def test_exactly_20_tool_calls_then_the_21st_is_refused_and_recorded():
    calls, swallowed = [], []
    add_tool("t-count", lambda: calls.append(1) or len(calls))

    def agent(ctx, input):
        for _ in range(25):
            try:
                ctx.tool("t-count")
            except Exception:  # an agent cannot swallow the stop this way
                swallowed.append(1)
        return "finished anyway"

    outcome, rec = run(agent, Caps(max_repeated_calls=None))  # the same call: no loop breaker
    assert swallowed == []
    assert outcome.status == "budget_exceeded"
    assert outcome.error == {
        "code": "budget_exceeded",
        "message": "tool call 21 refused: the limit is 20 per run",
        "cap": "max_tool_calls",
        "limit": 20,
        "used": 20,
    }
    assert outcome.cap == "max_tool_calls"
    assert len(calls) == 20 and outcome.usage.tool_calls == 20
    tool_steps = rec.of_kind("tool_call")
    assert [s.status for s in tool_steps] == ["ok"] * 20 + ["cancelled"]
    assert tool_steps[-1].attributes == {"refused": True, "cap": "max_tool_calls"}
    lifecycle = rec.of_kind("lifecycle")
    assert [(s.name, s.status) for s in lifecycle] == [("max_tool_calls", "error")]
    assert lifecycle[0].input == {"cap": "max_tool_calls", "limit": 20, "used": 20}


def test_a_stop_swallowed_with_base_exception_still_ends_the_run():
    add_tool("t-echo", echo)

    def agent(ctx, input):
        for _ in range(5):
            try:
                ctx.tool("t-echo")
            except BaseException:  # noqa: BLE001 - the point of the test
                pass
        return "pretended to finish"

    outcome, rec = run(agent, Caps(max_tool_calls=2))
    assert outcome.status == "budget_exceeded" and outcome.output is None
    assert len(rec.of_kind("tool_call")) == 3  # 2 made, 1 refused; later calls record nothing
    assert len(rec.of_kind("lifecycle")) == 1


def test_a_sync_tool_past_its_timeout_gives_tool_timeout_and_the_run_goes_on(release):
    clock = ManualClock()
    add_tool("t-stuck", hanging(clock, 5.5, release), timeout=5)
    add_tool("t-echo", echo)

    def agent(ctx, input):
        first = ctx.tool("t-stuck")
        return {"first": first, "then": ctx.tool("t-echo", {"a": 1})}

    outcome, rec = run(agent, clock=clock)
    assert outcome.status == "succeeded"
    assert outcome.output["first"] == {"error": "tool_timeout", "tool": "t-stuck", "timeout_s": 5}
    assert outcome.output["then"] == {"a": 1}
    assert not release.is_set()  # the run went on while the tool still hangs
    stuck = rec.of_kind("tool_call", "t-stuck")[0]
    assert stuck.status == "timeout" and stuck.attributes["timeout_s"] == 5
    assert stuck.ended_at - stuck.started_at == 5.5  # given up at the first look past 5 s


def test_a_tool_that_answers_just_in_time_is_not_timed_out(release):
    clock = ManualClock()

    def just_in_time():
        clock.advance(4.999)
        return {"ok": True}

    add_tool("t-prompt", just_in_time, timeout=5)
    outcome, _ = run(lambda ctx, input: ctx.tool("t-prompt"), clock=clock)
    assert outcome.output == {"ok": True}


def test_an_async_tool_runs_and_is_cancelled_at_its_timeout():
    state = {}

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def quick(n: int):
        await asyncio.sleep(0.01)
        return n + 1

    add_tool("t-async-slow", slow, timeout=0.3)  # on the real clock: coroutines cannot move ours
    add_tool("t-async-quick", quick)

    def agent(ctx, input):
        return [ctx.tool("t-async-quick", {"n": 1}), ctx.tool("t-async-slow")]

    outcome, rec = run(agent)
    assert outcome.status == "succeeded"
    assert outcome.output[0] == 2
    assert outcome.output[1] == {"error": "tool_timeout", "tool": "t-async-slow", "timeout_s": 0.3}
    deadline = time.monotonic() + 2
    while "cancelled" not in state and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state.get("cancelled") is True


def test_an_async_tool_that_raises_gives_tool_error():
    async def broken():
        raise ValueError("bad upstream")

    add_tool("t-async-broken", broken)
    outcome, _ = run(lambda ctx, input: ctx.tool("t-async-broken"))
    assert outcome.output["message"] == "ValueError: bad upstream"


def test_a_per_tool_timeout_in_the_caps_wins_over_the_declared_one():
    add_tool("t-slowish", lambda: time.sleep(0.6) or "finished", timeout=0.2)
    outcome, _ = run(lambda ctx, input: ctx.tool("t-slowish"), Caps(tool_timeouts={"t-slowish": 2}))
    assert outcome.output == "finished"


def test_the_runner_checks_in_between_slices_while_a_call_hangs(monkeypatch):
    # (A database recorder writes a hanging step as running on its own: services.recording.)
    monkeypatch.setattr(context, "POLL_S", 0.1)
    seen = []

    def watch(rec):
        if rec.steps and rec.steps[-1].kind == "tool_call":
            seen.append(rec.steps[-1].status)
        return False

    add_tool("t-stuck", lambda: time.sleep(0.5) or "late", timeout=5)
    outcome, _ = run(
        lambda ctx, input: ctx.tool("t-stuck"), recorder=MemoryRecorder(cancel_when=watch)
    )
    assert outcome.output == "late"
    assert "running" in seen


def test_the_recorder_is_only_called_from_the_executing_thread():
    class Checking(MemoryRecorder):
        def __init__(self):
            super().__init__()
            self.threads = set()

        def step_started(self, *args, **kwargs):
            self.threads.add(threading.get_ident())
            return super().step_started(*args, **kwargs)

        def cancel_requested(self):
            self.threads.add(threading.get_ident())
            return super().cancel_requested()

    add_tool("t-echo", echo)
    rec = Checking()
    script = [{"tool_calls": [{"name": "t-echo", "arguments": {}}]}, {"content": "ok"}]

    def agent(ctx, input):
        ctx.tool("t-echo")
        return ctx.model([{"role": "user", "content": "x"}]).content

    run(agent, recorder=rec, script=script)
    assert rec.threads == {threading.get_ident()}


def test_a_failing_recorder_is_raised_to_the_caller_not_the_agent():
    class Broken(MemoryRecorder):
        def step_started(self, *args, **kwargs):
            raise ConnectionError("database is gone")

    caught = []

    def agent(ctx, input):
        try:
            ctx.log("hello")
        except Exception as exc:  # must not see the recorder's failure
            caught.append(exc)
        return "ok"

    with pytest.raises(ConnectionError, match="database is gone"):
        execute(AgentSpec(name="t", fn=agent), {}, Caps(), Broken(), price_for=PRICES.get)
    assert caught == []


# Model calls and their caps.


def _chatty(ctx, input):
    answers = []
    while True:
        answers.append(ctx.model([{"role": "user", "content": f"turn {len(answers)}"}]).content)


def test_model_calls_boundary():
    outcome, rec = run(_chatty, Caps(max_model_calls=3), script=[{"content": "hi"}] * 10)
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_model_calls"
    assert (outcome.error["limit"], outcome.error["used"]) == (3, 3)
    steps = rec.of_kind("model_call")
    assert [s.status for s in steps] == ["ok", "ok", "ok", "cancelled"]
    assert outcome.usage.model_calls == 3


def test_model_steps_record_tokens_and_cost():
    outcome, rec = run(
        lambda ctx, input: ctx.model([{"role": "user", "content": "hello"}], max_tokens=50).content,
        script=[{"content": "x" * 40}],
    )
    step = rec.of_kind("model_call")[0]
    assert step.model == "scripted-mini" and step.status == "ok"
    assert step.input["messages"] == [{"role": "user", "content": "hello"}]
    assert step.input["max_tokens"] == 50
    assert step.output["content"] == "x" * 40
    assert (step.input_tokens, step.output_tokens) == (outcome.usage.input_tokens, 11)
    assert step.cost_usd == outcome.usage.cost_usd > 0


def test_run_token_cap_is_never_passed():
    limit = 600
    outcome, rec = run(_chatty, Caps(max_tokens=limit), script=[{"content": "y" * 400}] * 50)
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_tokens"
    assert outcome.usage.input_tokens + outcome.usage.output_tokens <= limit
    assert outcome.error["limit"] == limit
    # The last call that ran was clamped below what the script wanted to say.
    ok = [s for s in rec.of_kind("model_call") if s.status == "ok"]
    assert ok[-1].output["finish_reason"] == "length"
    assert ok[-1].attributes["requested_max_tokens"] is None


def test_spend_is_clamped_and_stops_at_the_cost_cap():
    prices = {"scripted-mini": (Decimal("15"), Decimal("75"))}
    spec = AgentSpec(
        name="t", fn=_chatty, provider_config={"script": [{"content": "z" * 4000}], "loop": True}
    )
    rec = MemoryRecorder()
    outcome = execute(spec, {}, Caps(max_cost_usd=Decimal("0.2")), rec, price_for=prices.get)
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_cost_usd"
    assert outcome.usage.cost_usd <= Decimal("0.2")
    assert sum(s.cost_usd or 0 for s in rec.of_kind("model_call")) == outcome.usage.cost_usd
    assert rec.of_kind("lifecycle")[0].name == "max_cost_usd"


def test_an_unpriced_model_is_recorded_as_such():
    outcome, rec = run(
        lambda ctx, input: ctx.model([], model="local-llama").content, script=[{"content": "hi"}]
    )
    step = rec.of_kind("model_call")[0]
    assert step.attributes == {"price_unknown": True} and step.cost_usd is None
    assert outcome.usage.cost_usd == 0


def test_provider_failure_fails_the_run_with_provider_error():
    outcome, rec = run(_chatty, script=[{"content": "only one"}])
    assert outcome.status == "failed"
    assert outcome.error["code"] == "provider_error"
    assert "no response #2" in outcome.error["message"]
    assert [s.status for s in rec.of_kind("model_call")] == ["ok", "error"]


def test_a_provider_that_cannot_be_built_is_a_provider_error():
    spec = AgentSpec(name="t", fn=_chatty, provider="openai")  # no base_url configured
    outcome = execute(spec, {}, Caps(), MemoryRecorder(), price_for=PRICES.get)
    assert outcome.status == "failed" and outcome.error["code"] == "provider_error"
    assert "base_url" in outcome.error["message"]


def test_a_replay_that_diverges_is_recorded_and_fails():
    provider = RecordedProvider([([{"role": "user", "content": "turn 0"}], {"content": "a"})])
    outcome, rec = run(_chatty, provider=provider)
    assert outcome.status == "failed" and outcome.error["code"] == "provider_error"
    assert outcome.error["divergence"]["index"] == 1
    diverged = rec.of_kind("error", "recording_diverged")
    assert len(diverged) == 1 and diverged[0].input["index"] == 1


# The wall clock and cancel.


class HangingProvider:
    """A model provider whose call takes `seconds` on the run's clock, then hangs."""

    def __init__(self, clock, seconds, release):
        self.complete = hanging(clock, seconds, release)


def test_the_wall_cap_abandons_a_slow_model_call_at_the_deadline(release):
    clock = ManualClock()
    provider = HangingProvider(clock, 30.5, release)
    outcome, rec = run(_chatty, Caps(max_wall_seconds=30), provider=provider, clock=clock)
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_wall_seconds"
    assert outcome.usage.wall_ms == 30_500 and not release.is_set()
    step = rec.of_kind("model_call")[0]
    assert step.status == "timeout" and step.error["cap"] == "max_wall_seconds"
    assert rec.of_kind("lifecycle")[0].name == "max_wall_seconds"


def test_the_wall_cap_beats_a_longer_tool_timeout(release):
    clock = ManualClock()
    add_tool("t-sleep", hanging(clock, 10, release), timeout=20)
    outcome, rec = run(
        lambda ctx, input: ctx.tool("t-sleep"), Caps(max_wall_seconds=10), clock=clock
    )
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_wall_seconds"
    assert outcome.usage.wall_ms == 10_000
    step = rec.of_kind("tool_call")[0]
    assert step.status == "timeout" and step.error["cap"] == "max_wall_seconds"


def test_cancel_stops_a_hanging_tool_call_and_records_it_cancelled(release):
    rec = MemoryRecorder()

    def hangs_then_is_cancelled():
        rec.request_cancel()  # arrives while the call hangs
        release.wait(60)

    add_tool("t-sleep", hangs_then_is_cancelled, timeout=20)
    outcome, rec = run(lambda ctx, input: ctx.tool("t-sleep"), recorder=rec)
    assert outcome.status == "cancelled"
    assert outcome.error["code"] == "cancelled"
    assert not release.is_set()  # ended while the tool still hangs
    assert rec.of_kind("tool_call")[0].status == "cancelled"
    assert [(s.name, s.status) for s in rec.of_kind("lifecycle")] == [("cancelled", "cancelled")]


def test_cancel_stops_the_agent_at_its_next_step():
    def agent(ctx, input):
        for i in range(1000):
            ctx.log(f"step {i}")
        return "never"

    rec = MemoryRecorder(cancel_when=lambda r: len(r.steps) >= 5)
    outcome, rec = run(agent, recorder=rec)
    assert outcome.status == "cancelled"
    assert len(rec.of_kind("log")) == 5


def test_a_cancel_requested_before_the_start_runs_nothing():
    ran = []
    rec = MemoryRecorder()
    rec.request_cancel()
    outcome, rec = run(lambda ctx, input: ran.append(1), recorder=rec)
    assert outcome.status == "cancelled" and ran == []


def test_a_deadline_passed_between_steps_stops_the_next_one():
    clock = ManualClock()

    def agent(ctx, input):
        ctx.log("first")
        clock.advance(2)  # agent code itself overruns: the next ctx call stops it
        ctx.log("second")

    outcome, rec = run(agent, Caps(max_wall_seconds=2), clock=clock)
    assert outcome.status == "budget_exceeded" and outcome.cap == "max_wall_seconds"
    assert [s.name for s in rec.of_kind("log")] == ["first"]


def test_scripted_provider_can_be_passed_directly():
    provider = ScriptedProvider([{"content": "direct"}])
    outcome, _ = run(lambda ctx, input: ctx.model([]).content, provider=provider)
    assert outcome.output == "direct"


# The loop breaker: identical tool calls past max_repeated_calls.


def test_the_4th_identical_call_is_refused_and_the_5th_ends_the_run():
    calls, answers = [], []
    add_tool("t-same", lambda a, b: calls.append((a, b)) or "ok")

    def agent(ctx, input):
        for i in range(10):
            # Key order and whitespace do not make a call another call.
            args = {"a": 1, "b": 2} if i % 2 else {"b": 2, "a": 1}
            answers.append(ctx.tool("t-same", args))

    outcome, rec = run(agent)  # the default cap: 3
    assert calls == [(1, 2)] * 3
    assert answers == ["ok"] * 3 + [{"error": "repeated_call", "tool": "t-same", "count": 4}]
    assert outcome.status == "budget_exceeded"
    assert outcome.error["cap"] == "max_repeated_calls"
    assert (outcome.error["limit"], outcome.error["used"]) == (3, 5)
    assert outcome.usage.tool_calls == 3  # refused repeats were never executed
    steps = rec.of_kind("tool_call")
    assert [s.status for s in steps] == ["ok"] * 3 + ["error", "cancelled"]
    assert steps[3].output == {"error": "repeated_call", "tool": "t-same", "count": 4}
    assert steps[3].attributes["refused"] and steps[4].attributes["refused"]
    assert len({s.attributes["call_key"] for s in steps}) == 1
    assert rec.steps[-1].kind == "lifecycle" and rec.steps[-1].name == "max_repeated_calls"


def test_an_agent_told_of_a_repeat_may_change_course():
    add_tool("t-poll", lambda page: {"page": page})

    def agent(ctx, input):
        for _ in range(4):
            last = ctx.tool("t-poll", {"page": 1})
        assert last["error"] == "repeated_call"
        return [ctx.tool("t-poll", {"page": n}) for n in (2, 3)]

    outcome, _ = run(agent)
    assert outcome.status == "succeeded" and outcome.output == [{"page": 2}, {"page": 3}]


def test_a_tool_meant_to_be_polled_and_an_off_cap_are_not_stopped():
    add_tool("t-status", lambda: "pending")
    register_tool(lambda: "pending", name="t-status-polled", repeatable=True)
    _registered.append("t-status-polled")

    def poll(name):
        return lambda ctx, input: [ctx.tool(name) for _ in range(8)]

    outcome, _ = run(poll("t-status-polled"))
    assert outcome.status == "succeeded" and outcome.output == ["pending"] * 8
    outcome, _ = run(poll("t-status"), Caps(max_repeated_calls=None))
    assert outcome.status == "succeeded"
    outcome, _ = run(poll("t-status"), Caps(max_repeated_calls=7))
    assert outcome.output[:7] == ["pending"] * 7 and outcome.output[7]["error"] == "repeated_call"


# Spend windows: what a model call holds while it runs.


class FakeGuard:
    """A SpendGuard with one window of `limit` USD, kept in memory."""

    def __init__(self, limit: str):
        from datetime import UTC, datetime

        self.limit, self.spent, self.held, self.log = Decimal(limit), Decimal(0), {}, []
        self.resets_at = datetime(2026, 1, 2, tzinfo=UTC)

    def reserve(self, amount):
        from runs.engine.windows import WindowRefused

        if self.spent + sum(self.held.values()) + amount > self.limit:
            raise WindowRefused(
                scope="global", period="day", limit=self.limit, spent=self.spent,
                reserved=sum(self.held.values()), resets_at=self.resets_at,
            )  # fmt: skip
        ref = len(self.log)
        self.held[ref] = amount
        self.log.append(("reserve", amount))
        return ref

    def settle(self, ref, cost):
        self.held.pop(ref)
        self.spent += cost
        self.log.append(("settle", cost))


def test_each_priced_model_call_holds_its_worst_case_and_settles_to_its_cost():
    from runs.engine.budget import cost_of, input_token_bound

    guard = FakeGuard("1.00")
    outcome, rec = run(_chatty, Caps(max_model_calls=2), script=[{"content": "hi"}] * 2,
                       spend_guard=guard)  # fmt: skip
    calls = rec.of_kind("model_call")
    assert [kind for kind, _ in guard.log] == ["reserve", "settle", "reserve", "settle"]
    first = calls[0]
    worst = cost_of(input_token_bound(first.input["messages"], []), first.input["max_tokens"],
                    PRICES["scripted-mini"])  # fmt: skip
    assert guard.log[0][1] == worst and guard.log[1][1] == first.cost_usd < worst
    assert guard.spent == outcome.usage.cost_usd and guard.held == {}


def test_a_call_that_does_not_fit_a_window_ends_the_run_and_says_which():
    guard = FakeGuard("0.000001")
    outcome, rec = run(_chatty, script=[{"content": "hi"}], spend_guard=guard)
    assert outcome.status == "budget_exceeded" and outcome.error["cap"] == "spend_window"
    assert outcome.error["scope"] == "global" and outcome.error["resets_at"].startswith("2026")
    refused = rec.of_kind("model_call")[0]
    assert refused.status == "cancelled" and refused.attributes["cap"] == "spend_window"
    assert outcome.usage.model_calls == 0 and guard.log == []
    assert rec.steps[-1].kind == "lifecycle" and rec.steps[-1].name == "spend_window"


def test_a_failed_or_abandoned_call_gives_its_hold_back(release):
    from runs.providers import ProviderError

    class Failing:
        def complete(self, **kwargs):
            raise ProviderError("provider_error", "the endpoint answered 500")

    guard = FakeGuard("1.00")
    outcome, _ = run(_chatty, provider=Failing(), spend_guard=guard)
    assert outcome.status == "failed" and guard.log[-1] == ("settle", 0) and guard.held == {}
    clock, guard = ManualClock(), FakeGuard("1.00")
    provider = HangingProvider(clock, 31, release)
    outcome, _ = run(_chatty, Caps(max_wall_seconds=30), provider=provider, clock=clock,
                     spend_guard=guard)  # fmt: skip
    assert outcome.error["cap"] == "max_wall_seconds" and guard.held == {}
