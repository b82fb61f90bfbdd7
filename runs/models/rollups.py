"""Runs summed by the UTC hour they were created in and their agent, for the overview and the
agents page (runs.services.rollups keeps them, runs.selectors.stats reads them)."""

from decimal import Decimal

from django.db import models


class RunHour(models.Model):
    """The runs one agent created in one UTC hour, summed as of the last refresh."""

    hour = models.DateTimeField()
    agent = models.CharField(max_length=100)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)  # failed or lost
    cap_hits = models.PositiveIntegerField(default=0)
    spend = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal("0"))
    wall_ms_sum = models.PositiveBigIntegerField(default=0)
    wall_ms_count = models.PositiveIntegerField(default=0)  # runs that report a wall time
    last_created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "agent"], name="runhour_unique")]

    def __str__(self):
        return f"{self.agent} {self.hour:%Y-%m-%d %H:00}: {self.runs} runs"


class RunHourDone(models.Model):
    """An hour whose RunHour rows are complete (an hour without runs has none)."""

    hour = models.DateTimeField(primary_key=True)

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} summed"


class RunHourChange(models.Model):
    """An hour whose runs changed since its rows were summed: written by database triggers on
    runs (migration 0013) on every insert and delete, and on updates of the summed columns."""

    id = models.BigAutoField(primary_key=True)
    hour = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H:00} changed"
