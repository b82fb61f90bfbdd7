"""Spending against a run's caps: what it has used, what is left, and whether the next step fits.
Plain Python. The caps themselves are declared in `caps`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from decimal import ROUND_HALF_UP, Decimal

from .caps import (
    MODEL_CALLS,
    REPEATS,
    SPEND,
    TOKENS,
    TOOL_CALLS,
    WALL,
    Caps,
    cap_named,
    json_number,
)

MICRO_USD = Decimal("0.000001")
PER_MILLION = Decimal(1_000_000)
MAX_TOKENS_SENT = 1_000_000_000
# With no max_tokens asked for but a cap to keep, at most this many are sent (see plan_model_call).
UNASKED_MAX_TOKENS = 16_384
# Added to the byte-length bound on input tokens: the chat template wraps messages in a few tokens
# of its own that have no bytes in our JSON.
INPUT_TOKEN_MARGIN = 16

Price = tuple[Decimal, Decimal]  # USD per 1M input tokens, per 1M output tokens


class BudgetExceeded(Exception):
    """The next step would pass a cap. `limit` and `used` are JSON-safe (Decimals as strings)."""

    def __init__(self, cap: str, limit, used, message: str | None = None):
        self.cap = cap
        self.limit = json_number(limit)
        self.used = json_number(used)
        self.message = message or f"{cap} reached: used {self.used} of {self.limit}"
        super().__init__(self.message)

    def to_error(self) -> dict:
        """The run's error dict (DESIGN §5)."""
        return {
            "code": "budget_exceeded",
            "message": self.message,
            "cap": self.cap,
            "limit": self.limit,
            "used": self.used,
        }


class RepeatedCall(Exception):
    """A tool call repeated past the repeated-call cap. The first in a run is refused and the
    agent is told (`ends_run` False); a further one ends the run (`exceeded`)."""

    def __init__(self, count: int, limit: int, ends_run: bool):
        super().__init__(f"identical call {count} refused: the limit is {limit}")
        self.count = count
        self.ends_run = ends_run
        self.exceeded = BudgetExceeded(
            REPEATS.name,
            limit,
            count,
            f"identical tool call {count} refused again: the limit is {limit} per run",
        )


def cost_of(input_tokens: int, output_tokens: int, price: Price) -> Decimal:
    """USD for a model call at `price` (USD per 1M input, per 1M output tokens), rounded half-up
    to 6 places. Never decreases when either token count grows."""
    per_in, per_out = price
    raw = (Decimal(input_tokens) * Decimal(per_in) + Decimal(output_tokens) * Decimal(per_out)) / (
        PER_MILLION
    )
    return raw.quantize(MICRO_USD, rounding=ROUND_HALF_UP)


def input_token_bound(messages, tools=None) -> int:
    """An upper bound on the input tokens of a call: byte-level tokenizers never make more tokens
    than there are UTF-8 bytes, and the JSON carries more framing bytes than the chat template
    adds tokens, so bytes of the JSON plus a small margin is safe."""
    payload = json.dumps(
        [messages, tools or []], ensure_ascii=False, separators=(",", ":"), default=str
    )
    return len(payload.encode("utf-8")) + INPUT_TOKEN_MARGIN


@dataclass
class Usage:
    """What a run has consumed so far: the run's counters, as the Run row and the API name them
    (COUNTERS). `wall_ms` is filled in by the runner."""

    tool_calls: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    wall_ms: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def copy(self) -> Usage:
        return replace(self)

    def fields(self, names=None) -> dict:
        """The counters by name (`names`, by default all of them), as the Run row's columns take
        them (cost as a Decimal)."""
        return {name: getattr(self, name) for name in names or COUNTERS}

    def to_dict(self) -> dict:
        return {
            "tool_calls": self.tool_calls,
            "model_calls": self.model_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "wall_ms": self.wall_ms,
        }


# Every counter of a run; the step counters are what its steps add up to (ingested runs).
COUNTERS = tuple(f.name for f in dataclass_fields(Usage))
STEP_COUNTERS = tuple(name for name in COUNTERS if name != "wall_ms")


@dataclass(frozen=True)
class Remaining:
    """What is left of each cap (None: no such cap). What an agent sees as `ctx.budget`."""

    tool_calls: int
    model_calls: int | None
    cost_usd: Decimal
    tokens: int | None
    seconds: float

    def to_dict(self) -> dict:
        return {
            "tool_calls": self.tool_calls,
            "model_calls": self.model_calls,
            "cost_usd": str(self.cost_usd),
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
        }


