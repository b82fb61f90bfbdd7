"""runs.engine.backtest: where proposed caps would have cut known runs, computed by hand. No
database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runs.engine.backtest import CAPS_CHECKED, backtest, check_run
from runs.engine.caps import Caps
from runs.engine.windows import Window

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
CAPS = Caps(
    max_tool_calls=3,
    max_cost_usd=Decimal("0.05"),
    max_wall_seconds=10,
    max_model_calls=4,
    max_tokens=1000,
)


def step(seq, kind, at=None, *, cost=None, tokens=(None, None), refused=False, status="ok"):
    at = float(seq) if at is None else at
    return {
        "seq": seq,
        "kind": kind,
        "status": "cancelled" if refused else status,
        "started_at": T0 + timedelta(seconds=at),
        "ended_at": T0 + timedelta(seconds=at + 0.5),
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cost_usd": None if cost is None else Decimal(cost),
        "attributes": {"refused": True, "cap": "x"} if refused else {},
    }


def model(seq, cost=None, tokens=(None, None), at=None, **kw):
    return step(seq, "model_call", at, cost=cost, tokens=tokens, **kw)


def tool(seq, at=None, **kw):
    return step(seq, "tool_call", at, **kw)


def run(run_id, steps, agent="a", duration=None):
    return {"id": run_id, "agent": agent, "started_at": T0, "duration_s": duration, "steps": steps}


# One run per case; the caps are CAPS unless a test says otherwise.
TOOLS_AT_CAP = run("tools-3", [model(0, "0.001"), tool(1), tool(2), tool(3), model(4, "0.001")])
TOOLS_OVER = run(
    "tools-4", [model(0, "0.001"), tool(1), tool(2), tool(3), tool(4), model(5, "0.002"), tool(6)]
)
SPEND_AT_CAP = run("spend-exact", [model(0, "0.02"), model(1, "0.02"), model(2, "0.01")])
SPEND_OVER = run(
    "spend-over", [model(0, "0.02"), model(1, "0.02"), model(2, "0.010001"), model(3, "0.003")]
)
MODEL_CALLS_OVER = run("calls-5", [model(i) for i in range(5)])
TOKENS_AT_CAP = run(
    "tokens-exact",
    [model(0, tokens=(300, 100)), model(1, tokens=(300, 100)), model(2, tokens=(150, 50))],
)
TOKENS_OVER = run(
    "tokens-over",
    [model(0, tokens=(300, 100)), model(1, tokens=(300, 100)), model(2, tokens=(150, 51))],
)
WALL_UNDER = run("wall-under", [tool(0, at=0.0), tool(1, at=5.0), model(2, "0.001", at=9.999)])
WALL_AT = run("wall-at", [tool(0, at=0.0), tool(1, at=5.0), model(2, "0.004", at=10.0)])


@pytest.mark.parametrize(
    "case, cap, seq, saved",
    [
        (TOOLS_AT_CAP, None, None, "0"),
        (TOOLS_OVER, "max_tool_calls", 4, "0.002"),  # the 4th tool call, then $0.002 not spent
        (SPEND_AT_CAP, None, None, "0"),  # exactly $0.05 spent: within
        (SPEND_OVER, "max_cost_usd", 2, "0.013001"),  # the call that passes $0.05 and the next
        (MODEL_CALLS_OVER, "max_model_calls", 4, "0"),  # the 5th model call
        (TOKENS_AT_CAP, None, None, "0"),  # exactly 1,000 tokens: within
        (TOKENS_OVER, "max_tokens", 2, "0"),
        (WALL_UNDER, None, None, "0"),  # started 1 ms before the deadline
        (WALL_AT, "max_wall_seconds", 2, "0.004"),  # started on it: `elapsed >= limit` stops it
    ],
    ids=lambda v: v["id"] if isinstance(v, dict) else None,
)
def test_each_cap_cuts_where_the_runner_would_have_stopped(case, cap, seq, saved):
    check = check_run(case, CAPS)
    assert (check.cap, check.cut_at_seq) == (cap, seq)
    assert check.is_cut is (cap is not None)
    assert check.saved_usd == Decimal(saved)


def test_usage_is_counted_in_full_even_after_the_cut():
    check = check_run(TOOLS_OVER, CAPS)
    assert (check.tool_calls, check.model_calls) == (5, 2)
    assert check.spend_usd == Decimal("0.003")
    assert check.duration_s == 6.5  # no recorded wall time: the last step's end


def test_refused_steps_and_the_cap_hit_record_count_for_nothing():
    # What a run stopped by max_tool_calls=3 stores: three calls, the refused fourth, and the
    # lifecycle step naming the cap, written after the deadline of the proposal.
    stopped = run(
        "stopped-at-3",
        [tool(0), tool(1), tool(2), tool(3, refused=True), step(4, "lifecycle", at=30.0)],
    )
    check = check_run(stopped, CAPS)
    assert check.cap is None and check.tool_calls == 3


def test_a_refused_model_call_costs_nothing_and_is_not_counted():
    refused = model(2, refused=True)
    refused["cost_usd"] = None
    case = run("r", [model(0, "0.02"), model(1, "0.02"), refused, model(3, "0.01")])
    assert check_run(case, CAPS).cap is None  # $0.05 and 3 model calls: within both


def test_when_one_step_passes_several_caps_the_first_the_runner_checks_names_it():
    # At 12 s, a 5th model call that also passes spend and tokens: the deadline comes first.
    case = run(
        "tie",
        [model(i, "0.01", (100, 100), at=float(i)) for i in range(4)]
        + [model(4, "0.02", (300, 0), at=12.0)],
    )
    assert check_run(case, CAPS).cap == "max_wall_seconds"
    # Without the deadline: max_model_calls before max_cost_usd before max_tokens.
    case["steps"][-1]["started_at"] = T0 + timedelta(seconds=4)
    assert check_run(case, CAPS).cap == "max_model_calls"
    loose_calls = CAPS.replace(max_model_calls=None)
    assert check_run(case, loose_calls).cap == "max_cost_usd"
    loose_spend = loose_calls.replace(max_cost_usd=Decimal(1))
    assert check_run(case, loose_spend).cap == "max_tokens"


def test_steps_are_walked_in_seq_order_whatever_order_they_come_in():
    case = run("shuffled", list(reversed(TOOLS_OVER["steps"])))
    check = check_run(case, CAPS)
    assert (check.cap, check.cut_at_seq) == ("max_tool_calls", 4)


def test_off_caps_cut_nothing():
    off = Caps(max_tool_calls=100, max_cost_usd=Decimal(100), max_wall_seconds=3600)
    assert check_run(MODEL_CALLS_OVER, off).cap is None
    assert check_run(TOKENS_OVER, off).cap is None


def test_the_backtest_adds_up_every_run():
    runs = [
        TOOLS_AT_CAP,
        TOOLS_OVER,
        SPEND_AT_CAP,
        SPEND_OVER,
        MODEL_CALLS_OVER,
        TOKENS_AT_CAP,
        TOKENS_OVER,
        WALL_UNDER,
        WALL_AT,
    ]
    result = backtest(runs, lambda agent: CAPS, examples=3)
    assert result.to_dict() == {
        "runs_checked": 9,
        "runs_cut": 5,
        "by_cap": {
            "max_tool_calls": 1,
            "max_cost_usd": 1,
            "max_wall_seconds": 1,
            "max_model_calls": 1,
            "max_tokens": 1,
            "max_repeated_calls": 0,
            "spend_window": 0,
        },
        "saved_usd": Decimal("0.002") + Decimal("0.013001") + Decimal("0.004"),
        # The first three cut runs, in the order given (newest first).
        "examples": [
            {"run_id": "tools-4", "cut_at_seq": 4, "cap": "max_tool_calls"},
            {"run_id": "spend-over", "cut_at_seq": 2, "cap": "max_cost_usd"},
            {"run_id": "calls-5", "cut_at_seq": 4, "cap": "max_model_calls"},
        ],
    }
    assert set(result.by_cap) == set(CAPS_CHECKED)


def test_caps_are_asked_once_per_agent():
    asked = []

    def caps_for(agent):
        asked.append(agent)
        return CAPS if agent == "strict" else Caps()

    runs = [
        run("1", TOOLS_OVER["steps"], agent="strict"),
        run("2", TOOLS_OVER["steps"], agent="loose"),
        run("3", TOOLS_OVER["steps"], agent="strict"),
    ]
    result = backtest(runs, caps_for)
    assert asked == ["strict", "loose"]
    assert [c.run_id for c in result.cut] == ["1", "3"]


def test_no_runs_checked_means_nothing_cut():
    assert backtest([], lambda a: CAPS).to_dict() == {
        "runs_checked": 0,
        "runs_cut": 0,
        "by_cap": dict.fromkeys(CAPS_CHECKED, 0),
        "saved_usd": Decimal(0),
        "examples": [],
    }


def test_recorded_wall_time_is_the_run_duration():
    assert check_run(run("d", [tool(0)], duration=42.5), CAPS).duration_s == 42.5


# Repeated calls and spend windows.


def keyed(seq, key, **kw):
    tool_step = tool(seq, **kw)
    tool_step["attributes"] = {**tool_step["attributes"], "call_key": key}
    return tool_step


def test_the_second_refused_repeat_is_the_cut():
    caps = Caps(max_tool_calls=100, max_repeated_calls=2)
    # k1 three times: the third is refused (not executed, not counted); the fourth cuts.
    steps = [keyed(0, "k1"), keyed(1, "k1"), keyed(2, "k1"), keyed(3, "k2"), keyed(4, "k1")]
    steps += [model(5, "0.003")]
    check = check_run(run("rep", steps), caps)
    assert (check.cap, check.cut_at_seq, check.saved_usd) == (
        "max_repeated_calls",
        4,
        Decimal("0.003"),
    )
    # A first repeat past the cap alone does not cut; nor do calls without a key, nor an off cap.
    assert check_run(run("once", steps[:4]), caps).cap is None
    assert check_run(run("nokeys", [tool(i) for i in range(6)]), caps).cap is None
    assert check_run(run("off", steps), caps.replace(max_repeated_calls=None)).cap is None


def day(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def spender(run_id, start, costs, agent="a", user_ref=""):
    steps = [model(i, cost) for i, cost in enumerate(costs)]
    for s in steps:
        s["started_at"] = start + (s["started_at"] - T0)
    return {"id": run_id, "agent": agent, "started_at": start, "user_ref": user_ref,
            "steps": steps}  # fmt: skip


def test_a_day_window_stops_a_run_mid_way_and_the_next_ones_do_not_start():
    window = Window(scope="agent:a", period="day", limit_usd=Decimal("0.05"))
    runs = [  # newest first, as selectors give them
        spender("next-day", day(30), ["0.01"]),
        spender("fourth", day(4), ["0.001"]),
        spender("third", day(3), ["0.01"]),
        spender("second", day(2), ["0.02", "0.02", "0.01"]),
        spender("first", day(1), ["0.02"]),
        spender("other-agent", day(1.5), ["0.04"], agent="b"),
    ]
    result = backtest(runs, lambda agent: Caps(max_cost_usd=Decimal(1)), windows=[window])
    checks = {c.run_id: c for c in result.checks}
    assert [c.run_id for c in result.checks] == [r["id"] for r in runs]  # order as given
    assert checks["first"].cap is None  # $0.02 of $0.05
    # $0.02 more fits ($0.04); the next $0.02 would make $0.06: cut there, $0.03 not spent.
    second = checks["second"]
    assert (second.cap, second.cut_at_seq) == ("spend_window", 1)
    assert second.saved_usd == Decimal("0.03")
    assert checks["third"].cap is None  # $0.01 makes exactly $0.05: it fits
    fourth = checks["fourth"]  # the window is spent: it would not have started
    assert (fourth.cap, fourth.cut_at_seq, fourth.saved_usd) == (
        "spend_window",
        None,
        Decimal("0.001"),
    )
    assert checks["next-day"].cap is None  # a new period
    assert checks["other-agent"].cap is None  # another scope
    assert result.by_cap["spend_window"] == 2


def test_a_window_cuts_the_model_call_that_would_pass_it():
    window = Window(scope="user:u-1", period="hour", limit_usd=Decimal("0.03"))
    runs = [spender("r", day(1), ["0.02", "0.02", "0.005"], user_ref="u-1")]
    check = backtest(runs, lambda agent: Caps(), windows=[window]).checks[0]
    assert (check.cap, check.cut_at_seq, check.saved_usd) == ("spend_window", 1, Decimal("0.025"))
    other_user = [spender("r", day(1), ["0.02", "0.02"], user_ref="u-2")]
    assert backtest(other_user, lambda agent: Caps(), windows=[window]).checks[0].cap is None


def test_time_awaiting_approval_is_not_on_the_wall_clock():
    wait = {**step(1, "lifecycle", at=1), "name": "awaiting_approval"}
    wait["ended_at"] = T0 + timedelta(seconds=601)  # ten minutes waiting for a person
    steps = [step(0, "tool_call"), wait, step(2, "tool_call", at=605)]
    run = {"id": "r", "agent": "a", "started_at": T0, "steps": steps}
    assert check_run(run, CAPS).cap is None  # 605 s after the start, 5 s of it working
    late = {
        "id": "r",
        "agent": "a",
        "started_at": T0,
        "steps": [*steps, step(3, "tool_call", at=612)],
    }
    assert check_run(late, CAPS).cut_at_seq == 3
