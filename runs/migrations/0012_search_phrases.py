"""PostgreSQL: a stored search document for quoted-phrase search (runs/selectors/search.py).

`runs_run.search_doc` (a column outside the model: only the database and the search read it)
holds the same words and positions as the `run_search_doc` expression of migration 0003, plus,
without positions, one lexeme per pair of adjacent words ("damaged charger"). Its GIN index
finds the runs that contain every adjacent pair of a quoted phrase, and the stored words check
the exact phrase, without computing any document again. A document whose pairs would not fit
a tsvector (1 MB) gets the marker lexeme ' unpaired' instead, which every phrase query accepts,
so such a run is checked word by word rather than missed. Words cannot contain a space, so
neither a pair nor the marker can be taken for a word.

A trigger keeps it: on insert (COPY included), and on an update that changes input, output or
error (not on a heartbeat or a counter). An existing database is filled in batches of 5,000
runs, then the index is built CONCURRENTLY. SQLite has none of this.
"""

from django.db import migrations

_VALUES = '\'["string", "numeric"]\'::jsonb'
_DOCUMENT = " || ".join(
    f"jsonb_to_tsvector('simple'::regconfig, COALESCE({column}, 'null'::jsonb), {_VALUES})"
    for column in ("i", "o", "e")
)
MARKER = " unpaired"
BATCH = 5_000

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION runs_search_document(i jsonb, o jsonb, e jsonb) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  WITH d AS (SELECT {_DOCUMENT} AS words),
  pos AS (SELECT lexeme, unnest(positions) AS p FROM d, unnest(d.words)),
  pairs AS (
    SELECT DISTINCT a.lexeme || ' ' || b.lexeme AS pair FROM pos a JOIN pos b ON b.p = a.p + 1
    WHERE octet_length(a.lexeme) + octet_length(b.lexeme) < 2047
  ),
  sized AS (SELECT array_agg(pair) AS list, COALESCE(sum(octet_length(pair) + 8), 0) AS bytes
            FROM pairs)
  SELECT CASE
    WHEN sized.list IS NULL THEN d.words
    WHEN sized.bytes + pg_column_size(d.words) > 900000
      THEN array_to_tsvector(ARRAY['{MARKER}']) || d.words
    ELSE array_to_tsvector(sized.list) || d.words
  END
  FROM d, sized
$$;

CREATE OR REPLACE FUNCTION runs_search_doc_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.search_doc := runs_search_document(NEW.input, NEW.output, NEW.error);
  RETURN NEW;
END
$$;
"""
TRIGGERS = """
CREATE TRIGGER runs_search_doc_insert BEFORE INSERT ON runs_run
  FOR EACH ROW EXECUTE FUNCTION runs_search_doc_fill();
CREATE TRIGGER runs_search_doc_update BEFORE UPDATE OF input, output, error ON runs_run
  FOR EACH ROW WHEN (OLD.input IS DISTINCT FROM NEW.input OR OLD.output IS DISTINCT FROM NEW.output
                     OR OLD.error IS DISTINCT FROM NEW.error)
  EXECUTE FUNCTION runs_search_doc_fill();
"""
BACKFILL = f"""
WITH batch AS (SELECT id FROM runs_run WHERE search_doc IS NULL AND id > %s ORDER BY id
               LIMIT {BATCH})
UPDATE runs_run r SET search_doc = runs_search_document(r.input, r.output, r.error)
FROM batch WHERE r.id = batch.id RETURNING r.id
"""
INDEX = "run_search_phrases"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS)
    schema_editor.execute("ALTER TABLE runs_run ADD COLUMN IF NOT EXISTS search_doc tsvector")
    schema_editor.execute("DROP TRIGGER IF EXISTS runs_search_doc_insert ON runs_run")
    schema_editor.execute("DROP TRIGGER IF EXISTS runs_search_doc_update ON runs_run")
    schema_editor.execute(TRIGGERS)
    # Runs written from now on get theirs from the trigger; the ones already there, in batches
    # (each its own transaction: this migration is not atomic).
    after = "00000000-0000-0000-0000-000000000000"
    with schema_editor.connection.cursor() as cursor:
        while True:
            cursor.execute(BACKFILL, [after])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            after = str(max(ids))
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON runs_run USING gin (search_doc)"
    )
    schema_editor.execute("ANALYZE runs_run")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    schema_editor.execute("DROP TRIGGER IF EXISTS runs_search_doc_insert ON runs_run")
    schema_editor.execute("DROP TRIGGER IF EXISTS runs_search_doc_update ON runs_run")
    schema_editor.execute("ALTER TABLE runs_run DROP COLUMN IF EXISTS search_doc")
    schema_editor.execute("DROP FUNCTION IF EXISTS runs_search_doc_fill()")
    schema_editor.execute("DROP FUNCTION IF EXISTS runs_search_document(jsonb, jsonb, jsonb)")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY, and a backfill in many short transactions

    dependencies = [("runs", "0011_idempotency_keys")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
