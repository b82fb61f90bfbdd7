"""Steps lose their single-column indexes on `run_id` and `parent_id`.

The unique (run_id, seq) index starts with run_id, so it serves every lookup by run (and the
cascade on delete); children are only ever looked up within their run. Each index cost every step
write an entry, and steps are the table written most. Only the indexes change: the foreign key
stays as it was, so the database work is the two DROP INDEX statements, found by their columns.
"""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = ("run_id", "parent_id")


def _single_column_indexes(schema_editor) -> dict[str, str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "runs_event")
    return {
        name: info["columns"][0]
        for name, info in constraints.items()
        if info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and info["columns"] in ([column] for column in COLUMNS)
    }


def drop(apps, schema_editor):
    for name in _single_column_indexes(schema_editor):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    present = set(_single_column_indexes(schema_editor).values())
    for column in COLUMNS:
        if column not in present:
            name = schema_editor.quote_name(f"runs_event_{column}_idx")
            schema_editor.execute(f"CREATE INDEX {name} ON runs_event ({column})")


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0003_search_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="parent",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="runs.event",
                    ),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="run",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="runs.run",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