class Budget:
    """A run's caps, its usage, and its start on a monotonic clock.

    The `check_*` methods are called before a step: they raise BudgetExceeded when the step would
    pass a cap and otherwise count the step. With a tool-call cap of 20, calls 1..20 pass and the
    21st raises. Not thread-safe: one runner thread owns it.
    """

    def __init__(self, caps: Caps, *, clock: Callable[[], float] = time.monotonic):
        self.caps = caps
        self.usage = Usage()
        self._clock = clock
        self.started = clock()
        self._calls_by_key: dict[str, int] = {}
        self._repeats_refused = 0
        self._held_at: float | None = None
        self.waited_s = 0.0  # held for a person (see `hold`)

    def elapsed(self) -> float:
        """Seconds the run has run, not counting time held for a person."""
        now = self._held_at if self._held_at is not None else self._clock()
        return now - self.started

    def hold(self) -> None:
        """Stop the wall clock: the run waits for a person, which the wall-clock cap does not
        count."""
        self._held_at = self._clock()

    def release(self) -> float:
        """Start the wall clock again; returns the seconds it was held."""
        if self._held_at is None:
            return 0.0
        waited = self._clock() - self._held_at
        self.started += waited
        self.waited_s += waited
        self._held_at = None
        return waited

    def extend(self, values: dict) -> None:
        """Raise caps by name (a person's extension, already checked against its ceiling)."""
        typed = {name: cap_named(name).parse(value) for name, value in values.items()}
        self.caps = self.caps.replace(**typed)

    def deadline_remaining(self) -> float:
        """Seconds until the wall-clock cap; negative once it has passed."""
        return self.caps[WALL] - self.elapsed()

    def check_deadline(self) -> None:
        """Raise BudgetExceeded (the wall-clock cap) once the deadline has passed."""
        if self.deadline_remaining() <= 0:
            limit = json_number(self.caps[WALL])
            raise BudgetExceeded(
                WALL.name,
                self.caps[WALL],
                round(self.elapsed(), 3),
                f"the run reached its wall-clock limit of {limit} s",
            )

    def check_tool_call(self) -> int:
        """Admit one more tool call and count it (returns the new count), or raise
        BudgetExceeded (the tool-call cap) without counting."""
        limit = self.caps[TOOL_CALLS]
        if self.usage.tool_calls >= limit:
            raise BudgetExceeded(
                TOOL_CALLS.name,
                limit,
                self.usage.tool_calls,
                f"tool call {self.usage.tool_calls + 1} refused: the limit is {limit} per run",
            )
        self.usage.tool_calls += 1
        return self.usage.tool_calls

    def check_repeat(self, key: str, *, repeatable: bool = False) -> int:
        """Count one more tool call with `key` (see tools.call_key) and return how many there
        have been. Raises RepeatedCall when the count passes the repeated-call cap (not for a
        `repeatable` tool, nor with the cap off); the refused call is not a tool call."""
        count = self._calls_by_key.get(key, 0) + 1
        self._calls_by_key[key] = count
        limit = self.caps[REPEATS]
        if repeatable or limit is None or count <= limit:
            return count
        self._repeats_refused += 1
        raise RepeatedCall(count, limit, ends_run=self._repeats_refused > 1)

    def check_model_call(
        self,
        model: str,
        messages,
        requested_max_tokens: int | None,
        price: Price | None,
        tools=None,
        hidden_input_tokens: int = 0,
        reserve: Callable[[Decimal], None] | None = None,
    ) -> int | None:
        """Admit one more model call and count it, returning the max_tokens to send (None: send
        none). Raises BudgetExceeded (the model-call, spend or token cap) without counting when
        the call may not happen. See `plan_model_call` for the clamp. With a price known,
        `reserve(worst_case_cost)` is called before the call is counted (spend windows); what it
        raises refuses the call the same way."""
        limit = self.caps[MODEL_CALLS]
        if limit is not None and self.usage.model_calls >= limit:
            raise BudgetExceeded(
                MODEL_CALLS.name,
                limit,
                self.usage.model_calls,
                f"model call {self.usage.model_calls + 1} refused: the limit is {limit} per run",
            )
        max_tokens = self.plan_model_call(
            model, messages, requested_max_tokens, price, tools, hidden_input_tokens
        )
        if reserve is not None and price is not None:
            bound = input_token_bound(messages, tools) + hidden_input_tokens
            reserve(cost_of(bound, max_tokens or 0, price))
        self.usage.model_calls += 1
        return max_tokens

    def plan_model_call(
        self,
        model: str,
        messages,
        requested_max_tokens: int | None,
        price: Price | None,
        tools=None,
        hidden_input_tokens: int = 0,
    ) -> int | None:
        """The max_tokens to send so that this call cannot take the run past the spend cap (when
        `price` is known) or the token cap (when set), however many input tokens it really uses.

        Input tokens are bounded by `input_token_bound` plus `hidden_input_tokens`, what the
        provider's API adds to every call unseen (a tool-use system prompt, see
        `providers.base.Provider`); the output allowance is what the rest of
        the budget buys after that. A requested max_tokens is lowered to the allowance. With none
        requested, min(allowance, UNASKED_MAX_TOKENS) is sent: always a bound, so the cap holds
        whatever the model does, and never a number above common models' output limit (an agent
        that wants longer answers asks for them). None: nothing to keep, send nothing.
        Raises BudgetExceeded when not even one output token fits. Counts nothing.
        """
        fits = None
        bound = None
        max_cost, token_cap = self.caps[SPEND], self.caps[TOKENS]
        if price is not None or token_cap is not None:
            bound = input_token_bound(messages, tools) + hidden_input_tokens
        if price is not None:
            left = max_cost - self.usage.cost_usd
            fits = _output_tokens_affordable(left, bound, price)
            if fits < 1:
                raise BudgetExceeded(
                    SPEND.name,
                    max_cost,
                    self.usage.cost_usd,
                    f"model call to {model} refused: ${left} left of ${max_cost} cannot pay for it",
                )
        if token_cap is not None:
            tokens_fit = token_cap - self.usage.tokens - bound
            if tokens_fit < 1:
                raise BudgetExceeded(
                    TOKENS.name,
                    token_cap,
                    self.usage.tokens,
                    f"model call to {model} refused: up to {bound} input tokens would not fit "
                    f"in the {token_cap - self.usage.tokens} tokens left",
                )
            fits = tokens_fit if fits is None else min(fits, tokens_fit)
        if fits is None:
            return requested_max_tokens
        if requested_max_tokens is not None:
            return min(requested_max_tokens, fits)
        return min(fits, UNASKED_MAX_TOKENS)

    def add_tokens(self, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None:
        """Count what a finished model call used."""
        self.usage.input_tokens += max(0, int(input_tokens))
        self.usage.output_tokens += max(0, int(output_tokens))
        self.usage.cost_usd += cost_usd

    def remaining(self) -> Remaining:
        """What is left of each cap, floored at zero."""
        caps, used = self.caps, self.usage
        model_calls, tokens = caps[MODEL_CALLS], caps[TOKENS]
        return Remaining(
            tool_calls=max(0, caps[TOOL_CALLS] - used.tool_calls),
            model_calls=None if model_calls is None else max(0, model_calls - used.model_calls),
            cost_usd=max(Decimal("0"), caps[SPEND] - used.cost_usd),
            tokens=None if tokens is None else max(0, tokens - used.tokens),
            seconds=max(0.0, self.deadline_remaining()),
        )


def _output_tokens_affordable(left: Decimal, input_bound: int, price: Price) -> int:
    """The most output tokens with cost_of(input_bound, n) <= left; 0 when none fit."""
    per_in, per_out = Decimal(price[0]), Decimal(price[1])
    if cost_of(input_bound, 0, price) > left:
        return 0
    if per_out <= 0:
        return MAX_TOKENS_SENT  # free output: only the token cap (if any) limits it
    spare = left * PER_MILLION - Decimal(input_bound) * per_in
    n = int(spare / per_out)
    # cost_of rounds half-up to 6 places, which can add up to half a micro-dollar: step back
    # until the rounded cost fits, then forward while one more token still fits.
    while n > 0 and cost_of(input_bound, n, price) > left:
        n -= 1
    while cost_of(input_bound, n + 1, price) <= left and n < MAX_TOKENS_SENT:
        n += 1
    return n
