"""PriceOverride now belongs to billing (billing 0005 takes it over); its table stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_knowledge_source_required_and_hnsw"),
        ("billing", "0005_priceoverride_from_agents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="PriceOverride")],
            database_operations=[],
        ),
    ]
