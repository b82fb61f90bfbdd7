"""Model prices: add a price from a date, retire a model, cancel a price that has not started.

A price is never edited in place. Changing a model's price adds a row in effect from a date;
`selectors.prices.price_for(model, at=...)` answers with the newest row started by then and not
retired. Costs are stored on each step and run when charged, so a price change never alters
what a past run cost; a date in the past only matters for steps ingested later with earlier
times (they are costed at their own time).
"""

from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..engine.caps import CapError, parse_usd
from ..errors import Conflict, InvalidInput, NotFound
from ..models import ModelPrice

PRICE_WORDS = "an amount in USD per 1M tokens, like 2.50"
MAX_PRICE = Decimal("99999999.9999")  # the column's limit: USD per 1M tokens


class PriceInvalid(InvalidInput):
    """Some fields of a price are not valid: `errors` maps each field to its message."""

    code = "invalid_price"

    def __init__(self, errors: dict[str, str]):
        super().__init__(
            "; ".join(f"{k}: {v}" for k, v in errors.items()), details={"fields": errors}
        )
        self.errors = errors


def _per_mtok(value, errors: dict, name: str) -> Decimal | None:
    try:
        return parse_usd(value, name, most=MAX_PRICE, what=PRICE_WORDS)
    except CapError as exc:
        errors[name] = exc.message
        return None


def price_add(
    *, model: str, input_per_mtok, output_per_mtok, effective_from: datetime | None = None
) -> ModelPrice:
    """A new price for `model` (USD per 1M input and output tokens) in effect from
    `effective_from` (default: now). Raises PriceInvalid naming each bad field."""
    errors: dict[str, str] = {}
    model = (model or "").strip()
    if not model or len(model) > 200:
        errors["model"] = "must be a model name of 1 to 200 characters"
    inp = _per_mtok(input_per_mtok, errors, "input_per_mtok")
    out = _per_mtok(output_per_mtok, errors, "output_per_mtok")
    when = effective_from or timezone.now()
    if timezone.is_naive(when):
        errors["effective_from"] = "must carry a time zone"
    if errors:
        raise PriceInvalid(errors)
    try:
        with transaction.atomic():
            return ModelPrice.objects.create(
                model=model, input_per_mtok=inp, output_per_mtok=out, effective_from=when
            )
    except IntegrityError:
        raise PriceInvalid(
            {"effective_from": f"{model} already has a price starting at that time"}
        ) from None


def price_retire(*, model: str, at: datetime | None = None) -> int:
    """Stop pricing `model` from `at` (default: now): every row of it not retired by then is
    retired then, so no older price comes back, and a price scheduled later never starts.
    Returns how many rows changed. NotFound for an unknown model; Conflict when it already is."""
    at = at or timezone.now()
    rows = ModelPrice.objects.filter(model=model)
    if not rows.exists():
        raise NotFound(f"no prices for {model!r}")
    changed = rows.filter(Q(retired_at__isnull=True) | Q(retired_at__gt=at)).update(retired_at=at)
    if not changed:
        raise Conflict(f"{model} is already retired", code="already_retired")
    return changed


def price_cancel(*, price_id: int) -> None:
    """Delete a price that has not started yet. One that was ever in effect stays: it is the
    record of what calls were charged."""
    price = ModelPrice.objects.filter(id=price_id).first()
    if price is None:
        raise NotFound(f"no price {price_id}")
    if price.effective_from <= timezone.now():
        raise Conflict(
            "only a price that has not started yet can be cancelled; add a new price instead",
            code="price_in_effect",
        )
    price.delete()
