"""Cap arithmetic: which limits a run gets, and whether its next step still fits. Plain Python.

`resolve_caps` turns the global policy, an agent's override and a run's request into frozen `Caps`;
`Budget` (from `runs.budget`, re-exported here) holds those caps with the run's `Usage` and
answers, before every step, whether the step may happen (raising `BudgetExceeded` naming the cap
when it may not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation

from .budget import (
    Budget,
    BudgetExceeded,
    Price,
    Remaining,
    Usage,
    cost_of,
    input_token_bound,
    json_number,
)

__all__ = [
    "Budget",
    "BudgetExceeded",
    "CapError",
    "CapRaiseNotAllowed",
    "Caps",
    "Price",
    "Remaining",
    "Usage",
    "cost_of",
    "input_token_bound",
    "resolve_caps",
]

COST_PLACES = 4  # a cap is set in whole hundredths of a cent at most
MAX_COST_USD = Decimal(1_000_000)
MAX_SECONDS = 7 * 24 * 3600
MAX_COUNT = 1_000_000_000


class CapError(ValueError):
    """A cap value that is malformed, out of range, unknown, or a raise that was not allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CapRaiseNotAllowed(CapError):
    """A request asked for more than the policy allows, and may not raise caps."""


@dataclass(frozen=True)
class Caps:
    """The limits one run gets, frozen when it is created.

    `tool_timeouts` maps a tool name to its timeout in seconds and wins over both the tool's own
    declared timeout and `tool_timeout_seconds`. `max_model_calls` and `max_tokens` (input plus
    output tokens over the whole run) are off when None.
    """

    max_tool_calls: int = 20
    max_cost_usd: Decimal = Decimal("0.50")
    max_wall_seconds: float = 300
    tool_timeout_seconds: float = 10
    tool_timeouts: dict[str, float] = field(default_factory=dict)
    max_model_calls: int | None = None
    max_tokens: int | None = None

    def timeout_for(self, tool_name: str, declared: float | None = None) -> float:
        """Seconds a call of `tool_name` may take: the policy's per-tool timeout, else the timeout
        the tool declared when registered, else `tool_timeout_seconds`."""
        if tool_name in self.tool_timeouts:
            return self.tool_timeouts[tool_name]
        if declared is not None:
            return float(declared)
        return self.tool_timeout_seconds

    def to_dict(self) -> dict:
        """A JSON-safe dict (Decimals as strings) that `from_dict` turns back into equal Caps."""
        return {
            "max_tool_calls": self.max_tool_calls,
            "max_cost_usd": str(self.max_cost_usd),
            "max_wall_seconds": json_number(self.max_wall_seconds),
            "tool_timeout_seconds": json_number(self.tool_timeout_seconds),
            "tool_timeouts": {k: json_number(v) for k, v in sorted(self.tool_timeouts.items())},
            "max_model_calls": self.max_model_calls,
            "max_tokens": self.max_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Caps:
        """Caps from `to_dict` output (or any policy-shaped dict); missing keys take defaults.
        Raises CapError on unknown keys or bad values."""
        return _apply(cls(), data, allow_none_to_clear=True)


def resolve_caps(
    global_policy: Mapping | None,
    agent_policy: Mapping | None,
    requested: Mapping | None,
    *,
    may_raise: bool,
) -> Caps:
    """The caps a run gets: global policy ← agent override ← run request.

    In `global_policy`, None turns an optional cap off; in `agent_policy` and `requested`, None
    means "inherit". `tool_timeouts` merge per tool. A request may only lower a cap (turning on an
    optional cap that was off is lowering) unless `may_raise`; a requested per-tool timeout is
    compared with the policy's timeout for that tool, else tool_timeout_seconds. Raises CapError
    naming the field
    for unknown keys, bad types or ranges, and raises that are not allowed.
    """
    caps = _apply(Caps(), global_policy or {}, allow_none_to_clear=True)
    caps = _apply(caps, agent_policy or {}, allow_none_to_clear=False)
    if not requested:
        return caps
    lowered = _apply(caps, requested, allow_none_to_clear=False)
    if not may_raise:
        for f in fields(Caps):
            if f.name == "tool_timeouts":
                for tool, seconds in lowered.tool_timeouts.items():
                    before = caps.tool_timeouts.get(tool, caps.tool_timeout_seconds)
                    if seconds > before:
                        raise CapRaiseNotAllowed(
                            f"tool_timeouts.{tool}",
                            f"{json_number(seconds)} is above the policy's "
                            f"{json_number(before)}; only an admin may raise a cap",
                        )
                continue
            old, new = getattr(caps, f.name), getattr(lowered, f.name)
            if old is not None and new is not None and new > old:
                raise CapRaiseNotAllowed(
                    f.name,
                    f"{json_number(new)} is above the policy's {json_number(old)}; "
                    "only an admin may raise a cap",
                )
    return lowered


def _apply(caps: Caps, data: Mapping, *, allow_none_to_clear: bool) -> Caps:
    if not isinstance(data, Mapping):
        raise CapError("caps", "must be an object")
    known = {f.name for f in fields(Caps)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CapError(unknown[0], "unknown cap")
    changes: dict = {}
    for name, value in data.items():
        if name == "tool_timeouts":
            if value is None:
                continue
            merged = dict(caps.tool_timeouts)
            merged.update(_tool_timeouts(value))
            changes[name] = merged
            continue
        if value is None:
            if allow_none_to_clear and name in ("max_model_calls", "max_tokens"):
                changes[name] = None
            continue  # the required caps cannot be switched off: None inherits
        changes[name] = _VALIDATORS[name](name, value)
    return replace(caps, **changes)


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CapError(name, "must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise CapError(name, "must be a whole number") from None
    if not 1 <= number <= MAX_COUNT:
        raise CapError(name, f"must be between 1 and {MAX_COUNT}")
    return number


def _seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CapError(name, "must be a number of seconds")
    try:
        number = float(value)
    except ValueError:
        raise CapError(name, "must be a number of seconds") from None
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise CapError(name, f"must be more than 0 and at most {MAX_SECONDS} seconds")
    return int(number) if number.is_integer() else number


def _usd(name: str, value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CapError(name, "must be an amount in USD")
    try:
        # str() first: Decimal(0.1) would carry the binary float's 55 digits.
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise CapError(name, "must be an amount in USD") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_COST_USD:
        raise CapError(name, f"must be between 0 and {MAX_COST_USD}")
    if amount.normalize().as_tuple().exponent < -COST_PLACES:
        raise CapError(name, f"must have at most {COST_PLACES} decimal places")
    return amount


def _tool_timeouts(value) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise CapError("tool_timeouts", "must be an object of tool name to seconds")
    out = {}
    for tool, seconds in value.items():
        if not isinstance(tool, str) or not tool:
            raise CapError("tool_timeouts", "tool names must be non-empty strings")
        out[tool] = _seconds(f"tool_timeouts.{tool}", seconds)
    return out


_VALIDATORS: dict[str, Callable] = {
    "max_tool_calls": _count,
    "max_cost_usd": _usd,
    "max_wall_seconds": _seconds,
    "tool_timeout_seconds": _seconds,
    "max_model_calls": _count,
    "max_tokens": _count,
}
