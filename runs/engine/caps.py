"""The one cap table, and the caps a run gets. Plain Python.

Every limit a run can carry is declared once here, in `TABLE`, with its type, bounds, unit, label
and help text; validation (API, forms, policy), the budget bars, the backtest, the compare page
and the API schema all derive from it. Adding a cap is one `Cap` entry here plus its enforcement
(in `budget.Budget` and, to take part in backtests, `backtest.check_run`).

Code elsewhere names a cap by its entry (`SPEND`, `TOOL_CALLS`…), never by its name in a string,
so a cap's name is written here and nowhere else in the code.

`Caps` holds one run's values; `resolve_caps` turns the global policy, an agent's override and a
run's request into the `Caps` frozen on the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .sentences import ordinal

COUNT, USD, SECONDS = "count", "usd", "seconds"
USD_PLACES = 4  # a cap is set in whole hundredths of a cent at most
MAX_USD = Decimal("99999.9999")
MAX_COUNT = 1_000_000_000
TOOL_TIMEOUTS = "tool_timeouts"  # per-tool timeouts: {tool name: seconds}, beside the table
# A policy's fields about asking a person, beside the caps (read by `approvals`, not here).
ON_CAP_FIELD, TIMEOUT_FIELD = "on_cap", "approval_timeout_seconds"
EXTENSION_FIELD, TOOLS_FIELD = "max_extension", "requires_approval"
APPROVAL_FIELDS = (ON_CAP_FIELD, TIMEOUT_FIELD, EXTENSION_FIELD, TOOLS_FIELD)
# What a run uses up, as a run's counters say it (see `Cap.measures`).
MEASURES = ("tool_calls", "model_calls", "cost_usd", "tokens", "seconds")


class CapError(ValueError):
    """A cap value that is malformed, out of range, unknown, or a raise that was not allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CapRaiseNotAllowed(CapError):
    """A request asked for more than the policy allows, and may not raise caps."""


@dataclass(frozen=True)
class Cap:
    """One limit. `default` None: off unless set (only an `optional` cap may be off).
    `measures` names what a run uses up against it (one of MEASURES: a budget bar each); a cap
    without one limits each call instead."""

    name: str
    kind: str  # COUNT, USD or SECONDS
    label: str
    help: str
    default: int | Decimal | None
    most: int | Decimal
    measures: str = ""
    optional: bool = False
    least: int = 1
    ends_run: bool = True  # reaching it ends the run (else it limits one call)
    # With the policy's `on_cap: ask`, the call that would pass it is held for a person to
    # extend the cap (up to the policy's `max_extension`) or stop the run.
    askable: bool = False
    # Why a run stopped at this cap, in plain words for support: "{limit}" and "{used}" are the
    # values as `show` writes them, "{nth}" is used + 1 as an ordinal (the call refused: "21st").
    stopped: str = ""

    @property
    def per_run(self) -> bool:
        return bool(self.measures)

    @property
    def unit(self) -> str:
        return {USD: "USD", SECONDS: "s"}.get(self.kind, "")

    @property
    def bounds(self) -> str:
        """The accepted values, in words (forms, API schema, README)."""
        if self.kind == USD:
            return f"USD from 0 to {self.most}, at most {USD_PLACES} decimal places"
        if self.kind == SECONDS:
            return f"whole seconds from {self.least} to {self.most}"
        return f"a whole number from {self.least} to {self.most}"

    def parse(self, value, field: str | None = None):
        """`value` (a JSON value or a form's string) as this cap's type, within its bounds.
        Raises CapError naming `field` (default: the cap's name)."""
        field = field or self.name
        if self.kind == USD:
            return parse_usd(value, field, most=self.most)
        if self.kind == SECONDS:
            return _whole(value, field, self.least, self.most, seconds=True)
        return _whole(value, field, self.least, self.most, seconds=False)

    def to_json(self, value):
        """A value as stored and sent: USD as an exact decimal string, the rest as numbers."""
        if value is None:
            return None
        if self.kind == USD:
            return usd_text(value)
        if isinstance(value, Decimal | float) and value == int(value):
            return int(value)
        return float(value) if isinstance(value, Decimal) else value

    def stop_sentence(self, limit, used) -> str:
        """Why a run stopped here, in plain words, from its error's `limit` and `used`."""
        try:
            nth = ordinal(int(used) + 1)
        except (TypeError, ValueError):
            nth = "next"
        return self.stopped.format(
            limit=self.show(_number(limit), "no limit"),
            used=self.show(_number(used), "nothing"),
            nth=nth,
        )

    def show(self, value, empty: str = "off") -> str:
        """A value as people read it: "$0.50", "300 s", "20"."""
        if value is None:
            return empty
        if self.kind == USD:
            return "$" + usd_text(value)
        if self.kind == SECONDS:
            return f"{Decimal(str(value)).normalize():f} s"
        return str(value)


