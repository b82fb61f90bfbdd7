"""Indexes for the pages: full-text search over runs (PostgreSQL), tag filtering (PostgreSQL),
the run list's sort orders, and the overview's tool statistics. On PostgreSQL also extended
statistics telling the planner that status, error_code and cap_hit go together (a cap hit is
always budget_exceeded), so "status=budget_exceeded & cap=…" is not estimated as independent
filters (which picked a 50 ms bitmap plan over a 4 ms index walk on a million runs).

They are plain SQL (no model state): the full-text expression must match runs/search.py
`document_sql()` exactly for the planner to use it, and Django has no portable way to say it.
On PostgreSQL they are built CONCURRENTLY so a migration on a large table does not lock writes.
"""

from django.db import migrations

_VALUES = '\'["string", "numeric"]\'::jsonb'
DOCUMENT = " || ".join(
    f"jsonb_to_tsvector('simple'::regconfig, COALESCE({column}, 'null'::jsonb), {_VALUES})"
    for column in ("input", "output", "error")
)

EVERYWHERE = {
    "run_cost_sort": "ON runs_run (cost_usd DESC, id DESC)",
    # SQLite sorts NULLs last in descending order already, and has no NULLS LAST in an index.
    "run_wall_sort": "ON runs_run (wall_ms DESC, id DESC)",
    "event_tool_started": "ON runs_event (started_at) WHERE kind = 'tool_call'",
}
POSTGRES = {
    **EVERYWHERE,
    "run_wall_sort": "ON runs_run (wall_ms DESC NULLS LAST, id DESC)",
    "run_search_doc": f"ON runs_run USING gin (({DOCUMENT}))",
    "run_tags": "ON runs_run USING gin (tags jsonb_path_ops)",
}


STATISTICS = "run_outcome_stats"


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    indexes = POSTGRES if postgres else EVERYWHERE
    concurrently = "CONCURRENTLY " if postgres else ""
    for name, definition in indexes.items():
        schema_editor.execute(f"CREATE INDEX {concurrently}IF NOT EXISTS {name} {definition}")
    if postgres:
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (dependencies, mcv) "
            "ON status, error_code, cap_hit FROM runs_run"
        )


def drop(apps, schema_editor):
    for name in POSTGRES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("runs", "0002_seed")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
