"""Reads of spend windows: each window with its account for the current period (spent,
reserved, runs refused, when it resets), for the caps page, the API and a run's page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from ..engine.windows import Window, from_micros, period_end, period_start, scopes_of
from ..models import ApiKey, Run, SpendWindow, SpendWindowPeriod


@dataclass(frozen=True)
class WindowState:
    window: SpendWindow
    starts_at: datetime
    resets_at: datetime
    spent: Decimal
    reserved: Decimal
    refused: int

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.window.limit_usd - self.spent - self.reserved)

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    def to_dict(self) -> dict:
        w = self.window
        return {
            "id": w.id,
            "scope": w.scope,
            "period": w.period,
            "limit_usd": w.limit_usd,
            "spent": self.spent,
            "reserved": self.reserved,
            "refused": self.refused,
            "period_start": self.starts_at,
            "resets_at": self.resets_at,
        }


def windows_state(*, scopes: list[str] | None = None, now=None) -> list[WindowState]:
    """Every window (or those of `scopes`), by scope and period, with this period's account.
    Two queries."""
    now = now or timezone.now()
    windows = SpendWindow.objects.order_by("scope", "period", "id")
    if scopes is not None:
        windows = windows.filter(scope__in=scopes)
    windows = list(windows)
    starts = {w.id: period_start(w.period, now) for w in windows}
    accounts = {}
    if windows:
        rows = SpendWindowPeriod.objects.filter(
            window_id__in=list(starts), starts_at__in=set(starts.values())
        ).values_list("window_id", "starts_at", "spent_micros", "reserved_micros", "refused")
        accounts = {
            window_id: (spent, reserved, refused)
            for window_id, start, spent, reserved, refused in rows
            if start == starts[window_id]
        }
    out = []
    for w in windows:
        spent, reserved, refused = accounts.get(w.id, (0, 0, 0))
        out.append(
            WindowState(
                window=w,
                starts_at=starts[w.id],
                resets_at=period_end(w.period, starts[w.id]),
                spent=from_micros(spent),
                reserved=from_micros(reserved),
                refused=refused,
            )
        )
    return out


def windows_for_run(run: Run, now=None) -> list[WindowState]:
    """The windows that cover `run` (by its agent, user and API key), as they stand now."""
    prefix = ""
    if run.api_key_id is not None:
        key = ApiKey.objects.filter(id=run.api_key_id).values_list("prefix", flat=True).first()
        prefix = key or ""
    scopes = scopes_of(agent=run.agent, user_ref=run.user_ref, key_prefix=prefix)
    return windows_state(scopes=scopes, now=now)


def windows_for_backtest() -> list[Window]:
    """The windows in force, as the backtest takes them."""
    return [
        Window(scope=w.scope, period=w.period, limit_usd=w.limit_usd, id=w.id)
        for w in SpendWindow.objects.order_by("id")
    ]
