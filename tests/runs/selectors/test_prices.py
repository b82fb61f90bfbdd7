"""Reads of model prices (runs.selectors.prices): the price a run's calls are charged at."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from runs.models import ModelPrice
from runs.selectors.prices import PriceCache

pytestmark = pytest.mark.django_db


def test_a_run_is_charged_the_price_in_effect_at_each_call(django_assert_num_queries):
    now = timezone.now()
    clock = [now]
    ModelPrice.objects.create(
        model="m-x", input_per_mtok=1, output_per_mtok=2, effective_from=now - timedelta(days=1)
    )
    ModelPrice.objects.create(
        model="m-x", input_per_mtok=3, output_per_mtok=4, effective_from=now + timedelta(days=1)
    )
    prices = PriceCache(clock=lambda: clock[0])
    assert prices("m-x") == (Decimal("1"), Decimal("2"))
    assert prices("unpriced-model") is None
    # Until the planned change, the price is known without asking the database again.
    clock[0] = now + timedelta(hours=23)
    with django_assert_num_queries(0):
        assert prices("m-x") == (Decimal("1"), Decimal("2"))
    ModelPrice.objects.filter(model="m-x").update(retired_at=now + timedelta(days=2))
    clock[0] = now + timedelta(days=1, seconds=1)
    assert prices("m-x") == (Decimal("3"), Decimal("4"))
    clock[0] = now + timedelta(days=3)  # retired since
    assert prices("m-x") is None
