"""Rows every installation starts with: the role groups, the global cap policy (the cap table's
defaults, DESIGN §6) and public model prices. Idempotent; takes model classes so a migration can
pass its historical models."""

from datetime import UTC, datetime
from decimal import Decimal

from .engine.caps import TABLE
from .models import GLOBAL_SCOPE
from .roles import ROLES

# USD per 1M input / output tokens, from the vendors' public price lists. The scripted-* models
# are the offline demo provider's, priced so the demo agents show real spend.
PRICES = {
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "o3": ("2.00", "8.00"),
    "o4-mini": ("1.10", "4.40"),
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "claude-opus-4-1": ("15.00", "75.00"),
    "claude-sonnet-4-5": ("3.00", "15.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-3-5-haiku": ("0.80", "4.00"),
    "gemini-2.5-pro": ("1.25", "10.00"),
    "gemini-2.5-flash": ("0.30", "2.50"),
    "scripted-mini": ("0.15", "0.60"),
    "scripted-premium": ("15.00", "75.00"),
}
PRICES_EFFECTIVE_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def default_policy() -> dict:
    """The global policy's values (as stored) when nobody has changed them."""
    return {cap.name: cap.to_json(cap.default) for cap in TABLE}


def seed_defaults(*, Group, CapPolicy, ModelPrice) -> None:  # noqa: N803 - model classes
    seed_roles_and_prices(Group=Group, ModelPrice=ModelPrice)
    seed_global_policy(CapPolicy=CapPolicy)


def seed_global_policy(*, CapPolicy) -> None:  # noqa: N803 - a model class
    CapPolicy.objects.get_or_create(scope=GLOBAL_SCOPE, defaults={"values": default_policy()})


def seed_roles_and_prices(*, Group, ModelPrice) -> None:  # noqa: N803 - model classes
    for role in ROLES:
        Group.objects.get_or_create(name=role)
    for model, (inp, out) in PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            effective_from=PRICES_EFFECTIVE_FROM,
            defaults={"input_per_mtok": Decimal(inp), "output_per_mtok": Decimal(out)},
        )
