"""Migrations that move data work on an existing database: a policy stored one column per cap
arrives in the JSON shape with the same values, and comes back if the migration is reversed."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("runs", "0004_event_indexes_from_unique")]
AFTER = [("runs", "0006_cap_policy_drop_columns")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_cap_policy_columns_become_values_and_back():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("runs")
    try:
        old = migrate(BEFORE).get_model("runs", "CapPolicy")
        old.objects.all().delete()
        old.objects.create(
            scope="global",
            max_tool_calls=20,
            max_cost_usd=Decimal("0.5000"),
            max_wall_seconds=300,
            tool_timeout_seconds=Decimal("10.000"),
        )
        old.objects.create(
            scope="demo-loop",
            max_tool_calls=5,
            max_cost_usd=Decimal("0.0125"),
            max_tokens=900,
            tool_timeouts={"check_inventory": 3},
        )
        new = migrate(AFTER).get_model("runs", "CapPolicy")
        stored = {p.scope: (p.values, p.tool_timeouts) for p in new.objects.all()}
        assert stored == {
            "global": (
                {
                    "max_tool_calls": 20,
                    "max_cost_usd": "0.50",
                    "max_wall_seconds": 300,
                    "tool_timeout_seconds": 10,
                },
                {},
            ),
            "demo-loop": (
                {"max_tool_calls": 5, "max_cost_usd": "0.0125", "max_tokens": 900},
                {"check_inventory": 3},
            ),
        }
        back = migrate(BEFORE).get_model("runs", "CapPolicy")
        loop = back.objects.get(scope="demo-loop")
        assert (loop.max_tool_calls, loop.max_cost_usd, loop.max_tokens) == (
            5,
            Decimal("0.0125"),
            900,
        )
        assert loop.max_wall_seconds is None
    finally:
        migrate(latest)


@pytest.mark.django_db
def test_a_new_database_starts_with_the_cap_tables_defaults():
    from runs.models import CapPolicy
    from runs.seed import default_policy

    assert CapPolicy.objects.get(scope="global").values == default_policy()
