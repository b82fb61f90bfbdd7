"""Small helpers for the hot paths that skip the ORM's query compiler (ingest sends several
statements per batch, each ~0.3–0.5 ms of Python through the ORM). The values still go through
each field's own preparation, and rows read back through `Model.objects.raw`, which applies the
fields' converters: the same values the ORM would write and read, on PostgreSQL and SQLite."""

from django.db import connection


def quoted(model, field_name: str | None = None) -> str:
    """The quoted table of `model`, or the quoted column of one of its fields."""
    if field_name is None:
        return connection.ops.quote_name(model._meta.db_table)
    return connection.ops.quote_name(model._meta.get_field(field_name).column)


def any_of(model, field_name: str, values) -> tuple[str, list]:
    """(SQL, params) for "the field is one of `values`": one array parameter on PostgreSQL
    (cheaper to send and plan than one parameter per value), `IN (…)` elsewhere."""
    field = model._meta.get_field(field_name)
    column = connection.ops.quote_name(field.column)
    prepared = [field.get_db_prep_value(value, connection) for value in values]
    if not prepared:
        return "1 = 0", []
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [prepared]
    return f"{column} IN ({', '.join(['%s'] * len(prepared))})", prepared


def update_by_pk(model, pk, values: dict, *, only_if: tuple[str, list] | None = None) -> int:
    """UPDATE one row: `values` by field name (what `filter(pk=pk).update(**values)` does for
    plain values); with `only_if` (a field name and its allowed values), only when the row's
    value is one of them. Returns the number of rows updated."""
    meta = model._meta
    fields = [(meta.get_field(name), value) for name, value in values.items()]
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f, _ in fields)
    params = [f.get_db_prep_save(value, connection) for f, value in fields]
    params.append(meta.pk.get_db_prep_value(pk, connection))
    where = f"{quoted(model, meta.pk.name)} = %s"
    if only_if is not None:
        condition, condition_params = any_of(model, *only_if)
        where += f" AND {condition}"
        params += condition_params
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quoted(model)} SET {assignments} WHERE {where}", params)
        return cursor.rowcount
