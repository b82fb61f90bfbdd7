"""A cap policy's values move from one column per cap into one JSON object keyed by the cap
table's names, so adding a cap to the table needs no migration. Existing rows keep their values
(USD as exact strings, seconds as whole numbers); the global policy is seeded here when missing.
The old columns are dropped by the next migration (PostgreSQL refuses to alter a table in the
transaction that wrote its rows)."""

from decimal import Decimal

from django.db import migrations, models

# The per-cap columns as they were (this migration's own record of them).
OLD_COLUMNS = (
    "max_tool_calls",
    "max_cost_usd",
    "max_wall_seconds",
    "tool_timeout_seconds",
    "max_model_calls",
    "max_tokens",
)


def _json(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def columns_to_values(apps, schema_editor):
    from runs.engine.caps import BY_NAME
    from runs.seed import seed_global_policy

    CapPolicy = apps.get_model("runs", "CapPolicy")
    for policy in CapPolicy.objects.all():
        values = {}
        for column in OLD_COLUMNS:
            value = getattr(policy, column)
            if value is not None:
                values[column] = BY_NAME[column].to_json(value) if column in BY_NAME else _json(value)
        policy.values = values
        policy.save(update_fields=["values"])
    seed_global_policy(CapPolicy=CapPolicy)


def values_to_columns(apps, schema_editor):
    CapPolicy = apps.get_model("runs", "CapPolicy")
    for policy in CapPolicy.objects.all():
        for column in OLD_COLUMNS:
            value = (policy.values or {}).get(column)
            setattr(policy, column, Decimal(str(value)) if isinstance(value, str) else value)
        policy.save()


class Migration(migrations.Migration):
    dependencies = [("runs", "0004_event_indexes_from_unique")]

    operations = [
        migrations.AddField(
            model_name="cappolicy",
            name="values",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(columns_to_values, values_to_columns),
    ]