TOOL_CALLS = Cap(
    "max_tool_calls",
    COUNT,
    "Max tool calls",
    "Tool calls per run; the next one is refused and the run ends.",
    default=20,
    most=MAX_COUNT,
    measures="tool_calls",
    stopped="it tried a {nth} tool call; the limit is {limit} per run",
    askable=True,
)
SPEND = Cap(
    "max_cost_usd",
    USD,
    "Max spend (USD)",
    "Spend on model calls per run; max_tokens is clamped so one call cannot overshoot.",
    default=Decimal("0.50"),
    most=MAX_USD,
    measures="cost_usd",
    least=0,
    stopped="it had spent {used} of its {limit} budget, too little for another model call",
    askable=True,
)
WALL = Cap(
    "max_wall_seconds",
    SECONDS,
    "Max wall clock (seconds)",
    "Deadline for the whole run; the call in flight is abandoned.",
    default=300,
    most=7 * 24 * 3600,
    measures="seconds",
    stopped="it ran out of time: the limit is {limit} per run",
)
TOOL_TIMEOUT = Cap(
    "tool_timeout_seconds",
    SECONDS,
    "Tool timeout (seconds)",
    "Per tool call; the agent gets tool_timeout and goes on.",
    default=10,
    most=24 * 3600,
    stopped="a tool call took longer than {limit}",
    ends_run=False,
)
MODEL_CALLS = Cap(
    "max_model_calls",
    COUNT,
    "Max model calls",
    "Model calls per run; off when empty.",
    default=None,
    most=MAX_COUNT,
    measures="model_calls",
    optional=True,
    stopped="it tried a {nth} model call; the limit is {limit} per run",
    askable=True,
)
TOKENS = Cap(
    "max_tokens",
    COUNT,
    "Max tokens",
    "Input plus output tokens per run; off when empty.",
    default=None,
    most=MAX_COUNT,
    measures="tokens",
    optional=True,
    stopped="its next model call could pass the limit of {limit} tokens per run ({used} used)",
    askable=True,
)

REPEATS = Cap(
    "max_repeated_calls",
    COUNT,
    "Max repeated calls",
    "Identical tool calls (same tool, same arguments) per run; the next is refused with "
    "repeated_call, and a further refused repeat ends the run. Off when empty.",
    default=3,
    most=MAX_COUNT,
    optional=True,
    stopped="it kept repeating the same tool call ({used} times); the limit is {limit}",
)

TABLE: tuple[Cap, ...] = (TOOL_CALLS, SPEND, WALL, TOOL_TIMEOUT, MODEL_CALLS, TOKENS, REPEATS)
BY_NAME: dict[str, Cap] = {cap.name: cap for cap in TABLE}
PER_RUN: tuple[Cap, ...] = tuple(cap for cap in TABLE if cap.per_run)
# The caps that can stop a run (what a backtest cuts by, what the runs list filters on).
ENDING: tuple[Cap, ...] = tuple(cap for cap in TABLE if cap.ends_run)
# The caps a person may extend while a run waits (see `Cap.askable`).
ASKABLE: tuple[Cap, ...] = tuple(cap for cap in TABLE if cap.askable)
# Not a cap of one run: a spend window across runs (services.windows) stops a run with this name.
SPEND_WINDOW = "spend_window"
# The caps a re-execution's form offers to change, and a new run's form on the agents page.
REPLAY_CAPS: tuple[Cap, ...] = (TOOL_CALLS, SPEND, WALL)


