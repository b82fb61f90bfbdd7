"""Reads of model prices: the price in effect for a model at a time (a dated model id without
prices of its own takes its undated name's), and every model's prices for the prices page.

A price is never edited in place (see `services.prices`): each row is in effect from its
`effective_from` until the next row of its model starts or it is retired.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from ..engine.budget import Price
from ..models import ModelPrice
from ..services.sql import any_of, instances, quoted, read_together

# A snapshot date at the end of a model id: -YYYYMMDD or -YYYY-MM-DD.
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def price_for(model: str, *, at: datetime | None = None) -> Price | None:
    """(input, output) USD per 1M tokens for `model` in effect at `at` (default now), or None."""
    return price_at(prices_of([model]).get(model, []), at or timezone.now())[0]


def prices_of(models) -> dict[str, list[tuple]]:
    """Every price row of `models` (one query), per model, oldest first, as
    (effective_from, retired_at, (input, output)) for `price_at`. A dated model id with no
    prices of its own (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) takes those of its
    undated name."""
    sql, params, undated = prices_query(models)
    return prices_from(read_together([(sql, params)])[0], undated)


_PRICE_FIELDS = ("id", "model", "effective_from", "retired_at", "input_per_mtok", "output_per_mtok")


def prices_query(models) -> tuple[str, list, dict]:
    """(sql, params, undated) reading what `prices_of(models)` needs, for `prices_from`: sent
    with other statements, it shares their round trip (`sql.read_together`)."""
    undated = {model: _DATE_SUFFIX.sub("", model) for model in set(models)}
    # Read on every ingest batch with tokens: one statement without the ORM's query compiler.
    where, params = any_of(ModelPrice, "model", sorted({*undated, *undated.values()}))
    columns = ", ".join(quoted(ModelPrice, name) for name in _PRICE_FIELDS)
    sql = f"SELECT {columns} FROM {quoted(ModelPrice)} WHERE {where} ORDER BY effective_from"
    return sql, params, undated


def prices_from(rows: list[tuple], undated: dict) -> dict[str, list[tuple]]:
    """`prices_of`'s answer from the rows of `prices_query`."""
    found: dict[str, list[tuple]] = {}
    for row in instances(ModelPrice, _PRICE_FIELDS, rows):
        entry = (row.effective_from, row.retired_at, (row.input_per_mtok, row.output_per_mtok))
        found.setdefault(row.model, []).append(entry)
    return {
        model: found.get(model) or found[name]
        for model, name in undated.items()
        if model in found or name in found
    }


def price_at(entries: list[tuple], at: datetime) -> tuple[Price | None, datetime | None]:
    """(price or None, until) from one model's `prices_of` entries: the newest row started by
    `at` and not retired by then, and when it stops being the one in effect (the next price's
    start or its retirement; None: nothing planned)."""
    current = None
    until = None
    for start, retired, price in entries:
        if retired is not None and retired <= at:
            continue
        if start <= at:
            current = (retired, price)
        elif until is None:
            until = start
    if current is None:
        return None, until
    retired, price = current
    if retired:
        until = min(until, retired) if until else retired
    return price, until


class PriceCache:
    """`price_for(model)` for one run: the price in effect when each call is made, read from the
    database only at a model's first call and when a price change comes into effect."""

    def __init__(self, *, on_read=None, clock=timezone.now):
        self._prices: dict = {}  # model -> (price, until)
        # Called after each database read (the worker gives its pooled connection back there).
        self._on_read = on_read
        self._clock = clock

    def __call__(self, model: str) -> Price | None:
        cached = self._prices.get(model)
        now = self._clock()
        if cached is None or (cached[1] is not None and now >= cached[1]):
            cached = self._prices[model] = price_at(prices_of([model]).get(model, []), now)
            if self._on_read is not None:
                self._on_read()
        return cached[0]


@dataclass
class ModelPrices:
    """One model's prices as the prices page shows them."""

    model: str
    current: ModelPrice | None = None  # in effect now
    scheduled: list[ModelPrice] = field(default_factory=list)  # starting later, not retired
    past: list[ModelPrice] = field(default_factory=list)  # superseded or retired

    @property
    def retired(self) -> bool:
        return self.current is None and not self.scheduled


def prices_by_model(now: datetime | None = None) -> list[ModelPrices]:
    """Every model with a price, by name: its current price, scheduled ones and the rest."""
    now = now or timezone.now()
    out: dict[str, ModelPrices] = {}
    # Newest start first per model.
    for price in ModelPrice.objects.order_by("model", "-effective_from", "-id"):
        entry = out.setdefault(price.model, ModelPrices(model=price.model))
        retired = price.retired_at is not None and price.retired_at <= now
        if price.effective_from > now and not _never_starts(price):
            entry.scheduled.insert(0, price)
        elif entry.current is None and not retired and price.effective_from <= now:
            entry.current = price
        else:
            entry.past.append(price)
    return list(out.values())


def _never_starts(price: ModelPrice) -> bool:
    return price.retired_at is not None and price.retired_at <= price.effective_from
