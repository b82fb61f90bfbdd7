"""Role groups and public model prices (see runs/seed.py). The global cap policy is seeded by
0005, in the shape the policy has had since."""

from django.db import migrations

from runs.seed import seed_roles_and_prices


def seed(apps, schema_editor):
    seed_roles_and_prices(
        Group=apps.get_model("auth", "Group"),
        ModelPrice=apps.get_model("runs", "ModelPrice"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