def cap_named(name: str) -> Cap:
    """The table's entry for `name`; CapError for a name that is no cap."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise CapError(str(name), "unknown cap") from None


# Values: one parser per kind, the same everywhere.


def parse_usd(
    value, field: str, *, most: Decimal = MAX_USD, what: str = "an amount in USD, like 0.50"
) -> Decimal:
    """An amount in USD from a number or a string: finite, 0..`most`, at most 4 decimal places.
    The one USD parser (caps and prices). Raises CapError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CapError(field, f"must be {what}")
    try:
        # str() first: Decimal(0.1) would carry the binary float's 55 digits.
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise CapError(field, f"must be {what}") from None
    if not amount.is_finite() or not 0 <= amount <= most:
        raise CapError(field, f"must be between 0 and {most}")
    if amount.normalize().as_tuple().exponent < -USD_PLACES:
        raise CapError(field, f"must have at most {USD_PLACES} decimal places")
    return amount


def _whole(value, field: str, least: int, most: int, *, seconds: bool) -> int:
    message = (
        f"must be a whole number of seconds from {least} to {most}"
        if seconds
        else "must be a whole number"
    )
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CapError(field, message)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise CapError(field, message) from None
    elif not isinstance(value, int):
        # 3.0 from JSON is three seconds; 2.5 is not whole, and a count is never a float.
        if not seconds or not Decimal(str(value)).is_finite() or value != int(value):
            raise CapError(field, message)
        value = int(value)
    if not least <= value <= most:
        raise CapError(field, message if seconds else f"must be between {least} and {most}")
    return value


def _number(value):
    """A limit or usage as an error carries it (JSON: USD as strings) back as a number."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return value


def usd_text(value) -> str:
    """0.5 → "0.50", 0.0125 → "0.0125", 100 → "100.00"."""
    text = f"{Decimal(value).quantize(Decimal(1).scaleb(-USD_PLACES)):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def json_number(value):
    """`value` as JSON would best carry it: Decimals as strings, whole floats as ints."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_tool_timeouts(value, field: str = TOOL_TIMEOUTS) -> dict[str, int]:
    """{tool name: seconds} with each timeout within TOOL_TIMEOUT's bounds."""
    if not isinstance(value, Mapping):
        raise CapError(field, "must be an object of tool name to seconds")
    out = {}
    for tool, seconds in value.items():
        if not isinstance(tool, str) or not tool:
            raise CapError(field, "tool names must be non-empty strings")
        out[tool] = TOOL_TIMEOUT.parse(seconds, f"{field}.{tool}")
    return out


# One run's caps.


