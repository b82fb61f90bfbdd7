"""The search document and the hourly sums arrive on an existing database: runs written before
migration 0012 are found by a quoted phrase after it, and runs from before 0013 are summed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.runs.test_migrations import migrate

BEFORE = [("runs", "0011_idempotency_keys")]


@pytest.mark.django_db(transaction=True)
def test_runs_from_before_are_filled_in_and_summed():
    from django.db.migrations.executor import MigrationExecutor

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("runs")
    try:
        old = migrate(BEFORE).get_model("runs", "Run")
        earlier = timezone.now() - timedelta(days=2)
        made = [
            old.objects.create(agent="demo-support", input={"q": f"my damaged charger {i}"},
                               status="succeeded", created_at=earlier, caps={})
            for i in range(3)
        ] + [old.objects.create(agent="demo-loop", input={"q": "charger damaged"}, caps={},
                                status="failed", created_at=earlier)]  # fmt: skip
        migrate(latest)
        from runs.selectors.runs import RunFilters, runs_filtered
        from runs.selectors.stats import agent_run_stats
        from runs.services.rollups import rollups_refresh

        found = set(
            runs_filtered(RunFilters(text='"damaged charger"')).values_list("id", flat=True)
        )
        assert found == {run.id for run in made[:3]}
        rollups_refresh()
        numbers = agent_run_stats(since=earlier - timedelta(hours=1))
        assert (numbers["demo-support"]["runs"], numbers["demo-loop"]["failures"]) == (3, 1)
    finally:
        migrate(latest)
