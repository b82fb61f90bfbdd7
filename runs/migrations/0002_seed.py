"""Role groups, the global cap policy and public model prices (see runs/seed.py)."""

from django.db import migrations

from runs.seed import seed_defaults


def seed(apps, schema_editor):
    seed_defaults(
        Group=apps.get_model("auth", "Group"),
        CapPolicy=apps.get_model("runs", "CapPolicy"),
        ModelPrice=apps.get_model("runs", "ModelPrice"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