class Caps:
    """The limits one run gets, frozen when it is created: a value per cap of the table (None:
    that optional cap is off) and per-tool timeouts. Read a value as `caps[SPEND]`.

    The constructor takes values by cap name and checks nothing but the names (the engine's
    tests build any caps they like); values from people go through `resolve_caps`.
    """

    __slots__ = ("_values", "tool_timeouts")

    def __init__(self, tool_timeouts: Mapping[str, float] | None = None, **values):
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise TypeError(f"unknown cap {unknown[0]!r}")
        self._values = {cap.name: values.get(cap.name, cap.default) for cap in TABLE}
        self.tool_timeouts = dict(tool_timeouts or {})

    def __getitem__(self, cap: Cap | str):
        return self._values[cap.name if isinstance(cap, Cap) else cap]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Caps):
            return NotImplemented
        return self._values == other._values and self.tool_timeouts == other.tool_timeouts

    def __hash__(self):
        return hash((tuple(self._values.items()), tuple(sorted(self.tool_timeouts.items()))))

    def __repr__(self) -> str:
        return f"Caps({self.to_dict()!r})"

    def replace(self, **changes) -> Caps:
        """A copy with some values changed (by cap name, or `tool_timeouts`)."""
        timeouts = changes.pop(TOOL_TIMEOUTS, self.tool_timeouts)
        return Caps(tool_timeouts=timeouts, **{**self._values, **changes})

    def timeout_for(self, tool_name: str, declared: float | None = None) -> float:
        """Seconds a call of `tool_name` may take: the policy's per-tool timeout, else the timeout
        the tool declared when registered, else the tool timeout cap."""
        if tool_name in self.tool_timeouts:
            return self.tool_timeouts[tool_name]
        if declared is not None:
            return float(declared)
        return self[TOOL_TIMEOUT]

    def to_dict(self) -> dict:
        """A JSON-safe dict (USD as strings) that `from_dict` turns back into equal Caps."""
        out = {cap.name: json_number(self[cap]) for cap in TABLE}
        out[TOOL_TIMEOUTS] = {k: json_number(v) for k, v in sorted(self.tool_timeouts.items())}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Caps:
        """Caps from `to_dict` output (the caps frozen on a run); missing keys take defaults.
        Types are restored, bounds are not checked again. Raises CapError on unknown keys."""
        values = {}
        for name, value in data.items():
            if name == TOOL_TIMEOUTS:
                continue
            cap = cap_named(name)
            if value is not None and cap.kind == USD:
                value = Decimal(str(value))
            values[name] = value
        return cls(tool_timeouts=data.get(TOOL_TIMEOUTS) or {}, **values)


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
    compared with the policy's timeout for that tool, else the tool timeout. Every value is
    checked against the table's bounds. Raises CapError naming the field for unknown keys, bad
    types or ranges, and raises that are not allowed.
    """
    caps = _apply(Caps(), _caps_of(global_policy), allow_none_to_clear=True)
    caps = _apply(caps, _caps_of(agent_policy), allow_none_to_clear=False)
    if not requested:
        return caps
    lowered = _apply(caps, requested, allow_none_to_clear=False)
    if may_raise:
        return lowered
    for tool, seconds in lowered.tool_timeouts.items():
        before = caps.tool_timeouts.get(tool, caps[TOOL_TIMEOUT])
        if seconds > before:
            raise CapRaiseNotAllowed(
                f"{TOOL_TIMEOUTS}.{tool}",
                f"{json_number(seconds)} is above the policy's {json_number(before)}; "
                "only an admin may raise a cap",
            )
    for cap in TABLE:
        old, new = caps[cap], lowered[cap]
        if old is not None and new is not None and new > old:
            raise CapRaiseNotAllowed(
                cap.name,
                f"{json_number(new)} is above the policy's {json_number(old)}; "
                "only an admin may raise a cap",
            )
    return lowered


def _caps_of(policy: Mapping | None) -> Mapping:
    """A policy's caps, without its approval fields."""
    if not isinstance(policy, Mapping):
        return policy or {}
    return {k: v for k, v in policy.items() if k not in APPROVAL_FIELDS}


def _apply(caps: Caps, data: Mapping, *, allow_none_to_clear: bool) -> Caps:
    if not isinstance(data, Mapping):
        raise CapError("caps", "must be an object")
    changes: dict = {}
    for name, value in data.items():
        if name == TOOL_TIMEOUTS:
            if value is not None:
                changes[name] = {**caps.tool_timeouts, **parse_tool_timeouts(value)}
            continue
        cap = cap_named(name)
        if value is None:
            if allow_none_to_clear and cap.optional:
                changes[name] = None
            continue  # a required cap cannot be switched off: None inherits
        changes[name] = cap.parse(value)
    return caps.replace(**changes)
