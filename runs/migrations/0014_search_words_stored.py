"""PostgreSQL: full-text search matches every query against the stored document of migration 0012
(`search_doc`, its GIN index `run_search_phrases`), so the expression index of migration 0003 on
the document computed from input, output and error is no longer read. Dropped: each write of a
run's input, output or error computed that document a second time for it. SQLite has neither.
"""

from django.db import migrations

INDEX = "run_search_doc"
_VALUES = '\'["string", "numeric"]\'::jsonb'
DOCUMENT = " || ".join(
    f"jsonb_to_tsvector('simple'::regconfig, COALESCE({column}, 'null'::jsonb), {_VALUES})"
    for column in ("input", "output", "error")
)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON runs_run USING gin (({DOCUMENT}))"
        )


class Migration(migrations.Migration):
    atomic = False  # DROP/CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("runs", "0013_run_hours")]

    operations = [migrations.RunPython(drop, create, elidable=False)]
