"""The dispatch outbox on each run: when the broker last took its message, and how often.
Runs queued before this migration count as never sent, so the outbox sends them (a run that was
sent after all is still executed once: its claim is atomic)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0006_cap_policy_drop_columns")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="dispatches",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
