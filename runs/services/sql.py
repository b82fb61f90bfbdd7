"""Small helpers for the hot paths that skip the ORM's query compiler (ingest sends several
statements per batch, each ~0.3–0.5 ms of Python through the ORM). The values still go through
each field's own preparation, and rows are read back through `instances`, which applies the
fields' converters as `Model.objects.raw` does: the same values the ORM would write and read, on
PostgreSQL and SQLite."""

from django.db import DEFAULT_DB_ALIAS, connection, connections


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
    sql, params = update_statement(model, pk, values, only_if=only_if)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update_statement(
    model, pk, values: dict, *, only_if: tuple[str, list] | None = None
) -> tuple[str, list]:
    """(sql, params) of `update_by_pk(model, pk, values)`, to send with others (`read_together`)."""
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each use of the proxy is a lookup
    key = (model, tuple(values), db.vendor)
    known = _UPDATES.get(key)
    if known is None:  # the statement's text and fields, worked out once per set of columns
        meta = model._meta
        fields = [meta.get_field(name) for name in values]
        assignments = ", ".join(f"{db.ops.quote_name(f.column)} = %s" for f in fields)
        head = f"UPDATE {quoted(model)} SET {assignments} WHERE {quoted(model, meta.pk.name)} = %s"
        known = _UPDATES[key] = (head, fields, meta.pk)
    head, fields, pk_field = known
    values_in_order = zip(fields, values.values(), strict=True)
    params = [field.get_db_prep_save(value, db) for field, value in values_in_order]
    params.append(pk_field.get_db_prep_value(pk, db))
    where = ""
    if only_if is not None:
        condition, condition_params = any_of(model, *only_if)
        where = f" AND {condition}"
        params += condition_params
    return head + where, params


_UPDATES: dict = {}


def read_together(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """The rows of each (sql, params), in order. On PostgreSQL the statements travel as one (one
    round trip; each still reads what was committed before it started, as if sent alone);
    elsewhere they run one after another."""
    if not statements:
        return []
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            found = []
            for sql, params in statements:
                cursor.execute(sql, params)
                found.append(cursor.fetchall() if cursor.description else [])
            return found
        cursor.execute(
            "; ".join(sql for sql, _ in statements), [p for _, ps in statements for p in ps]
        )
        found = [cursor.fetchall() if cursor.description else []]
        while cursor.nextset():
            found.append(cursor.fetchall() if cursor.description else [])
        return found


def instances(model, names, rows) -> list:
    """`model` instances from `rows` of the columns of fields `names`, each value read through
    the field's converters as the ORM reads it (what `Model.objects.raw` does)."""
    converting, order, attnames = _reading(model, tuple(names), connection.ops)
    out = []
    for row in rows:
        row = list(row)
        for index, converters, col in converting:
            for convert in converters:
                row[index] = convert(row[index], col, connection)
        out.append(model.from_db(connection.alias, attnames, [row[index] for index in order]))
    return out


_READINGS: dict = {}


def _reading(model, names: tuple, ops) -> tuple:
    """How `instances` reads rows of `names` on a connection (whose `ops` give the converters):
    worked out once per model, columns and connection."""
    key = (model, names, ops)
    found = _READINGS.get(key)
    if found is None:
        fields = [model._meta.get_field(name) for name in names]
        converting = []
        for index, field in enumerate(fields):
            col = field.get_col(model._meta.db_table)
            converters = ops.get_db_converters(col) + col.get_db_converters(connection)
            if converters:
                converting.append((index, converters, col))
        # `from_db` takes the values in the model's field order.
        concrete = {field: index for index, field in enumerate(model._meta.concrete_fields)}
        order = sorted(range(len(fields)), key=lambda index: concrete[fields[index]])
        attnames = [fields[index].attname for index in order]
        found = _READINGS[key] = (converting, order, attnames)
    return found
