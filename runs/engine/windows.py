"""Spend windows, the arithmetic: which runs a window covers, and its calendar periods. Plain
Python; the accounts themselves (spent, reserved) are kept exact in the database by
`services.windows`.

A window is a scope, a period and a limit in USD. Scopes: `global` (every run), `agent:NAME`,
`user:REF` (the run's user_ref) and `key:PREFIX` (runs started or sent with the API key whose
prefix this is). Periods are calendar UTC: an hour, a day, a week (from Monday 00:00) or a month;
a window's spend starts again at 0 with each new period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Protocol

from .budget import BudgetExceeded
from .caps import SPEND_WINDOW, CapError, parse_usd, usd_text

PERIODS = ("hour", "day", "week", "month")
SCOPE_KINDS = ("agent", "user", "key")
GLOBAL = "global"
MAX_WINDOW_USD = Decimal("99999.9999")
MAX_SCOPE_CHARS = 200


def parse_scope(text) -> str:
    """A window's scope as stored: `global`, or `agent:`, `user:` or `key:` and a non-empty
    name. Raises CapError naming `scope`."""
    if not isinstance(text, str):
        raise CapError("scope", 'must be "global", "agent:NAME", "user:REF" or "key:PREFIX"')
    scope = text.strip()
    if scope == GLOBAL:
        return scope
    kind, _, name = scope.partition(":")
    if kind not in SCOPE_KINDS or not name.strip():
        raise CapError("scope", 'must be "global", "agent:NAME", "user:REF" or "key:PREFIX"')
    if len(scope) > MAX_SCOPE_CHARS or "\x00" in scope:
        raise CapError("scope", f"must be at most {MAX_SCOPE_CHARS} characters")
    return f"{kind}:{name.strip()}"


def parse_period(value) -> str:
    if value not in PERIODS:
        raise CapError("period", f"must be one of {', '.join(PERIODS)}")
    return value


def parse_limit(value) -> Decimal:
    return parse_usd(value, "limit_usd", most=MAX_WINDOW_USD)


def scopes_of(*, agent: str, user_ref: str = "", key_prefix: str = "") -> list[str]:
    """Every scope that covers a run of `agent` for `user_ref`, started with `key_prefix`."""
    scopes = [GLOBAL, f"agent:{agent}"]
    if user_ref:
        scopes.append(f"user:{user_ref}")
    if key_prefix:
        scopes.append(f"key:{key_prefix}")
    return scopes


def period_start(period: str, when: datetime) -> datetime:
    """The start (UTC) of the calendar period holding `when`."""
    when = when.astimezone(UTC)
    if period == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def period_end(period: str, start: datetime) -> datetime:
    """When the period that began at `start` ends: the window's reset time."""
    if period == "hour":
        return start + timedelta(hours=1)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


MICROS = Decimal(1_000_000)


def to_micros(usd: Decimal) -> int:
    """USD as whole micro-dollars, rounded up (a reservation never holds less than it may cost)."""
    return int((Decimal(usd) * MICROS).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))


class WindowRefused(BudgetExceeded):
    """A model call whose worst-case cost does not fit a spend window covering its run."""

    def __init__(self, *, scope: str, period: str, limit, spent, reserved, resets_at: datetime):
        message = (
            f"the {scope} spend window is spent for this {period}: "
            f"${usd_text(spent)} spent and ${usd_text(reserved)} reserved of "
            f"${usd_text(limit)}; it resets at {resets_at:%Y-%m-%d %H:%M} UTC"
        )
        super().__init__(SPEND_WINDOW, limit, spent, message)
        self.scope, self.period, self.resets_at = scope, period, resets_at
        self.reserved = str(reserved)

    def to_error(self) -> dict:
        return {
            **super().to_error(),
            "scope": self.scope,
            "period": self.period,
            "reserved": self.reserved,
            "resets_at": self.resets_at.isoformat(),
        }

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window resets (at least 1)."""
        return max(1, math.ceil((self.resets_at - now).total_seconds()))


class SpendGuard(Protocol):
    """Where a run's model calls hold their worst case against the spend windows covering the
    run (`services.windows` keeps the accounts). Called from the run's own thread."""

    def reserve(self, amount: Decimal) -> Any:
        """Hold `amount` against every covering window, all or none; raise WindowRefused naming
        a window without room. Returns a reference for `settle`."""

    def settle(self, ref: Any, cost: Decimal) -> None:
        """The call ended: release what `ref` held and count `cost` as spent."""


@dataclass(frozen=True)
class Window:
    """A window as the backtest and the pages take it."""

    scope: str
    period: str
    limit_usd: Decimal
    id: int | None = None

    def covers(self, scopes: list[str]) -> bool:
        return self.scope in scopes

    @property
    def label(self) -> str:
        return f"{self.scope} per {self.period}"


@dataclass
class Account:
    """One window's spend in one period, as the backtest counts it."""

    window: Window
    starts_at: datetime
    spent: Decimal = Decimal(0)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.window.limit_usd

    def fits(self, cost: Decimal) -> bool:
        return self.spent + cost <= self.window.limit_usd
