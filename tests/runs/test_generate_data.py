"""`manage.py generate_data`, the loader behind the pages benchmark, on whichever database runs."""

import pytest
from django.core.management import call_command

from runs.models import Event, Run


@pytest.mark.django_db(transaction=True)
def test_loads_runs_and_the_long_run_with_every_column_filled():
    call_command("generate_data", runs=40, big_run_steps=12, days=2, users=5)

    assert Run.objects.count() == 41
    assert Event.objects.count() == 12
    # Columns the generator does not name take their model defaults (on PostgreSQL, COPY would
    # otherwise leave a NOT NULL column without a value and fail).
    assert set(Run.objects.values_list("dispatches", flat=True)) == {0}
    assert Run.objects.filter(status="succeeded").exists()
