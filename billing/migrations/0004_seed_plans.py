from django.conf import settings
from django.db import migrations


def create_plans(apps, schema_editor):
    """One row per plan, from settings.PARLEY_PLAN_DEFAULTS; rows already there are kept."""
    Plan = apps.get_model("billing", "Plan")
    for code, values in settings.PARLEY_PLAN_DEFAULTS.items():
        Plan.objects.get_or_create(code=code, defaults=values)


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_plans_budgets_rollups")]

    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
