"""Budget arithmetic (runs.engine.budget): what a run has used, what is left, and whether the
next step fits. No database, no threads."""

import json
import random
from decimal import Decimal

import pytest

from runs.engine.budget import (
    UNASKED_MAX_TOKENS,
    Budget,
    BudgetExceeded,
    Usage,
    cost_of,
    input_token_bound,
)
from runs.engine.caps import Caps

PREMIUM = (Decimal("15"), Decimal("75"))
MINI = (Decimal("0.15"), Decimal("0.60"))


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# Cost.


def test_cost_of_per_million_rounded_to_micro_dollars():
    assert cost_of(1000, 1000, PREMIUM) == Decimal("0.090000")
    assert cost_of(1_000_000, 0, MINI) == Decimal("0.150000")
    assert cost_of(3, 0, MINI) == Decimal("0.000000")  # 0.00000045 rounds down
    assert cost_of(4, 0, MINI) == Decimal("0.000001")  # 0.0000006 rounds up
    assert cost_of(7, 3, PREMIUM).as_tuple().exponent == -6


def test_input_token_bound_counts_utf8_bytes():
    ascii_bound = input_token_bound([{"role": "user", "content": "a" * 100}])
    euro_bound = input_token_bound([{"role": "user", "content": "€" * 100}])
    assert euro_bound - ascii_bound == 200  # three bytes each instead of one
    assert input_token_bound([], [{"name": "t"}]) > input_token_bound([])


# The budget, at each boundary.


def test_tool_calls_1_to_20_pass_and_the_21st_is_refused():
    budget = Budget(Caps())
    for n in range(1, 21):
        assert budget.check_tool_call() == n
    with pytest.raises(BudgetExceeded) as info:
        budget.check_tool_call()
    assert (info.value.cap, info.value.limit, info.value.used) == ("max_tool_calls", 20, 20)
    assert budget.usage.tool_calls == 20  # the refused call is not counted
    assert info.value.to_error()["code"] == "budget_exceeded"


def test_model_calls_boundary():
    budget = Budget(Caps(max_model_calls=3))
    messages = [{"role": "user", "content": "hi"}]
    for _ in range(3):
        budget.check_model_call("m", messages, None, None)
    with pytest.raises(BudgetExceeded) as info:
        budget.check_model_call("m", messages, None, None)
    assert (info.value.cap, info.value.limit, info.value.used) == ("max_model_calls", 3, 3)
    assert budget.usage.model_calls == 3


def test_model_calls_unlimited_by_default():
    budget = Budget(Caps())
    for _ in range(500):
        budget.check_model_call("m", [], None, None)
    assert budget.usage.model_calls == 500


def test_deadline_boundary():
    clock = FakeClock()
    budget = Budget(Caps(max_wall_seconds=300), clock=clock)
    clock.now += 299.999
    budget.check_deadline()
    assert budget.deadline_remaining() == pytest.approx(0.001)
    clock.now += 0.001
    with pytest.raises(BudgetExceeded) as info:
        budget.check_deadline()
    assert info.value.cap == "max_wall_seconds" and info.value.limit == 300


def test_plan_passes_requested_max_tokens_through_when_nothing_limits_it():
    budget = Budget(Caps())
    assert budget.plan_model_call("m", [], None, None) is None
    assert budget.plan_model_call("m", [], 256, None) == 256
    assert budget.plan_model_call("m", [], 256, MINI) == 256  # $0.50 buys far more


def test_plan_always_bounds_an_unasked_call_when_a_price_is_known():
    budget = Budget(Caps(max_cost_usd=Decimal("0.50")))
    # $0.50 buys ~800k tokens: the bound sent is the common models' output ceiling.
    assert budget.plan_model_call("m", [], None, MINI) == UNASKED_MAX_TOKENS
    budget.usage.cost_usd = Decimal("0.499")  # $0.001 buys ~1,600 tokens
    clamp = budget.plan_model_call("m", [], None, MINI)
    assert clamp is not None and clamp < 2000
    assert cost_of(input_token_bound([]), clamp, MINI) <= Decimal("0.001")


def test_hidden_input_tokens_are_reserved_at_the_boundary():
    # A provider billing input it is not sent (a tool-use system prompt) shrinks the allowance by
    # exactly that many input tokens, and can make a call unaffordable.
    budget = Budget(Caps(max_tokens=1000))
    visible = input_token_bound([])
    assert budget.plan_model_call("m", [], None, None) == 1000 - visible
    assert budget.plan_model_call("m", [], None, None, None, 600) == 1000 - visible - 600
    assert budget.plan_model_call("m", [], None, None, None, 999 - visible) == 1
    with pytest.raises(BudgetExceeded) as info:
        budget.plan_model_call("m", [], None, None, None, 1000 - visible)
    assert info.value.cap == "max_tokens"


