"""PriceOverride moves here from agents: the same table (agents_priceoverride), in billing's state."""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_seed_plans"),
        ("agents", "0005_knowledge_source_required_and_hnsw"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PriceOverride",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("provider", models.CharField(max_length=40)),
                        ("model", models.CharField(max_length=120)),
                        ("input_per_million", models.DecimalField(decimal_places=6, max_digits=12)),
                        (
                            "output_per_million",
                            models.DecimalField(decimal_places=6, max_digits=12),
                        ),
                        (
                            "cached_input_per_million",
                            models.DecimalField(
                                decimal_places=6, default=Decimal("0"), max_digits=12
                            ),
                        ),
                        ("note", models.CharField(blank=True, max_length=200)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "agents_priceoverride",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("provider", "model"), name="price_override_unique"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
