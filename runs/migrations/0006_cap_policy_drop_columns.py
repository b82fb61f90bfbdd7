"""The per-cap columns of a cap policy go, now that its values live in `values` (0005)."""

import importlib

from django.db import migrations

OLD_COLUMNS = importlib.import_module("runs.migrations.0005_cap_policy_values").OLD_COLUMNS


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_cap_policy_values")]

    operations = [
        migrations.RemoveConstraint(model_name="cappolicy", name="cap_cost_nonnegative"),
        migrations.RemoveConstraint(model_name="cappolicy", name="cap_tool_timeout_positive"),
        *[migrations.RemoveField(model_name="cappolicy", name=column) for column in OLD_COLUMNS],
    ]