def test_plan_clamps_output_to_what_the_money_left_buys_exactly():
    budget = Budget(Caps(max_cost_usd=Decimal("0.50")))
    budget.usage.cost_usd = Decimal("0.45")
    messages = [{"role": "user", "content": "x" * 400}]
    bound = input_token_bound(messages)
    allowed = budget.plan_model_call("m", messages, 100_000, PREMIUM)
    left = Decimal("0.05")
    assert cost_of(bound, allowed, PREMIUM) <= left
    assert cost_of(bound, allowed + 1, PREMIUM) > left
    assert 0 < allowed < 100_000
    # A smaller request is not raised to the clamp.
    assert budget.plan_model_call("m", messages, 10, PREMIUM) == 10


def test_plan_refuses_when_not_one_output_token_fits():
    messages = [{"role": "user", "content": "hello"}]
    bound = input_token_bound(messages)
    budget = Budget(Caps(max_cost_usd=Decimal("0.5")))
    # Exactly enough for the input bound plus one output token: allowed, one token.
    budget.usage.cost_usd = Decimal("0.5") - cost_of(bound, 1, PREMIUM)
    assert budget.plan_model_call("m", messages, None, PREMIUM) == 1
    # A micro-dollar less: refused.
    budget.usage.cost_usd += Decimal("0.000001")
    with pytest.raises(BudgetExceeded) as info:
        budget.plan_model_call("m", messages, None, PREMIUM)
    assert info.value.cap == "max_cost_usd"
    assert info.value.limit == "0.5"


def test_plan_refuses_when_the_money_is_spent():
    budget = Budget(Caps(max_cost_usd=Decimal("0.50")))
    budget.usage.cost_usd = Decimal("0.50")
    with pytest.raises(BudgetExceeded) as info:
        budget.check_model_call("m", [], None, MINI)
    assert info.value.used == "0.50"
    assert budget.usage.model_calls == 0


def test_zero_cost_cap_refuses_every_priced_call_but_not_unpriced_ones():
    budget = Budget(Caps(max_cost_usd=Decimal("0")))
    with pytest.raises(BudgetExceeded):
        budget.check_model_call("m", [], None, MINI)
    assert budget.check_model_call("local", [], 50, None) == 50


def test_plan_respects_the_run_token_cap_at_its_boundary():
    messages = [{"role": "user", "content": "hi"}]
    bound = input_token_bound(messages)
    budget = Budget(Caps(max_tokens=bound + 10))
    assert budget.plan_model_call("m", messages, None, None) == 10
    assert budget.plan_model_call("m", messages, 4, None) == 4
    budget.usage.output_tokens = 9
    assert budget.plan_model_call("m", messages, None, None) == 1
    budget.usage.output_tokens = 10
    with pytest.raises(BudgetExceeded) as info:
        budget.plan_model_call("m", messages, None, None)
    assert (info.value.cap, info.value.limit, info.value.used) == ("max_tokens", bound + 10, 10)


def test_spend_never_passes_the_cap_over_many_planned_calls():
    rng = random.Random(7)
    for _ in range(50):
        cap = Decimal(rng.randint(1, 5000)) / 10000
        budget = Budget(Caps(max_cost_usd=cap))
        price = (Decimal(rng.randint(0, 3000)) / 100, Decimal(rng.randint(1, 9000)) / 100)
        while True:
            messages = [{"role": "user", "content": "w" * rng.randint(0, 3000)}]
            try:
                allowed = budget.check_model_call("m", messages, rng.randint(1, 20_000), price)
            except BudgetExceeded:
                break
            # The worst case: every byte a token, every allowed output token used.
            used_in = input_token_bound(messages)
            budget.add_tokens(used_in, allowed, cost_of(used_in, allowed, price))
            assert budget.usage.cost_usd <= cap
        assert budget.usage.cost_usd <= cap


def test_remaining_reports_each_cap():
    clock = FakeClock()
    budget = Budget(Caps(max_model_calls=5, max_tokens=1000, max_wall_seconds=60), clock=clock)
    budget.check_tool_call()
    budget.check_model_call("m", [], None, None)
    budget.add_tokens(100, 50, Decimal("0.01"))
    clock.now += 15
    left = budget.remaining()
    assert left.tool_calls == 19
    assert left.model_calls == 4
    assert left.tokens == 850
    assert left.cost_usd == Decimal("0.49")
    assert left.seconds == pytest.approx(45)
    assert json.dumps(left.to_dict())
    assert Budget(Caps()).remaining().model_calls is None


def test_usage_to_dict_is_json_safe():
    usage = Usage(tool_calls=1, cost_usd=Decimal("0.000123"))
    assert json.loads(json.dumps(usage.to_dict()))["cost_usd"] == "0.000123"
    copy = usage.copy()
    copy.tool_calls = 5
    assert usage.tool_calls == 1
