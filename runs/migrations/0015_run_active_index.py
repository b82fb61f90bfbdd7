"""Running runs' rows are updated in place: the reaper's indexes on `heartbeat_at` become one
partial index on the active runs' `status`, and on PostgreSQL the table's pages keep a fifth
free (fillfactor 80). A running run's heartbeat and counters are written every second or so;
once such an UPDATE changes no indexed column and finds room on its page, PostgreSQL writes it
as a heap-only tuple instead of adding an entry to each of the table's indexes. Pages written
before keep their rows as they are; the fillfactor applies to pages written from now on.
"""

from django.db import migrations, models
from django.db.models import Q


def fill(percent: int):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name("runs_run")
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")

    return run


class Migration(migrations.Migration):
    dependencies = [("runs", "0014_search_words_stored")]

    operations = [
        migrations.RemoveIndex(model_name="run", name="run_running_heartbeat"),
        migrations.RemoveIndex(model_name="run", name="run_awaiting_heartbeat"),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(
                condition=Q(status__in=["running", "awaiting_approval"]),
                fields=["status"],
                name="run_active",
            ),
        ),
        migrations.RunPython(fill(80), fill(100), elidable=False),
    ]
