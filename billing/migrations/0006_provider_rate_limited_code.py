"""Ledger rows of calls a provider refused with 429 name it `provider_rate_limited`, as the
code is now called (`rate_limited` is the person's own limit, never a provider call's)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_priceoverride_from_agents")]

    operations = [
        migrations.RunSQL(
            "UPDATE billing_aicall SET error_code = 'provider_rate_limited'"
            " WHERE error_code = 'rate_limited'",
            "UPDATE billing_aicall SET error_code = 'rate_limited'"
            " WHERE error_code = 'provider_rate_limited'",
        ),
    ]
